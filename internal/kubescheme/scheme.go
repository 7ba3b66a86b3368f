// Package kubescheme builds the runtime.Scheme of everything certbound reads
// and writes: the core types, certbound's and cert-manager's.
package kubescheme

import (
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

// New returns a scheme with the core, certbound and cert-manager types,
// everything the manager reads and writes.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(oauthv1alpha1.AddToScheme(s))
	utilruntime.Must(cmapi.AddToScheme(s))
	return s
}
