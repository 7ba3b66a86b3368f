package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/certbound/certbound/api/v1alpha1"
)

func requestContext(op admissionv1.Operation, raw []byte) context.Context {
	return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op,
		Namespace: "auth",
		Object:    runtime.RawExtension{Raw: raw},
	}})
}

func TestHandlersRefuseMissingObjectsInsteadOfPanicking(t *testing.T) {
	ctx := requestContext(admissionv1.Create, nil)
	for name, err := range map[string]error{
		"OAuthClient create":          second(oauthClientValidator{}.ValidateCreate(ctx, nil)),
		"OAuthClient update":          second(oauthClientValidator{}.ValidateUpdate(ctx, nil, &v1alpha1.OAuthClient{})),
		"AuthorizationServer create":  second(authorizationServerValidator{}.ValidateCreate(ctx, nil)),
		"AuthorizationServer update":  second(authorizationServerValidator{}.ValidateUpdate(ctx, &v1alpha1.AuthorizationServer{}, nil)),
		"OAuthClient default":         oauthClientDefaulter{}.Default(ctx, nil),
		"AuthorizationServer default": authorizationServerDefaulter{}.Default(ctx, nil),
	} {
		if strings.Contains(name, "default") {
			if err != nil {
				t.Errorf("%s of nothing: %v", name, err)
			}
			continue
		}
		if !apierrors.IsBadRequest(err) {
			t.Errorf("%s without an object = %v, want a bad request", name, err)
		}
	}
}

func second(_ admission.Warnings, err error) error { return err }

func TestAnOversizedRequestIsRefusedBeforeAnyRule(t *testing.T) {
	ctx := requestContext(admissionv1.Create, make([]byte, maxObjectBytes+1))
	_, err := oauthClientValidator{}.ValidateCreate(ctx, dnClient("CN=a"))
	if !apierrors.IsRequestEntityTooLargeError(err) {
		t.Fatalf("err = %v, want request entity too large", err)
	}
	if err := (authorizationServerDefaulter{}).Default(ctx, authServer(nil)); !apierrors.IsRequestEntityTooLargeError(err) {
		t.Fatalf("defaulter err = %v, want request entity too large", err)
	}
}

func TestDefaultsArePinnedOnCreateOnly(t *testing.T) {
	client := dnClient("CN=a")
	client.Namespace = ""
	if err := (oauthClientDefaulter{}).Default(requestContext(admissionv1.Create, nil), client); err != nil {
		t.Fatal(err)
	}
	if got := client.Spec.AuthorizationServerRef.Namespace; got != "auth" {
		t.Errorf("authorizationServerRef.namespace = %q, want the request's namespace", got)
	}

	as := authServer(nil)
	if err := (authorizationServerDefaulter{}).Default(requestContext(admissionv1.Update, nil), as); err != nil {
		t.Fatal(err)
	}
	if as.Spec.Issuer != "" {
		t.Errorf("an update was defaulted: issuer %q", as.Spec.Issuer)
	}
	if err := (authorizationServerDefaulter{}).Default(requestContext(admissionv1.Create, nil), as); err != nil {
		t.Fatal(err)
	}
	if as.Spec.Issuer != "https://payments.auth.svc" {
		t.Errorf("issuer = %q, want https://payments.auth.svc", as.Spec.Issuer)
	}
}
