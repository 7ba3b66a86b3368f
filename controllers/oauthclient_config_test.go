package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestConfigDecidesReady(t *testing.T) {
	configReady := trueResult(ReasonReady, "")
	notOurs := falseResult(ReasonNotControlled, "Secret billing/worker-oauth-config is not controlled by the client")
	caNotReady := falseResult(ReasonServerCANotReady, "no ca.crt yet")
	summary := func(status metav1.ConditionStatus, reason string) *metav1.Condition {
		return &metav1.Condition{Status: status, Reason: reason}
	}
	for name, tc := range map[string]struct {
		config conditionResult
		ready  *metav1.Condition
		want   bool
	}{
		"config ready, everything else ready":              {configReady, summary(metav1.ConditionTrue, ReasonReady), false},
		"config ready, certificate issuing":                {configReady, summary(metav1.ConditionFalse, ReasonIssuing), false},
		"no CA yet, everything else ready":                 {caNotReady, summary(metav1.ConditionTrue, ReasonReady), true},
		"no CA yet, certificate issuing: issuing says it":  {caNotReady, summary(metav1.ConditionFalse, ReasonIssuing), false},
		"Secret not ours, everything else ready":           {notOurs, summary(metav1.ConditionTrue, ReasonReady), true},
		"Secret not ours, certificate issuing":             {notOurs, summary(metav1.ConditionFalse, ReasonIssuing), true},
		"Secret not ours, summary unevaluated":             {notOurs, summary(metav1.ConditionUnknown, ReasonNotEvaluated), true},
		"Secret not ours, and the subject is not allowed":  {notOurs, summary(metav1.ConditionFalse, ReasonInvalidSubject), false},
		"Secret not ours, and the certificate is not ours": {notOurs, summary(metav1.ConditionFalse, ReasonNotControlled), false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := configDecidesReady(tc.config, tc.ready); got != tc.want {
				t.Errorf("configDecidesReady(%s, Ready %s/%s) = %v, want %v", tc.config.Reason, tc.ready.Status, tc.ready.Reason, got, tc.want)
			}
		})
	}
}
