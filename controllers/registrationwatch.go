package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// registrationChanged passes the ClientRegistration events the operator
// acts on: creation, deletion, and updates of the spec (its generation),
// labels or deletion. The authorization servers write the status (their
// authentication-failure reports), which neither reconciler reads; each
// such write would otherwise reconcile the client and its server for
// nothing.
var registrationChanged = predicate.Or[client.Object](
	predicate.GenerationChangedPredicate{},
	predicate.LabelChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	}},
)
