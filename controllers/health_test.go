package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
)

// emittedReasons parses the controllers' sources and returns the reasons
// each kind's conditions can carry: every reason constant or literal passed
// to trueResult, falseResult, unknownResult or summarize, by the file's
// kind (oauthclient_*, authorizationserver_*, or both for the rest), plus
// the policy-violation reasons, which become an OAuthClient's Accepted
// reason.
func emittedReasons(t *testing.T) (client, server map[string]bool) {
	t.Helper()
	fset := token.NewFileSet()
	consts := map[string]string{}
	parse := func(pattern string) map[string]*ast.File {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]*ast.File{}
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.Base(p)] = f
			ast.Inspect(f, func(n ast.Node) bool {
				spec, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range spec.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(spec.Values) {
						continue
					}
					if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						consts[name.Name] = v
					}
				}
				return true
			})
		}
		return files
	}
	controllerFiles := parse("*.go")
	validationFiles := parse("../api/v1alpha1/validation/*.go")
	if len(controllerFiles) == 0 || len(validationFiles) == 0 {
		t.Fatal("no sources found")
	}

	client, server = map[string]bool{}, map[string]bool{}
	for _, v := range []string{validation.ReasonSubjectNotAllowed, validation.ReasonScopeNotAllowed, validation.ReasonAudienceNotAllowed, validation.ReasonIntrospectionAudienceNotAllowed} {
		client[v] = true
	}
	for name, f := range controllerFiles {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			}
			if fn != "trueResult" && fn != "falseResult" && fn != "unknownResult" && fn != "summarize" {
				return true
			}
			var reason string
			switch a := call.Args[0].(type) {
			case *ast.BasicLit:
				reason, _ = strconv.Unquote(a.Value)
			case *ast.Ident:
				reason = consts[a.Name]
			case *ast.SelectorExpr:
				reason = consts[a.Sel.Name]
			}
			if reason == "" {
				// A parameter or another condition's reason, both
				// emitted elsewhere.
				return true
			}
			if !strings.HasPrefix(name, "authorizationserver_") {
				client[reason] = true
			}
			if !strings.HasPrefix(name, "oauthclient_") {
				server[reason] = true
			}
			return true
		})
	}
	return client, server
}

func TestEveryEmittedReasonIsClassified(t *testing.T) {
	client, server := emittedReasons(t)
	for _, kind := range []struct {
		name    string
		emitted map[string]bool
		table   map[string]reasonHealth
	}{
		{"OAuthClient", client, oauthClientReasonHealth},
		{"AuthorizationServer", server, authorizationServerReasonHealth},
	} {
		if len(kind.emitted) < 10 {
			t.Fatalf("%s: found only %d reasons in the sources: %v", kind.name, len(kind.emitted), kind.emitted)
		}
		for reason := range kind.emitted {
			if _, ok := kind.table[reason]; !ok {
				t.Errorf("%s: reason %q is emitted but not classified as healthy, progressing or stalled", kind.name, reason)
			}
		}
		for reason := range kind.table {
			if !kind.emitted[reason] {
				t.Errorf("%s: reason %q is classified but never emitted", kind.name, reason)
			}
		}
	}
}

