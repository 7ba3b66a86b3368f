// Package v1alpha1 contains the certbound API: OAuthClient and
// AuthorizationServer in the oauth.certbound.io group.
//
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=oauth.certbound.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the certbound API.
	GroupVersion = schema.GroupVersion{Group: "oauth.certbound.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion under the name the generated apply
	// configurations use.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the certbound types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the certbound types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
