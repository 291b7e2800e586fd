package deploy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// readRaceHold bounds how long a read is held: an engine that reads before it acknowledges a
// delivery would otherwise wait on itself.
const readRaceHold = 15 * time.Second

// readRace ends a call between two of the new leader's reads of reservations. The first read
// after the kill that lists a live workload task's reservations finds the call going on; the
// agent then wraps up and completes it, and the next read of reservations is held (a slow Twilio
// answer) until the simulator has delivered the call's end and a replica has acknowledged it. So
// the end of a call reaches the new leader while it is still reading the workspace, after its
// reads saw the call live: an engine that loses what it acknowledges before its picture is
// complete keeps counting that call (takeBreak shows it). An engine that reads otherwise (no read of a task's
// reservations, or none after it) is not raced; outcome says what happened.
type readRace struct {
	c       *scenario.ActivityCentre
	wl      *workload
	streams *eventStreams
	sink    string
	found   chan string
	ended   chan struct{}
	stop    chan struct{}

	mu   sync.Mutex
	task string
	held bool
	// outcome says whether and how the race was run.
	outcome string
	// hold says whether and how long a read was held for it.
	hold string
	// worker is the agent whose call was ended; failed says the test could not end it.
	worker string
	failed bool
}

// newReadRace prepares the race until the test ends; its request method goes to hookSim.
// sinkSID is the policy's Event Streams sink.
func newReadRace(t *testing.T, c *scenario.ActivityCentre, wl *workload, streams *eventStreams, sinkSID string) *readRace {
	t.Helper()
	rr := &readRace{
		c: c, wl: wl, streams: streams, sink: "sink:" + sinkSID,
		found: make(chan string, 1), ended: make(chan struct{}), stop: make(chan struct{}),
		outcome: "not run: no read of a live call's reservations after the kill",
		hold:    "no read after it was held",
	}
	go rr.run()
	t.Cleanup(func() { close(rr.stop) })
	return rr
}

// request sees every REST request of the simulator (in the request's goroutine, before it is
// processed): it picks the first read of a workload task's reservations and holds the next read
// of reservations until the picked call's end is acknowledged.
func (rr *readRace) request(r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/Reservations") {
		return
	}
	rr.mu.Lock()
	switch {
	case rr.task == "":
		task := taskOfPath(r.URL.Path)
		if task == "" || !rr.wl.plays(task) {
			rr.mu.Unlock()
			return
		}
		rr.task = task
		rr.mu.Unlock()
		rr.found <- task
	case !rr.held:
		rr.held = true
		rr.mu.Unlock()
		start := time.Now()
		select {
		case <-rr.ended:
			rr.setHold(fmt.Sprintf("the next read (%s) was held %s until then", r.URL.Path, time.Since(start).Round(time.Millisecond)))
		case <-time.After(readRaceHold):
			rr.setHold(fmt.Sprintf("its end was not acknowledged within %s of the next read, which went on", readRaceHold))
		}
	default:
		rr.mu.Unlock()
	}
}

// taskOfPath is the task SID of .../Tasks/{sid}/Reservations ("" for another path).
func taskOfPath(path string) string {
	parts := strings.Split(path, "/")
	if n := len(parts); n >= 3 && parts[n-3] == "Tasks" {
		return parts[n-2]
	}
	return ""
}

// run ends the picked call as its agent does and closes ended once the end has been delivered
// and acknowledged.
func (rr *readRace) run() {
	var task string
	select {
	case <-rr.stop:
		return
	case task = <-rr.found:
	}
	rr.wl.release(task)
	var res twiliosim.ReservationState
	for _, r := range rr.c.Reservations() {
		if r.TaskSID == task && (r.Status == "pending" || r.Status == "accepted" || r.Status == "wrapping") {
			res = r
		}
	}
	if res.SID == "" {
		rr.setOutcome(fmt.Sprintf("not run: task %s ended before the test could end it", task))
		return
	}
	rr.mu.Lock()
	rr.worker = res.WorkerSID
	rr.mu.Unlock()
	sim := rr.c.Env.Sim
	steps := map[string][]func() error{
		"pending":  {func() error { return sim.Accept(res.SID) }, func() error { return sim.Wrapup(res.SID) }},
		"accepted": {func() error { return sim.Wrapup(res.SID) }},
	}[res.Status]
	steps = append(steps, func() error { return sim.Complete(res.SID) })
	for _, step := range steps {
		if err := step(); err != nil {
			rr.mu.Lock()
			rr.outcome, rr.failed = fmt.Sprintf("failed: end task %s (%s of %s): %v", task, res.Status, res.WorkerName, err), true
			rr.mu.Unlock()
			return
		}
	}
	rr.setOutcome(fmt.Sprintf("task %s (%s of %s) ended after the new leader read it live, and the end was acknowledged", task, res.Status, res.WorkerName))
	// Everything the simulator emitted until now (the call's end with it) was taken from the
	// simulator and acknowledged by a replica.
	err := scenario.Poll(context.Background(), readRaceHold, func() (bool, error) {
		select {
		case <-rr.stop:
			return false, fmt.Errorf("test ended")
		default:
		}
		return sim.Deliveries().Destination(rr.sink).Pending == 0 && rr.streams.stats().pending == 0, nil
	})
	if err == nil {
		close(rr.ended)
	}
}

// takeBreak has the agent whose call was ended pick Break (once the new leader has its picture
// of the workspace; nothing when no call was ended) and returns the agent's worker SID. The
// agent is idle, so Break stands; an engine that still counts the call defers it instead.
func (rr *readRace) takeBreak() (string, error) {
	rr.mu.Lock()
	agent := rr.worker
	rr.mu.Unlock()
	if agent == "" {
		return "", nil
	}
	return agent, rr.c.Env.Sim.SetWorkerActivity(agent, "Break")
}

// failure is what went wrong when the test could not end the call ("" when nothing did).
func (rr *readRace) failure() string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if !rr.failed {
		return ""
	}
	return rr.outcome
}

func (rr *readRace) setOutcome(s string) {
	rr.mu.Lock()
	rr.outcome = s
	rr.mu.Unlock()
}

func (rr *readRace) setHold(s string) {
	rr.mu.Lock()
	rr.hold = s
	rr.mu.Unlock()
}

func (rr *readRace) String() string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.worker == "" {
		return rr.outcome
	}
	return rr.outcome + "; " + rr.hold
}