func TestHealthCondition(t *testing.T) {
	cond := func(conditionType string, s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: conditionType, Status: s, Reason: reason, Message: "m"}
	}
	const (
		T = metav1.ConditionTrue
		F = metav1.ConditionFalse
		U = metav1.ConditionUnknown
	)
	tests := []struct {
		name     string
		table    map[string]reasonHealth
		conds    []metav1.Condition
		wantType string
		want     conditionResult
	}{
		{
			name:  "ready",
			table: oauthClientReasonHealth,
			conds: []metav1.Condition{cond(oauthv1alpha1.ConditionAccepted, T, ReasonAccepted), cond(oauthv1alpha1.ConditionReady, T, ReasonReady)},
		},
		{
			name:  "issuing",
			table: oauthClientReasonHealth,
			conds: []metav1.Condition{
				cond(oauthv1alpha1.ConditionAccepted, T, ReasonAccepted), cond(oauthv1alpha1.ConditionCertificateReady, F, ReasonIssuing),
				cond(oauthv1alpha1.ConditionReady, F, ReasonIssuing),
			},
			wantType: oauthv1alpha1.ConditionReconciling, want: trueResult(ReasonIssuing, "m"),
		},
		{
			name:  "policy refusal",
			table: oauthClientReasonHealth,
			conds: []metav1.Condition{
				cond(oauthv1alpha1.ConditionAccepted, F, validation.ReasonScopeNotAllowed), cond(oauthv1alpha1.ConditionCertificateReady, U, ReasonNotAccepted),
				cond(oauthv1alpha1.ConditionReady, F, validation.ReasonScopeNotAllowed),
			},
			wantType: oauthv1alpha1.ConditionStalled, want: trueResult(validation.ReasonScopeNotAllowed, "Accepted: m"),
		},
		{
			// Ready names the first condition that is not True; a later
			// one that needs a user still stalls the client.
			name:  "stalled behind progressing",
			table: oauthClientReasonHealth,
			conds: []metav1.Condition{
				cond(oauthv1alpha1.ConditionRegistered, F, ReasonWaitingForCertificate), cond(oauthv1alpha1.ConditionServiceAccountFound, F, ReasonServiceAccountNotFound),
				cond(oauthv1alpha1.ConditionReady, F, ReasonWaitingForCertificate),
			},
			wantType: oauthv1alpha1.ConditionStalled, want: trueResult(ReasonServiceAccountNotFound, "ServiceAccountFound: m"),
		},
		{
			name:     "stalled reason on Ready only",
			table:    authorizationServerReasonHealth,
			conds:    []metav1.Condition{cond(oauthv1alpha1.ConditionReady, F, ReasonInvalidIssuer)},
			wantType: oauthv1alpha1.ConditionStalled, want: trueResult(ReasonInvalidIssuer, "Ready: m"),
		},
		{
			name:  "trust anchor missing",
			table: authorizationServerReasonHealth,
			conds: []metav1.Condition{
				cond(oauthv1alpha1.ConditionServingCertificateReady, F, ReasonIssuing), cond(oauthv1alpha1.ConditionTrustAnchorsReady, F, ReasonTrustAnchorSecretNotFound),
				cond(oauthv1alpha1.ConditionReady, F, ReasonIssuing),
			},
			wantType: oauthv1alpha1.ConditionStalled, want: trueResult(ReasonTrustAnchorSecretNotFound, "TrustAnchorsReady: m"),
		},
		{
			name:     "rolling out",
			table:    authorizationServerReasonHealth,
			conds:    []metav1.Condition{cond(oauthv1alpha1.ConditionAvailable, F, ReasonDeploymentUnavailable), cond(oauthv1alpha1.ConditionReady, F, ReasonDeploymentUnavailable)},
			wantType: oauthv1alpha1.ConditionReconciling, want: trueResult(ReasonDeploymentUnavailable, "m"),
		},
		{
			name:     "not evaluated",
			table:    authorizationServerReasonHealth,
			conds:    []metav1.Condition{cond(oauthv1alpha1.ConditionReady, U, ReasonNotEvaluated)},
			wantType: oauthv1alpha1.ConditionReconciling, want: trueResult(ReasonNotEvaluated, "m"),
		},
		{
			name:     "no Ready yet",
			table:    authorizationServerReasonHealth,
			conds:    []metav1.Condition{cond(oauthv1alpha1.ConditionSigningKeyReady, T, ReasonKeysCurrent)},
			wantType: oauthv1alpha1.ConditionReconciling, want: trueResult(ReasonNotEvaluated, "Ready has not been evaluated yet"),
		},
		{
			name:     "unclassified reason progresses",
			table:    authorizationServerReasonHealth,
			conds:    []metav1.Condition{cond(oauthv1alpha1.ConditionReady, F, "SomethingNew")},
			wantType: oauthv1alpha1.ConditionReconciling, want: trueResult("SomethingNew", "m"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotType, got := healthCondition(tt.table, tt.conds)
			if gotType != tt.wantType || got != tt.want {
				t.Errorf("got %q %+v, want %q %+v", gotType, got, tt.wantType, tt.want)
			}
		})
	}
}

// condition is one condition a controller sets before it summarises.
type condition struct {
	conditionType string
	result        conditionResult
}

