package activity

import (
	"fmt"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
)

// model is TaskRouter's truth about one worker, and the events it emitted.
type model struct {
	activity string
	version  int64
	attrs    string
	res      map[string]*Reservation
	events   []events.TaskRouterEvent
	seq      int
	// taskVersion counts each task's changes (events carry task_version).
	taskVersion map[string]int64
	// allowed is set when a person's change while busy stands (mode Allow), until the work changes.
	allowed bool
	// copies is how many policies of the workspace receive every event (one copy each).
	copies int
}

// busy reports whether the worker holds an accepted or wrapping reservation that counts.
func (m *model) busy(cfg *Config) bool {
	for _, r := range m.res {
		if cfg.Counts(r.Channel) && (r.Status == ResAccepted || r.Status == ResWrapping) {
			return true
		}
	}
	return false
}

// sids are the reservations' SIDs in the order they were offered.
func (m *model) sids() []string {
	out := make([]string, 0, len(m.res))
	for i := 0; len(out) < len(m.res); i++ {
		if _, ok := m.res["WR"+strconv.Itoa(i)]; ok {
			out = append(out, "WR"+strconv.Itoa(i))
		}
	}
	return out
}

func (m *model) emit(typ string, resSID string) {
	m.seq++
	ev := events.TaskRouterEvent{
		ID: "EZ" + strconv.Itoa(m.seq), Type: typ, WorkspaceSID: "WStest", WorkerSID: "WKtest",
		WorkerActivitySID: m.activity, WorkerAttributes: m.attrs, WorkerVersion: events.VersionOf(m.version),
		Time: time.Unix(int64(m.seq), 0),
	}
	if resSID != "" {
		r := m.res[resSID]
		m.taskVersion[r.TaskSID]++
		ev.ReservationSID, ev.TaskSID, ev.TaskChannel = resSID, r.TaskSID, r.Channel
		ev.TaskVersion = events.VersionOf(m.taskVersion[r.TaskSID])
		if r.Extended {
			ev.TaskAttributes = `{"extendedWrapup":true}`
		} else {
			ev.TaskAttributes = `{}`
		}
	}
	if resSID != "" {
		// The work changed: a change a person was allowed to make no longer stands.
		m.allowed = false
	}
	for i := 0; i < max(m.copies, 1); i++ {
		m.events = append(m.events, ev)
	}
}

// harness drives the engine's synchronous core against the model with random interleavings.
type harness struct {
	t      *testing.T
	rng    *rand.Rand
	m      *model
	ws     *Workspace
	cfg    *Config
	queue  []events.TaskRouterEvent // emitted, not yet delivered
	writes int
	// lastWriteInput is the number of inputs (events applied, rereads) seen at the last write: a
	// second write with no input since is a second write for one decision.
	inputs, lastWriteInput int
	history                []string
}

// variant is what a run of the harness varies beyond the seed.
type variant struct {
	// allow runs the policy with ActivityChangeWhileBusy Allow (Defer otherwise).
	allow bool
	// twoPolicies governs the workspace with two policies, each of which receives every event.
	twoPolicies bool
	// version0 starts the worker at version 0, as TaskRouter creates it.
	version0 bool
}

func (v variant) String() string {
	return fmt.Sprintf("allow=%v twoPolicies=%v version0=%v", v.allow, v.twoPolicies, v.version0)
}

func newHarness(t *testing.T, seed int64, v variant) *harness {
	cfg := testConfig()
	if v.allow {
		cfg = testConfig(allow)
	}
	policies := []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: cfg}}
	copies := 1
	if v.twoPolicies {
		// A younger policy selecting the same worker: it does not govern her, but its sink
		// receives every event too.
		policies = append(policies, &Policy{Key: types.NamespacedName{Name: "q"}, Created: time.Unix(1, 0),
			Workers: expr.MustParse(`skills HAS "a"`), Config: testConfig()})
		copies = 2
	}
	ws := NewWorkspace("WStest", policies)
	m := &model{activity: sidAvailable, version: 1, attrs: `{"skills":["a"]}`, res: map[string]*Reservation{},
		taskVersion: map[string]int64{}, copies: copies}
	if v.version0 {
		m.version = 0
	}
	ws.PutWorker("WKtest", "alice", m.activity, strconv.FormatInt(m.version, 10), m.attrs)
	return &harness{t: t, rng: rand.New(rand.NewSource(seed)), m: m, ws: ws, cfg: cfg, lastWriteInput: -1}
}

