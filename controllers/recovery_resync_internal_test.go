package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// TestResyncOwedUntilDone pins the resync's bookkeeping after a restart (issue 17, defect 1): a
// recovery the per-account budget puts later keeps its place and stays owed, however often it
// comes back or moves meanwhile; the ones behind it queue after it, not a resync period later; an
// incident skips the queue; only a check that was done clears what is owed.
func TestResyncOwedUntilDone(t *testing.T) {
	r := newResyncer(time.Hour, 1) // one check per second per account; nothing goes stale here
	before := metav1.NewTime(r.started.Add(-time.Minute))
	rec := func(name, rv string) *v1alpha1.ConferenceRecovery {
		return &v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
			ResourceVersion: rv, CreationTimestamp: before}}
	}
	first, second, third := rec("first", "1"), rec("second", "1"), rec("third", "1")

	if due, routine, _ := r.due(first, "AC1", false); !due || routine {
		t.Fatalf("first after the restart: due %t routine %t, want an owed check now", due, routine)
	}
	_, _, wait2 := r.due(second, "AC1", false)
	_, _, wait3 := r.due(third, "AC1", false)
	if wait2 <= 0 || wait2 > time.Second || wait3 <= wait2 || wait3 > 2*time.Second {
		t.Fatalf("waits %s and %s: want the two queued one after the other within the budget's pace", wait2, wait3)
	}
	// Coming back early, or having moved meanwhile, it keeps its place and stays owed.
	second.ResourceVersion = "2"
	due, _, again := r.due(second, "AC1", false)
	if due || again <= 0 || again > wait2 {
		t.Errorf("second came back early: due %t, wait %s; want its place kept (at most %s)", due, again, wait2)
	}
	if got := r.checks[client.ObjectKeyFromObject(second)]; got == nil || !got.owed {
		t.Errorf("second is no longer owed a check after it moved: %+v", got)
	}
	// Another account has its own budget; an incident in this one skips the queue.
	if due, _, _ := r.due(rec("elsewhere", "1"), "AC2", false); !due {
		t.Error("a recovery of another account waited for this account's budget")
	}
	incident := rec("incident", "1")
	incident.Status.Phase = v1alpha1.PhasePinging
	if due, routine, _ := r.due(incident, "AC1", customerMayBeAlone(incident.Status)); !due || routine {
		t.Errorf("an incident waited behind calls that are fine: due %t routine %t", due, routine)
	}
	// Done clears what is owed: the next look is a routine one, a resync period later.
	r.done(first)
	if due, _, wait := r.due(first, "AC1", false); due || wait != 0 {
		t.Errorf("first after its check: due %t wait %s, want nothing until it is stale", due, wait)
	}
	// A suspect from the sweep is read at once, whatever the queue.
	r.suspect(client.ObjectKeyFromObject(first))
	if due, routine, _ := r.due(first, "AC1", false); !due || routine {
		t.Errorf("a suspect was not read at once: due %t routine %t", due, routine)
	}
}