// assembled returns the conditions as a controller writes them: the given
// ones, Ready summarised from them, then Reconciling and Stalled.
func assembled(table map[string]reasonHealth, previous []metav1.Condition, generation int64, conds []condition, readyOverride *conditionResult) []metav1.Condition {
	s := newConditionSet(previous, generation, metav1.NewTime(time.Unix(1_700_000_000, 0)))
	var order []string
	for _, c := range conds {
		s.set(c.conditionType, c.result)
		order = append(order, c.conditionType)
	}
	s.summarize(ReasonReady, "ready", order...)
	if readyOverride != nil {
		s.set(oauthv1alpha1.ConditionReady, *readyOverride)
	}
	s.setHealth(table)
	return s.result
}

func TestKstatusOfEachState(t *testing.T) {
	acceptedC := condition{oauthv1alpha1.ConditionAccepted, trueResult(ReasonAccepted, "")}
	issuedC := condition{oauthv1alpha1.ConditionCertificateReady, trueResult(ReasonIssued, "")}
	registeredC := condition{oauthv1alpha1.ConditionRegistered, trueResult(ReasonRegistered, "")}
	keysS := condition{oauthv1alpha1.ConditionSigningKeyReady, trueResult(ReasonKeysCurrent, "")}
	servingS := condition{oauthv1alpha1.ConditionServingCertificateReady, trueResult(ReasonIssued, "")}
	anchorsS := condition{oauthv1alpha1.ConditionTrustAnchorsReady, trueResult(ReasonTrustAnchorsLoaded, "")}
	availableS := condition{oauthv1alpha1.ConditionAvailable, trueResult(ReasonDeploymentAvailable, "")}
	serverCANotReady := falseResult(ReasonServerCANotReady, "no ca.crt yet")

	tests := []struct {
		name               string
		kind               string
		conds              []condition
		readyOverride      *conditionResult
		observedGeneration int64
		want               status.Status
	}{
		{name: "client ready", kind: "OAuthClient", conds: []condition{acceptedC, issuedC, registeredC}, want: status.CurrentStatus},
		{name: "client spec not yet observed", kind: "OAuthClient", conds: []condition{acceptedC, issuedC, registeredC}, observedGeneration: 1, want: status.InProgressStatus},
		{name: "client certificate issuing", kind: "OAuthClient", conds: []condition{acceptedC, {oauthv1alpha1.ConditionCertificateReady, falseResult(ReasonIssuing, "cert-manager is issuing")}, {oauthv1alpha1.ConditionRegistered, falseResult(ReasonWaitingForCertificate, "")}}, want: status.InProgressStatus},
		{name: "client waiting for the server's CA", kind: "OAuthClient", conds: []condition{acceptedC, issuedC, registeredC}, readyOverride: &serverCANotReady, want: status.InProgressStatus},
		{name: "client subject conflict", kind: "OAuthClient", conds: []condition{acceptedC, {oauthv1alpha1.ConditionRegistered, falseResult(ReasonSubjectConflict, "held by another")}, {oauthv1alpha1.ConditionCertificateReady, unknownResult(ReasonSubjectConflict, "")}}, want: status.FailedStatus},
		{name: "client subject not allowed", kind: "OAuthClient", conds: []condition{{oauthv1alpha1.ConditionAccepted, falseResult(validation.ReasonSubjectNotAllowed, "no pattern matches")}}, want: status.FailedStatus},
		{name: "client without an issuer", kind: "OAuthClient", conds: []condition{acceptedC, {oauthv1alpha1.ConditionCertificateReady, falseResult(ReasonNoIssuerConfigured, "no issuer")}, registeredC}, want: status.FailedStatus},
		{name: "public client without its ServiceAccount", kind: "OAuthClient", conds: []condition{acceptedC, {oauthv1alpha1.ConditionCertificateReady, PublicClientCertificateReady()}, registeredC, {oauthv1alpha1.ConditionServiceAccountFound, falseResult(ReasonServiceAccountNotFound, "create it")}}, want: status.FailedStatus},
		{name: "server ready", kind: "AuthorizationServer", conds: []condition{keysS, servingS, anchorsS, availableS}, want: status.CurrentStatus},
		{name: "server spec not yet observed", kind: "AuthorizationServer", conds: []condition{keysS, servingS, anchorsS, availableS}, observedGeneration: 1, want: status.InProgressStatus},
		{name: "server rolling out", kind: "AuthorizationServer", conds: []condition{keysS, servingS, anchorsS, {oauthv1alpha1.ConditionAvailable, falseResult(ReasonDeploymentUnavailable, "0/1 replicas available")}}, want: status.InProgressStatus},
		{name: "server serving certificate issuing", kind: "AuthorizationServer", conds: []condition{keysS, {oauthv1alpha1.ConditionServingCertificateReady, falseResult(ReasonIssuing, "")}, anchorsS, availableS}, want: status.InProgressStatus},
		{name: "server trust anchor missing", kind: "AuthorizationServer", conds: []condition{keysS, servingS, {oauthv1alpha1.ConditionTrustAnchorsReady, falseResult(ReasonTrustAnchorSecretNotFound, "not found")}, availableS}, want: status.FailedStatus},
		{name: "server CRL ConfigMap missing", kind: "AuthorizationServer", conds: []condition{keysS, servingS, anchorsS, {oauthv1alpha1.ConditionClientCertificateRevocationReady, falseResult(ReasonCRLConfigMapNotFound, "create it")}, availableS}, want: status.FailedStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const generation = 2
			observed := tt.observedGeneration
			if observed == 0 {
				observed = generation
			}
			objectMeta := metav1.ObjectMeta{Name: "x", Namespace: "ns", Generation: generation}
			var obj runtime.Object
			switch tt.kind {
			case "OAuthClient":
				obj = &oauthv1alpha1.OAuthClient{
					TypeMeta: metav1.TypeMeta{APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: tt.kind}, ObjectMeta: objectMeta,
					Status: oauthv1alpha1.OAuthClientStatus{ObservedGeneration: observed, Conditions: assembled(oauthClientReasonHealth, nil, observed, tt.conds, tt.readyOverride)},
				}
			case "AuthorizationServer":
				obj = &oauthv1alpha1.AuthorizationServer{
					TypeMeta: metav1.TypeMeta{APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: tt.kind}, ObjectMeta: objectMeta,
					Status: oauthv1alpha1.AuthorizationServerStatus{ObservedGeneration: observed, Conditions: assembled(authorizationServerReasonHealth, nil, observed, tt.conds, tt.readyOverride)},
				}
			}
			content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				t.Fatal(err)
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: content})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.want {
				t.Errorf("kstatus = %s (%s), want %s; conditions %+v", res.Status, res.Message, tt.want, content["status"])
			}
		})
	}
}

