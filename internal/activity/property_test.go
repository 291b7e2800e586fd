package activity

import (
	"fmt"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

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
	m.events = append(m.events, ev)
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

func newHarness(t *testing.T, seed int64) *harness {
	cfg := testConfig()
	ws := NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: cfg}})
	m := &model{activity: sidAvailable, version: 1, attrs: `{"skills":["a"]}`, res: map[string]*Reservation{}, taskVersion: map[string]int64{}}
	ws.PutWorker("WKtest", "alice", m.activity, "1", m.attrs)
	return &harness{t: t, rng: rand.New(rand.NewSource(seed)), m: m, ws: ws, cfg: cfg, lastWriteInput: -1}
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
	case k < 5: // a live reservation moves on
		for sid, r := range m.res {
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
		acts := []string{sidAvailable, sidBreak, sidOffline, sidBackup, sidOnATask, sidWrapup}
		a := acts[h.rng.Intn(len(acts))]
		if a != m.activity {
			m.activity = a
			m.version++
			m.emit("worker.activity.update", "")
			h.log("person sets %s", a)
		}
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
	if h.rng.Intn(2) == 0 {
		// The echo of the write can arrive before the answer to it.
		h.deliver(len(h.queue) + len(h.m.events))
	}
	h.ws.Written("WKtest", d, h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs)
}

func (h *harness) reread() {
	h.ws.PutWorker("WKtest", "alice", h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs)
	since := h.ws.Seq()
	live := map[string]Reservation{}
	for sid, r := range h.m.res {
		if r.Status != ResEnded {
			live[sid] = *r
		}
	}
	h.ws.SetReservations("WKtest", live, since)
	h.inputs++
}

// truth is the decision on TaskRouter's state as it is, read fresh.
func (h *harness) truth() Decision {
	w := NewWorker("WKtest", "alice", h.m.activity, strconv.FormatInt(h.m.version, 10), h.m.attrs, h.cfg.PendingAttribute)
	for sid, r := range h.m.res {
		cp := *r
		w.Reservations[sid] = &cp
	}
	return Decide(h.cfg, w)
}

func runInterleaving(t *testing.T, seed int64, steps int) {
	h := newHarness(t, seed)
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
			t.Fatalf("seed %d: no convergence\n%v", seed, h.history)
		}
	}
	if d := h.truth(); d.Changes() {
		t.Fatalf("seed %d: converged to %s (pending attr %q) but the decision on TaskRouter's state is %+v\n%v",
			seed, h.cfg.name(h.m.activity), PendingFromAttributes(h.m.attrs, h.cfg.PendingAttribute), d, h.history)
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
		t.Fatalf("seed %d: late duplicates caused %d more writes\n%v", seed, h.writes-writes, h.history)
	}
}

func TestInterleavingsConverge(t *testing.T) {
	for seed := int64(1); seed <= 2000; seed++ {
		runInterleaving(t, seed, 60)
	}
}

func FuzzInterleavings(f *testing.F) {
	f.Add(int64(1), uint8(40))
	f.Fuzz(func(t *testing.T, seed int64, steps uint8) {
		runInterleaving(t, seed, int(steps))
	})
}
