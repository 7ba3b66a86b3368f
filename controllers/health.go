package controllers

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
)

// reasonHealth says what a condition's reason means to a GitOps tool that
// reads the status with kstatus (Argo CD, Flux).
type reasonHealth int

const (
	// healthy reasons are those of conditions that are True.
	healthy reasonHealth = iota + 1
	// progressing reasons wait on something that finishes by itself.
	progressing
	// stalled reasons need a user's change to the spec, the cluster or
	// another object before anything can progress; only they get a
	// Warning event (see transitionEvents).
	stalled
)

const (
	// ReasonKeyGenerationFailed: a signing key could not be generated; the
	// reconcile is retried.
	ReasonKeyGenerationFailed = "KeyGenerationFailed"
	// ReasonNotEvaluated is Ready's reason while a condition it summarises
	// has not been evaluated yet.
	ReasonNotEvaluated = "Reconciling"
)

// oauthClientReasonHealth classifies every reason an OAuthClient's
// conditions can carry.
var oauthClientReasonHealth = map[string]reasonHealth{
	ReasonAccepted:                  healthy,
	ReasonIssued:                    healthy,
	ReasonRegistered:                healthy,
	ReasonClientManagedKeys:         healthy,
	ReasonCertificateMadeByWorkload: healthy,
	ReasonServiceAccountFound:       healthy,
	ReasonReady:                     healthy,

	ReasonNotEvaluated:          progressing,
	ReasonIssuing:               progressing,
	ReasonWaitingForCertificate: progressing,
	// The issued certificate is replaced by cert-manager.
	ReasonSubjectMismatch:                 progressing,
	ReasonCertificatePredatesRegistration: progressing,
	// cert-manager renews an expired certificate as soon as its issuer can.
	ReasonCertificateExpired: progressing,
	ReasonServerCANotReady:   progressing,

	ReasonAuthorizationServerNotFound:                stalled,
	ReasonNamespaceNotAllowed:                        stalled,
	ReasonInvalidSubject:                             stalled,
	ReasonInvalidSpec:                                stalled,
	validation.ReasonSubjectNotAllowed:               stalled,
	validation.ReasonScopeNotAllowed:                 stalled,
	validation.ReasonAudienceNotAllowed:              stalled,
	validation.ReasonIntrospectionAudienceNotAllowed: stalled,
	ReasonNotAccepted:                                stalled,
	ReasonSubjectConflict:                            stalled,
	ReasonNoIssuerConfigured:                         stalled,
	// The Secret holds something cert-manager did not write.
	ReasonCertificateInvalid:     stalled,
	ReasonNotControlled:          stalled,
	ReasonServiceAccountNotFound: stalled,
}

// authorizationServerReasonHealth classifies every reason an
// AuthorizationServer's conditions can carry.
var authorizationServerReasonHealth = map[string]reasonHealth{
	ReasonKeysCurrent:            healthy,
	ReasonKeysRegenerated:        healthy,
	ReasonIssued:                 healthy,
	ReasonTrustAnchorsLoaded:     healthy,
	ReasonNoTrustAnchors:         healthy,
	ReasonDeploymentAvailable:    healthy,
	ReasonDefaultClientPolicy:    healthy,
	ReasonClientPolicyLoaded:     healthy,
	ReasonUnboundSubjectsAllowed: healthy,
	ReasonCRLsLoaded:             healthy,
	ReasonDistributionPointsOnly: healthy,
	ReasonReady:                  healthy,

	ReasonNotEvaluated:          progressing,
	ReasonIssuing:               progressing,
	ReasonDeploymentUnavailable: progressing,
	ReasonKeyGenerationFailed:   progressing,

	ReasonInvalidSpec:               stalled,
	ReasonInvalidIssuer:             stalled,
	ReasonNotControlled:             stalled,
	ReasonTrustAnchorSecretNotFound: stalled,
	ReasonTrustAnchorKeyNotFound:    stalled,
	ReasonTrustAnchorInvalid:        stalled,
	ReasonCRLConfigMapNotFound:      stalled,
	ReasonCRLKeyNotFound:            stalled,
	ReasonCRLInvalid:                stalled,
}

// healthCondition derives Reconciling or Stalled from the other
// conditions, for kstatus: Stalled with the first condition that is not
// True and whose reason needs a user; else Reconciling with Ready's reason
// while Ready is not True; else neither (""), as kstatus reads an absent
// abnormal-true condition as False. A reason missing from the table counts
// as progressing.
func healthCondition(table map[string]reasonHealth, conds []metav1.Condition) (string, conditionResult) {
	for _, c := range conds {
		if c.Status != metav1.ConditionTrue && table[c.Reason] == stalled {
			return oauthv1alpha1.ConditionStalled, trueResult(c.Reason, c.Type+": "+c.Message)
		}
	}
	ready := meta.FindStatusCondition(conds, oauthv1alpha1.ConditionReady)
	switch {
	case ready == nil:
		return oauthv1alpha1.ConditionReconciling, trueResult(ReasonNotEvaluated, "Ready has not been evaluated yet")
	case ready.Status != metav1.ConditionTrue:
		return oauthv1alpha1.ConditionReconciling, trueResult(ready.Reason, ready.Message)
	}
	return "", conditionResult{}
}

// isHealthCondition tells the derived conditions from those they are
// derived from.
func isHealthCondition(conditionType string) bool {
	return conditionType == oauthv1alpha1.ConditionReconciling || conditionType == oauthv1alpha1.ConditionStalled
}

// setHealth replaces Reconciling and Stalled with the one derived from the
// set's other conditions, if any; call it after Ready is set.
func (s *conditionSet) setHealth(table map[string]reasonHealth) {
	s.result = slices.DeleteFunc(s.result, func(c metav1.Condition) bool { return isHealthCondition(c.Type) })
	if conditionType, r := healthCondition(table, s.result); conditionType != "" {
		s.set(conditionType, r)
	}
}