// A condition that stays Stalled keeps its transition time; one that
// clears is removed rather than left False.
func TestHealthConditionsAcrossReconciles(t *testing.T) {
	conflict := []condition{
		{oauthv1alpha1.ConditionAccepted, trueResult(ReasonAccepted, "")},
		{oauthv1alpha1.ConditionRegistered, falseResult(ReasonSubjectConflict, "held")},
	}
	first := assembled(oauthClientReasonHealth, nil, 1, conflict, nil)
	s := newConditionSet(first, 1, metav1.NewTime(time.Unix(1_800_000_000, 0)))
	for _, c := range conflict {
		s.set(c.conditionType, c.result)
	}
	s.summarize(ReasonReady, "ready", oauthv1alpha1.ConditionAccepted, oauthv1alpha1.ConditionRegistered)
	s.setHealth(oauthClientReasonHealth)
	stalledFirst, stalledAgain := meta.FindStatusCondition(first, oauthv1alpha1.ConditionStalled), s.get(oauthv1alpha1.ConditionStalled)
	if stalledFirst == nil || stalledAgain == nil || !stalledAgain.LastTransitionTime.Equal(&stalledFirst.LastTransitionTime) {
		t.Fatalf("Stalled %+v then %+v, want the same transition time", stalledFirst, stalledAgain)
	}

	resolved := assembled(oauthClientReasonHealth, s.result, 2, []condition{conflict[0], {oauthv1alpha1.ConditionRegistered, trueResult(ReasonRegistered, "")}}, nil)
	for _, c := range resolved {
		if isHealthCondition(c.Type) {
			t.Errorf("%s left behind after the client became Ready: %+v", c.Type, c)
		}
	}
}
