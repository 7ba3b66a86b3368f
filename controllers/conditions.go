package controllers

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

// conditionResult is the outcome of one policy: a condition status, a
// CamelCase reason a user can act on and a message.
type conditionResult struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

func trueResult(reason, message string) conditionResult {
	return conditionResult{Status: metav1.ConditionTrue, Reason: reason, Message: message}
}

func falseResult(reason, message string) conditionResult {
	return conditionResult{Status: metav1.ConditionFalse, Reason: reason, Message: message}
}

func unknownResult(reason, message string) conditionResult {
	return conditionResult{Status: metav1.ConditionUnknown, Reason: reason, Message: message}
}

// conditionSet computes a status's conditions from scratch each reconcile,
// keeping lastTransitionTime of conditions whose status did not change.
type conditionSet struct {
	previous   []metav1.Condition
	generation int64
	now        metav1.Time
	result     []metav1.Condition
}

func newConditionSet(previous []metav1.Condition, generation int64, now metav1.Time) *conditionSet {
	return &conditionSet{previous: previous, generation: generation, now: now}
}

func (s *conditionSet) set(conditionType string, r conditionResult) {
	c := metav1.Condition{
		Type: conditionType, Status: r.Status, Reason: r.Reason, Message: r.Message,
		ObservedGeneration: s.generation, LastTransitionTime: s.now,
	}
	if old := meta.FindStatusCondition(s.previous, conditionType); old != nil && old.Status == c.Status {
		c.LastTransitionTime = old.LastTransitionTime
	}
	s.result = slices.DeleteFunc(s.result, func(x metav1.Condition) bool { return x.Type == conditionType })
	s.result = append(s.result, c)
}

func (s *conditionSet) get(conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(s.result, conditionType)
}

// summarize sets Ready: True when every listed condition is True, else the
// first one that is not, with its reason and message.
func (s *conditionSet) summarize(readyReason, readyMessage string, order ...string) {
	for _, t := range order {
		c := s.get(t)
		if c == nil {
			s.set(oauthv1alpha1.ConditionReady, unknownResult(ReasonNotEvaluated, t+" has not been evaluated yet"))
			return
		}
		if c.Status != metav1.ConditionTrue {
			s.set(oauthv1alpha1.ConditionReady, falseResult(c.Reason, t+": "+c.Message))
			return
		}
	}
	s.set(oauthv1alpha1.ConditionReady, trueResult(readyReason, readyMessage))
}

// conditionEvent is an event a change of conditions calls for.
type conditionEvent struct {
	Type, Reason, Action, Note string
}

// recordTransitions emits the events of a change of conditions.
func recordTransitions(recorder events.EventRecorder, obj runtime.Object, previous, current []metav1.Condition) {
	for _, e := range transitionEvents(previous, current) {
		recorder.Eventf(obj, nil, e.Type, e.Reason, e.Action, "%s", e.Note)
	}
}

// transitionEvents follows the Kubernetes convention (cert-manager's
// Certificates: a Normal event when issued, a Warning when issuance
// fails): a Normal event when Ready becomes True, and a Warning when the
// object stalls on a reason a user must act on, or stalls on another one
// (Stalled is derived from the reason table). Progress in between
// (issuing, waiting for a certificate or a Deployment) is in the
// conditions only: an event for each step would be an API write each, for
// every object.
func transitionEvents(previous, current []metav1.Condition) []conditionEvent {
	var out []conditionEvent
	for _, c := range transitions(previous, current) {
		if c.Status != metav1.ConditionTrue {
			continue
		}
		switch c.Type {
		case oauthv1alpha1.ConditionReady:
			out = append(out, conditionEvent{Type: corev1.EventTypeNormal, Reason: c.Reason, Action: c.Type, Note: c.Message})
		case oauthv1alpha1.ConditionStalled:
			out = append(out, conditionEvent{Type: corev1.EventTypeWarning, Reason: c.Reason, Action: c.Type, Note: c.Message})
		}
	}
	return out
}

// transitions lists the conditions whose status or reason changed from
// previous.
func transitions(previous, current []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range current {
		old := meta.FindStatusCondition(previous, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason {
			out = append(out, c)
		}
	}
	return out
}