// personChanges plays an agent or supervisor picking an activity.
func (h *harness) personChanges(why string) {
	m := h.m
	acts := []string{sidAvailable, sidBreak, sidOffline, sidBackup, sidOnATask, sidWrapup}
	a := acts[h.rng.Intn(len(acts))]
	if a == m.activity {
		return
	}
	if h.cfg.BusyChange == v1alpha1.BusyChangeAllow && m.busy(h.cfg) && !h.cfg.IsSystem(a) {
		m.allowed = true
	}
	m.activity = a
	m.version++
	m.emit("worker.activity.update", "")
	h.log("person sets %s (%s)", h.cfg.name(a), why)
}

func (h *harness) log(format string, args ...any) {
	h.history = append(h.history, fmt.Sprintf(format, args...))
}

// step makes one random thing happen.
func (h *harness) step() {
	m := h.m
	switch k := h.rng.Intn(10); {
	case k < 2: // a new offer
		sid := "WR" + strconv.Itoa(len(m.res))
		ch := []string{"voice", "chat"}[h.rng.Intn(2)]
		m.res[sid] = &Reservation{TaskSID: "WT" + sid, Channel: ch, Status: ResPending}
		m.emit("reservation.created", sid)
		h.log("offer %s %s", sid, ch)
	case k < 5: // a live reservation moves on: any of them, picked by the seed (not a map's order)
		sids := m.sids()
		for _, i := range h.rng.Perm(len(sids)) {
			sid := sids[i]
			r := m.res[sid]
			switch r.Status {
			case ResPending:
				if h.rng.Intn(3) == 0 {
					r.Status = ResEnded
					m.emit("reservation.rejected", sid)
				} else {
					r.Status = ResAccepted
					m.emit("reservation.accepted", sid)
				}
			case ResAccepted:
				r.Status = ResWrapping
				m.emit("reservation.wrapup", sid)
			case ResWrapping:
				if h.rng.Intn(4) == 0 && !r.Extended {
					r.Extended = true
					m.emit("task.updated", sid)
				} else {
					r.Status = ResEnded
					m.emit("reservation.completed", sid)
				}
			default:
				continue
			}
			h.log("%s → %s", sid, r.Status)
			break
		}
	case k < 6: // a person changes the activity
		h.personChanges("alone")
	default: // deliver some events: duplicated, reordered
		h.deliver(h.rng.Intn(4))
	}
}

// deliver hands up to n queued events to the engine in random order, sometimes twice.
func (h *harness) deliver(n int) {
	h.queue = append(h.queue, h.m.events...)
	h.m.events = nil
	for i := 0; i < n && len(h.queue) > 0; i++ {
		j := h.rng.Intn(len(h.queue))
		ev := h.queue[j]
		if h.rng.Intn(4) != 0 {
			h.queue = append(h.queue[:j], h.queue[j+1:]...)
		}
		// Fill in the task index the way a reservation event does before a task event.
		if _, err := h.ws.Apply(ev, time.Unix(0, 0)); err != nil {
			h.t.Fatalf("apply %s: %v", ev.Type, err)
		}
		h.inputs++
	}
}

