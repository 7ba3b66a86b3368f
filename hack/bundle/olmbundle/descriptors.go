package olmbundle

import (
	"fmt"
	"sort"
	"strings"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// x-descriptors the OpenShift/OKD console understands.
const (
	xText       = "urn:alm:descriptor:com.tectonic.ui:text"
	xPodCount   = "urn:alm:descriptor:com.tectonic.ui:podCount"
	xBoolean    = "urn:alm:descriptor:com.tectonic.ui:booleanSwitch"
	xSelect     = "urn:alm:descriptor:com.tectonic.ui:select:"
	xAdvanced   = "urn:alm:descriptor:com.tectonic.ui:advanced"
	xLink       = "urn:alm:descriptor:org.w3:link"
	xConditions = "urn:alm:descriptor:io.kubernetes.conditions"
	xSecret     = "urn:alm:descriptor:io.kubernetes:Secret"
	xAuthServer = "urn:alm:descriptor:io.kubernetes:oauth.certbound.io:v1alpha1:AuthorizationServer"
)

// descriptor is one field the console shows. Its description is not written
// here: it is the field's description in the CRD schema (the doc comment on
// the Go type), so kubectl explain and the console say the same thing, and a
// path that no longer exists in the schema fails the generator.
type descriptor struct {
	path         string // relative to .spec or .status
	displayName  string
	xDescriptors []string
	// enumSelect adds one select:<value> x-descriptor per enum value of the
	// field's schema.
	enumSelect bool
}

type kindDescription struct {
	displayName string
	spec        []descriptor
	status      []descriptor
}

// ownedKinds describes each CRD the operator owns, by kind. A CRD rendered
// from config/ without an entry here fails the generator.
var ownedKinds = map[string]kindDescription{
	"AuthorizationServer": {
		displayName: "Authorization Server",
		spec: []descriptor{
			{path: "issuer", displayName: "Issuer URL", xDescriptors: []string{xText}},
			{path: "replicas", displayName: "Replicas", xDescriptors: []string{xPodCount}},
			{path: "servingCertificate.issuerRef.name", displayName: "Serving Certificate Issuer", xDescriptors: []string{xText}},
			{path: "servingCertificate.issuerRef.kind", displayName: "Serving Certificate Issuer Kind", enumSelect: true},
			{path: "clientCertificateIssuer.name", displayName: "Client Certificate Issuer", xDescriptors: []string{xText}},
			{path: "allowedClientNamespaces.from", displayName: "Allowed Client Namespaces", enumSelect: true},
			{path: "clientPolicy.allowUnboundSubjects", displayName: "Allow Subjects Not Bound to the Client Namespace", xDescriptors: []string{xBoolean, xAdvanced}},
			{path: "tokens.accessTokenTTL", displayName: "Access Token Lifetime", xDescriptors: []string{xText}},
			{path: "tokens.signingAlgorithm", displayName: "Signing Algorithm", enumSelect: true},
			{path: "tokens.keyRotationPeriod", displayName: "Signing Key Rotation Period", xDescriptors: []string{xText, xAdvanced}},
		},
		status: []descriptor{
			{path: "conditions", displayName: "Conditions", xDescriptors: []string{xConditions}},
			{path: "issuer", displayName: "Issuer", xDescriptors: []string{xLink}},
			{path: "endpoints.metadata", displayName: "Metadata Endpoint", xDescriptors: []string{xLink}},
			{path: "endpoints.mtlsToken", displayName: "mTLS Token Endpoint", xDescriptors: []string{xLink}},
			{path: "endpoints.jwks", displayName: "JWKS Endpoint", xDescriptors: []string{xLink}},
			{path: "registeredClients", displayName: "Registered Clients", xDescriptors: []string{xText}},
		},
	},
	"OAuthClient": {
		displayName: "OAuth Client",
		spec: []descriptor{
			{path: "authorizationServerRef.name", displayName: "Authorization Server", xDescriptors: []string{xAuthServer}},
			{path: "authenticationMethod", displayName: "Authentication Method", enumSelect: true},
			{path: "subject.dn", displayName: "Subject DN", xDescriptors: []string{xText}},
			{path: "subject.dnsName", displayName: "Subject DNS Name", xDescriptors: []string{xText}},
			{path: "subject.uri", displayName: "Subject URI", xDescriptors: []string{xText}},
			{path: "subject.ip", displayName: "Subject IP Address", xDescriptors: []string{xText}},
			{path: "subject.email", displayName: "Subject Email", xDescriptors: []string{xText}},
			{path: "certificate.secretName", displayName: "Certificate Secret", xDescriptors: []string{xText}},
			{path: "certificate.duration", displayName: "Certificate Duration", xDescriptors: []string{xText, xAdvanced}},
			{path: "certificate.renewBefore", displayName: "Renew Before", xDescriptors: []string{xText, xAdvanced}},
			{path: "scopes", displayName: "Scopes"},
			{path: "audiences", displayName: "Audiences"},
			{path: "certificateBoundAccessTokens", displayName: "Certificate-Bound Access Tokens", xDescriptors: []string{xBoolean}},
		},
		status: []descriptor{
			{path: "conditions", displayName: "Conditions", xDescriptors: []string{xConditions}},
			{path: "clientID", displayName: "Client ID", xDescriptors: []string{xText}},
			{path: "registrationName", displayName: "Client Registration", xDescriptors: []string{xText}},
			{path: "subjectHeldSince", displayName: "Subject Held Since", xDescriptors: []string{xText}},
			{path: "configSecretName", displayName: "Client Configuration Secret", xDescriptors: []string{xSecret}},
			{path: "certificate.secretName", displayName: "Certificate Secret", xDescriptors: []string{xSecret}},
			{path: "certificate.subject", displayName: "Certificate Subject", xDescriptors: []string{xText}},
			{path: "certificate.thumbprint", displayName: "Certificate Thumbprint (x5t#S256)", xDescriptors: []string{xText}},
		},
	},
	// Written by the operator only: shown, not edited.
	"ClientRegistration": {
		displayName: "Client Registration",
		spec: []descriptor{
			{path: "authorizationServerName", displayName: "Authorization Server", xDescriptors: []string{xText}},
			{path: "holder.namespace", displayName: "OAuth Client Namespace", xDescriptors: []string{xText}},
			{path: "holder.name", displayName: "OAuth Client", xDescriptors: []string{xText}},
		},
	},
}

// ownedCRDs describes the bundle's CRDs for the CSV, ordered by CRD name.
func ownedCRDs(crds []*unstructured.Unstructured) ([]operatorsv1alpha1.CRDDescription, error) {
	var owned []operatorsv1alpha1.CRDDescription
	for _, crd := range crds {
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		desc, ok := ownedKinds[kind]
		if !ok {
			return nil, fmt.Errorf("CRD %s: no description of kind %s in olmbundle.ownedKinds", crd.GetName(), kind)
		}
		version, schema, err := storageSchema(crd)
		if err != nil {
			return nil, err
		}
		d := operatorsv1alpha1.CRDDescription{
			Name:        crd.GetName(),
			Version:     version,
			Kind:        kind,
			DisplayName: desc.displayName,
			Description: firstParagraph(stringAt(schema, "description")),
		}
		for _, sd := range desc.spec {
			path, text, x, err := describe(schema, "spec", sd)
			if err != nil {
				return nil, fmt.Errorf("CRD %s: %w", crd.GetName(), err)
			}
			d.SpecDescriptors = append(d.SpecDescriptors, operatorsv1alpha1.SpecDescriptor{Path: path, DisplayName: sd.displayName, Description: text, XDescriptors: x})
		}
		for _, sd := range desc.status {
			path, text, x, err := describe(schema, "status", sd)
			if err != nil {
				return nil, fmt.Errorf("CRD %s: %w", crd.GetName(), err)
			}
			d.StatusDescriptors = append(d.StatusDescriptors, operatorsv1alpha1.StatusDescriptor{Path: path, DisplayName: sd.displayName, Description: text, XDescriptors: x})
		}
		owned = append(owned, d)
	}
	sort.Slice(owned, func(i, j int) bool { return owned[i].Name < owned[j].Name })
	return owned, nil
}

// storageSchema returns the storage version's name and OpenAPI schema.
func storageSchema(crd *unstructured.Unstructured) (string, map[string]any, error) {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		v, _ := v.(map[string]any)
		if storage, _ := v["storage"].(bool); !storage {
			continue
		}
		schema, _, _ := unstructured.NestedMap(v, "schema", "openAPIV3Schema")
		name, _ := v["name"].(string)
		if schema == nil || name == "" {
			return "", nil, fmt.Errorf("CRD %s: storage version without a name or schema", crd.GetName())
		}
		return name, schema, nil
	}
	return "", nil, fmt.Errorf("CRD %s: no storage version", crd.GetName())
}

// describe looks d's field up in the schema under root (spec or status).
func describe(schema map[string]any, root string, d descriptor) (path, description string, xDescriptors []string, err error) {
	node := schema
	for _, part := range append([]string{root}, strings.Split(d.path, ".")...) {
		next, _, _ := unstructured.NestedMap(node, "properties", part)
		if next == nil {
			return "", "", nil, fmt.Errorf("descriptor %s.%s: no such field in the schema", root, d.path)
		}
		node = next
	}
	xDescriptors = append(xDescriptors, d.xDescriptors...)
	if d.enumSelect {
		values, _, _ := unstructured.NestedSlice(node, "enum")
		if len(values) == 0 {
			return "", "", nil, fmt.Errorf("descriptor %s.%s: enumSelect on a field without an enum", root, d.path)
		}
		for _, v := range values {
			xDescriptors = append(xDescriptors, xSelect+fmt.Sprint(v))
		}
	}
	return d.path, firstParagraph(stringAt(node, "description")), xDescriptors, nil
}

func stringAt(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// firstParagraph keeps a field description's first paragraph, on one line:
// the console shows descriptors as short help text.
func firstParagraph(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n\n")
	return strings.Join(strings.Fields(s), " ")
}
