package controllers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

const nextRotationMetric = "certbound_signing_key_next_rotation_timestamp_seconds"

// TestSigningKeyNextRotationMetric: the reconciler publishes when the keys
// next rotate, and drops the series with the AuthorizationServer.
func TestSigningKeyNextRotationMetric(t *testing.T) {
	const ns, name = "auth-metrics", "rotating"
	const period = 48 * time.Hour
	createNamespace(t, ns, false)
	as := newServer(ns, name, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.Tokens.KeyRotationPeriod = &metav1.Duration{Duration: period}
	})
	mustCreate(t, as)
	waitForServerCondition(t, ns, name, oauthv1alpha1.ConditionSigningKeyReady, metav1.ConditionTrue, "")

	var schedule []struct {
		KeyID     string     `json:"kid"`
		Activated *time.Time `json:"activated"`
	}
	secret := mustSecret(t, ns, name+"-signing-keys")
	if err := json.Unmarshal([]byte(secret.Annotations["oauth.certbound.io/signing-key-schedule"]), &schedule); err != nil || len(schedule) != 1 || schedule[0].Activated == nil {
		t.Fatalf("schedule %+v: %v", schedule, err)
	}
	want := float64(schedule[0].Activated.Add(period).UnixNano()) / 1e9
	eventually(t, "the gauge holds the signer's end of period", func() error {
		got, ok, err := nextRotationSample(ns, name)
		if err != nil {
			return err
		}
		if !ok || got != want {
			return errorf("gauge %v (present %t), want %v", got, ok, want)
		}
		return nil
	})

	if err := env.Client.Delete(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the series is gone with the AuthorizationServer", func() error {
		got, ok, err := nextRotationSample(ns, name)
		if err == nil && ok {
			err = errorf("gauge still %v", got)
		}
		return err
	})
}

// nextRotationSample is the gauge of one AuthorizationServer, if it has one.
func nextRotationSample(ns, name string) (float64, bool, error) {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return 0, false, err
	}
	for _, mf := range mfs {
		if mf.GetName() != nextRotationMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["authorizationserver"] == name {
				return m.GetGauge().GetValue(), true, nil
			}
		}
	}
	return 0, false, nil
}
