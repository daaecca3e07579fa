package deploy

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTellingEvent(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ev := func(typ, reason string, at time.Duration, micro bool) corev1.Event {
		e := corev1.Event{Type: typ, Reason: reason}
		if micro {
			e.EventTime = metav1.NewMicroTime(t0.Add(at))
		} else {
			e.LastTimestamp = metav1.NewTime(t0.Add(at))
		}
		return e
	}
	for _, tc := range []struct {
		name string
		evs  []corev1.Event
		want string
	}{
		{"none", nil, ""},
		{"newest of Normal ones", []corev1.Event{ev("Normal", "Scheduled", 0, false), ev("Normal", "Started", 2*time.Second, false)}, "Started"},
		{"a Warning before later Normal ones", []corev1.Event{ev("Warning", "Unhealthy", time.Second, false), ev("Normal", "Pulled", 3*time.Second, false), ev("Normal", "Started", 4*time.Second, false)}, "Unhealthy"},
		{"the newest Warning", []corev1.Event{ev("Warning", "Failed", time.Second, false), ev("Warning", "BackOff", 5*time.Second, false), ev("Normal", "Pulling", 6*time.Second, false)}, "BackOff"},
		{"new events API times", []corev1.Event{ev("Warning", "Failed", 5*time.Second, true), ev("Warning", "FailedMount", time.Second, false)}, "Failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := telling(tc.evs)
			if got == nil {
				if tc.want != "" {
					t.Fatalf("telling = nil, want %s", tc.want)
				}
				return
			}
			if got.Reason != tc.want {
				t.Errorf("telling = %s, want %s", got.Reason, tc.want)
			}
		})
	}
}
