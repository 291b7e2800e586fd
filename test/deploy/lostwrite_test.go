package deploy

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// lostWrite loses the leader's last word on an agent: the first update of a workload agent to
// Available (its call just completed) is held, with every update of that agent after it, until
// the leader is killed, and then dropped unprocessed, as a request in flight is lost with the
// process that sent it. The leader acknowledged the delivery that ended the call; Event Streams
// never sends it again, and the agent is left idle in Wrap Up. Only a new leader that reads the
// workspace (or reads that agent) finds out.
type lostWrite struct {
	available string
	agents    map[string]bool
	picked    chan struct{}
	killed    chan struct{}
	kill      sync.Once
	// armed: the next update to Available is picked (not before, so that the agent is among the
	// latest to have taken a call, and the last TaskRouter offers the next one to).
	armed atomic.Bool

	mu     sync.Mutex
	worker string
	held   int
}

// newLostWrite watches the updates of agents (worker SIDs) to activity available (its SID) until
// the test ends; its request method goes to hookSim.
func newLostWrite(t *testing.T, available string, agents map[string]bool) *lostWrite {
	lw := &lostWrite{available: available, agents: agents, picked: make(chan struct{}), killed: make(chan struct{})}
	t.Cleanup(lw.leaderKilled)
	return lw
}

// request holds (then drops) the picked agent's updates made before the leader is killed.
func (lw *lostWrite) request(r *http.Request) {
	if r.Method != http.MethodPost {
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	if n := len(parts); n < 2 || parts[n-2] != "Workers" || !lw.agents[parts[n-1]] {
		return
	}
	sid := parts[len(parts)-1]
	select {
	case <-lw.killed:
		return
	default:
	}
	lw.mu.Lock()
	if lw.worker == "" && lw.armed.Load() && r.Form.Get("ActivitySid") == lw.available {
		lw.worker = sid
		close(lw.picked)
	}
	hold := lw.worker == sid
	if hold {
		lw.held++
	}
	lw.mu.Unlock()
	if !hold {
		return
	}
	<-lw.killed
	// Lost: the simulator never processes it (net/http ends the request without an answer).
	panic(http.ErrAbortHandler)
}

// arm picks the next update of an agent to Available.
func (lw *lostWrite) arm() { lw.armed.Store(true) }

// leaderKilled drops the held updates.
func (lw *lostWrite) leaderKilled() { lw.kill.Do(func() { close(lw.killed) }) }

// agent is the worker SID whose update is lost ("" before one is picked), and how many of its
// updates were.
func (lw *lostWrite) agent() (string, int) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.worker, lw.held
}