// engine runs one decision and its write against the model.
func (h *harness) engine() {
	_, d := h.ws.Decide("WKtest")
	if !d.Changes() {
		return
	}
	w := h.ws.Worker("WKtest")
	if h.rng.Intn(5) == 0 {
		// A person's change lands between the engine's decision and its write.
		h.personChanges("before the write")
	}
	if strconv.FormatInt(h.m.version, 10) != w.ETag {
		// 412: read the worker and its reservations again.
		h.log("412 (engine at %s, truth %d): reread", w.ETag, h.m.version)
		h.reread()
		return
	}
	if h.lastWriteInput == h.inputs {
		h.t.Fatalf("second write without any new input: %+v\n%v", d, h.history)
	}
	h.lastWriteInput = h.inputs
	h.ws.Writing("WKtest", d)
	h.writes++
	// As TaskRouter does for an update of both: the attributes first (an event still showing the
	// old activity), then the activity, each with its own version.
	if d.SetPending {
		attrs, err := SetStringAttribute(h.m.attrs, h.cfg.PendingAttribute, d.Pending, d.Pending == "")
		if err != nil {
			h.t.Fatal(err)
		}
		h.m.attrs = attrs
		h.m.version++
		h.m.emit("worker.attributes.update", "")
	}
	if d.ActivitySID != "" {
		h.m.activity = d.ActivitySID
		h.m.version++
		h.m.emit("worker.activity.update", "")
	}
	h.log("write %s pending(%v,%q) → v%d", h.cfg.name(d.ActivitySID), d.SetPending, d.Pending, h.m.version)
	answer := []string{h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs}
	if h.rng.Intn(5) == 0 {
		// A person's change lands just after the write, before its answer reaches the engine.
		h.personChanges("after the write")
	}
	if h.rng.Intn(2) == 0 {
		// The echo of the write can arrive before the answer to it.
		h.deliver(len(h.queue) + len(h.m.events))
	}
	h.ws.Written("WKtest", d, answer[0], answer[1], answer[2])
}

// reread reads the worker as the engine does after a 412: its reservations, then the worker.
func (h *harness) reread() {
	since := h.ws.Seq()
	live := map[string]Reservation{}
	for sid, r := range h.m.res {
		if r.Status != ResEnded {
			live[sid] = *r
		}
	}
	h.ws.ReadWorker("WKtest", "alice", h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs, live, since)
	h.inputs++
}

// truth is the decision on TaskRouter's state as it is, read fresh.
func (h *harness) truth() Decision {
	w := NewWorker("WKtest", "alice", h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs, h.cfg.PendingAttribute)
	for sid, r := range h.m.res {
		cp := *r
		w.Reservations[sid] = &cp
	}
	// In mode Allow, a person's change while busy stands until the work changes.
	w.Allowed = h.m.allowed
	return Decide(h.cfg, w)
}

func runInterleaving(t *testing.T, seed int64, steps int, v variant) {
	h := newHarness(t, seed, v)
	for i := 0; i < steps; i++ {
		h.step()
		if h.rng.Intn(2) == 0 {
			h.engine()
		}
	}
	// Quiesce: everything delivered (with duplicates), the engine decides until it has nothing to
	// do. Convergence must come within a few rounds: a 412 costs a reread, a write one round.
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
			t.Fatalf("seed %d (%v): no convergence\n%v", seed, v, h.history)
		}
	}
	if d := h.truth(); d.Changes() {
		t.Fatalf("seed %d (%v): converged to %s (pending attr %q) but the decision on TaskRouter's state is %+v\n%v",
			seed, v, h.cfg.name(h.m.activity), PendingFromAttributes(h.m.attrs, h.cfg.PendingAttribute), d, h.history)
	}
	// Every old event delivered again (late duplicates of the engine's own writes included)
	// changes nothing: no flip between two activities.
	writes := h.writes
	for i := 0; i < 3; i++ {
		h.queue = append(h.queue, h.m.events...)
		h.deliver(len(h.queue))
		h.engine()
	}
	if h.writes != writes {
		t.Fatalf("seed %d (%v): late duplicates caused %d more writes\n%v", seed, v, h.writes-writes, h.history)
	}
}

// TestInterleavingsConverge: whatever the order and number of deliveries, with the worker created
// at version 0 or not, one policy or two receiving every event, and people changing the activity
// alone or racing the engine's writes in mode Defer or Allow, the engine converges to the decision
// on TaskRouter's state and late duplicates change nothing.
func TestInterleavingsConverge(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.String(), func(t *testing.T) {
			for seed := int64(1); seed <= 500; seed++ {
				runInterleaving(t, seed, 60, v)
			}
		})
	}
}

func variants() []variant {
	var out []variant
	for i := 0; i < 8; i++ {
		out = append(out, variant{allow: i&1 != 0, twoPolicies: i&2 != 0, version0: i&4 != 0})
	}
	return out
}

func FuzzInterleavings(f *testing.F) {
	f.Add(int64(1), uint8(40), uint8(0))
	f.Fuzz(func(t *testing.T, seed int64, steps, v uint8) {
		runInterleaving(t, seed, int(steps), variants()[v%8])
	})
}
