package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// TestOlderThan: creation first, then namespace, then name — the engine's order, which decides
// which of two policies governs a worker both select.
func TestOlderThan(t *testing.T) {
	at := func(sec int, ns, name string) *v1alpha1.WorkerActivityPolicy {
		p := &v1alpha1.WorkerActivityPolicy{}
		p.CreationTimestamp = metav1.NewTime(time.Date(2026, 11, 30, 9, 0, sec, 0, time.UTC))
		p.Namespace, p.Name = ns, name
		return p
	}
	cases := []struct {
		a, b *v1alpha1.WorkerActivityPolicy
		want bool
	}{
		{at(1, "z", "z"), at(2, "a", "a"), true},
		{at(2, "a", "a"), at(1, "z", "z"), false},
		{at(1, "a", "z"), at(1, "b", "a"), true},
		// "a-b" sorts after "a" as a namespace, whatever the names ("a-b/x" < "a/x" as one string).
		{at(1, "a", "x"), at(1, "a-b", "x"), true},
		{at(1, "a-b", "x"), at(1, "a", "x"), false},
		{at(1, "a", "everyone"), at(1, "a", "voice"), true},
		{at(1, "a", "voice"), at(1, "a", "voice"), false},
	}
	for _, tc := range cases {
		if got := olderThan(tc.a, tc.b); got != tc.want {
			t.Errorf("olderThan(%s/%s@%s, %s/%s@%s) = %v, want %v", tc.a.Namespace, tc.a.Name, tc.a.CreationTimestamp.Format(time.TimeOnly),
				tc.b.Namespace, tc.b.Name, tc.b.CreationTimestamp.Format(time.TimeOnly), got, tc.want)
		}
	}
}
