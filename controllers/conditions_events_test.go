package controllers

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

func TestTransitionEvents(t *testing.T) {
	cond := func(conditionType string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
		return metav1.Condition{Type: conditionType, Status: status, Reason: reason, Message: message}
	}
	const (
		ready       = oauthv1alpha1.ConditionReady
		certReady   = oauthv1alpha1.ConditionCertificateReady
		registered  = oauthv1alpha1.ConditionRegistered
		reconciling = oauthv1alpha1.ConditionReconciling
		stalledType = oauthv1alpha1.ConditionStalled
	)
	issuing := []metav1.Condition{
		cond(certReady, metav1.ConditionFalse, ReasonIssuing, "cert-manager is issuing"),
		cond(ready, metav1.ConditionFalse, ReasonIssuing, "CertificateReady: cert-manager is issuing"),
		cond(reconciling, metav1.ConditionTrue, ReasonIssuing, "CertificateReady: cert-manager is issuing"),
	}
	readyNow := []metav1.Condition{
		cond(certReady, metav1.ConditionTrue, ReasonIssued, "issued"),
		cond(registered, metav1.ConditionTrue, ReasonRegistered, "registered"),
		cond(ready, metav1.ConditionTrue, ReasonReady, "the workload can get tokens"),
	}
	notControlled := []metav1.Condition{
		cond(certReady, metav1.ConditionTrue, ReasonIssued, "issued"),
		cond(ready, metav1.ConditionFalse, ReasonNotControlled, "Secret x is not controlled by the client"),
		cond(stalledType, metav1.ConditionTrue, ReasonNotControlled, "Ready: Secret x is not controlled by the client"),
	}
	notAllowed := []metav1.Condition{
		cond(oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, ReasonNamespaceNotAllowed, "namespace not allowed"),
		cond(ready, metav1.ConditionFalse, ReasonNamespaceNotAllowed, "Accepted: namespace not allowed"),
		cond(stalledType, metav1.ConditionTrue, ReasonNamespaceNotAllowed, "Accepted: namespace not allowed"),
	}
	for name, tc := range map[string]struct {
		previous, current []metav1.Condition
		want              []conditionEvent
	}{
		"a new object starts issuing: progress is no event": {
			previous: nil, current: issuing,
		},
		"Ready becomes True: one Normal event": {
			previous: issuing, current: readyNow,
			want: []conditionEvent{{Type: corev1.EventTypeNormal, Reason: ReasonReady, Action: ready, Note: "the workload can get tokens"}},
		},
		"Ready stays True": {
			previous: readyNow, current: readyNow,
		},
		"Ready lost to a progressing reason (a renewal) is no event": {
			previous: readyNow, current: issuing,
		},
		"a condition other than Ready becoming True is no event": {
			previous: issuing[:1], current: readyNow[:2],
		},
		"a reason that needs a user: one Warning event, from Stalled": {
			previous: readyNow, current: notControlled,
			want: []conditionEvent{{Type: corev1.EventTypeWarning, Reason: ReasonNotControlled, Action: stalledType, Note: "Ready: Secret x is not controlled by the client"}},
		},
		"still stalled for the same reason": {
			previous: notControlled, current: notControlled,
		},
		"stalled for another reason: a Warning for the new one": {
			previous: notControlled, current: notAllowed,
			want: []conditionEvent{{Type: corev1.EventTypeWarning, Reason: ReasonNamespaceNotAllowed, Action: stalledType, Note: "Accepted: namespace not allowed"}},
		},
		"the user fixed it and the object is Ready: only the Normal event": {
			previous: notControlled, current: readyNow,
			want: []conditionEvent{{Type: corev1.EventTypeNormal, Reason: ReasonReady, Action: ready, Note: "the workload can get tokens"}},
		},
		"fixed, and now progressing: no event": {
			previous: notAllowed, current: issuing,
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := transitionEvents(tc.previous, tc.current); !slices.Equal(got, tc.want) {
				t.Errorf("events\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
