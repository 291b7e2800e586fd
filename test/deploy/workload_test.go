package deploy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// workload drives TaskRouter traffic through the simulator as callers and agents in Flex make
// it: it keeps a number of voice tasks alive on the workflow, and the agent offered each accepts
// at once, talks for a while, wraps up for a while and completes. It plays only the tasks it
// created (other reservations are the test's) and never sets an activity: that is the operator's
// job.
type workload struct {
	c    *scenario.ActivityCentre
	live int
	rng  *rand.Rand
	stop chan struct{}
	done chan struct{}

	// stepping is held while a step moves tasks, so that release never meets a step half done.
	stepping sync.Mutex
	mu       sync.Mutex
	// created are the tasks the workload created; stages the step each of their reservations is
	// in, by reservation SID.
	created map[string]bool
	stages  map[string]stage
	// accepted, wrapped and completed count the reservations moved; failures what went wrong.
	accepted, wrapped, completed int
	failures                     []string
}

// stage is a reservation's status when the workload first saw it there, and how long it is held.
type stage struct {
	status string
	since  time.Time
	hold   time.Duration
}

// startWorkload keeps live tasks alive until stopped; it must be fewer than the agents able to
// take them, so that every task is offered at once and none waits in the queue.
func startWorkload(c *scenario.ActivityCentre, live int) *workload {
	wl := &workload{
		c: c, live: live, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16)),
		stop: make(chan struct{}), done: make(chan struct{}),
		created: map[string]bool{}, stages: map[string]stage{},
	}
	go wl.run()
	return wl
}

func (wl *workload) run() {
	defer close(wl.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	stopping := false
	for {
		select {
		case <-wl.stop:
			stopping = true
		case <-tick.C:
		}
		wl.stepping.Lock()
		settled := wl.step(stopping)
		wl.stepping.Unlock()
		if stopping && settled {
			return
		}
	}
}

// step moves what is due and tops the live tasks up (unless stopping). It reports whether no
// task of the workload is left offered or waiting for an agent.
func (wl *workload) step(stopping bool) (settled bool) {
	now := time.Now()
	reserved := map[string]bool{}
	live, waiting := 0, 0
	for _, r := range wl.c.Reservations() {
		wl.mu.Lock()
		mine := wl.created[r.TaskSID]
		st, seen := wl.stages[r.SID]
		wl.mu.Unlock()
		if !mine {
			continue
		}
		reserved[r.TaskSID] = true
		if !seen || st.status != r.Status {
			st = stage{status: r.Status, since: now, hold: wl.holdFor(r.Status)}
			wl.mu.Lock()
			wl.stages[r.SID] = st
			wl.mu.Unlock()
		}
		switch r.Status {
		case "pending":
			live++
			waiting++
			wl.move(r, "accept", wl.c.Env.Sim.Accept, &wl.accepted)
		case "accepted":
			live++
			if !stopping && now.Sub(st.since) >= st.hold {
				wl.move(r, "wrap up", wl.c.Env.Sim.Wrapup, &wl.wrapped)
			}
		case "wrapping":
			live++
			if !stopping && now.Sub(st.since) >= st.hold {
				wl.move(r, "complete", wl.c.Env.Sim.Complete, &wl.completed)
			}
		}
	}
	wl.mu.Lock()
	for task := range wl.created {
		if !reserved[task] {
			live++
			waiting++
		}
	}
	wl.mu.Unlock()
	for ; !stopping && live < wl.live; live++ {
		task, err := wl.c.CreateTask(context.Background(), "voice", "")
		wl.mu.Lock()
		if err != nil {
			wl.failures = append(wl.failures, fmt.Sprintf("create a task: %v", err))
		} else {
			wl.created[task] = true
		}
		wl.mu.Unlock()
	}
	return waiting == 0
}

// holdFor is how long a reservation stays in a status before the agent moves it on: a call of
// one to three seconds, a wrap-up of a third of a second to a second and a half.
func (wl *workload) holdFor(status string) time.Duration {
	switch status {
	case "accepted":
		return time.Second + time.Duration(wl.rng.Int64N(int64(2*time.Second)))
	case "wrapping":
		return 300*time.Millisecond + time.Duration(wl.rng.Int64N(int64(1200*time.Millisecond)))
	}
	return 0
}

// move makes one agent's step and counts it.
func (wl *workload) move(r twiliosim.ReservationState, what string, step func(string) error, count *int) {
	err := step(r.SID)
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if err != nil {
		wl.failures = append(wl.failures, fmt.Sprintf("%s %s of %s: %v", what, r.SID, r.WorkerName, err))
		return
	}
	*count++
}

// plays reports whether the task is one of the workload's.
func (wl *workload) plays(task string) bool {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return wl.created[task]
}

// release stops the workload playing a task: the test moves it from now on.
func (wl *workload) release(task string) {
	wl.stepping.Lock()
	wl.mu.Lock()
	delete(wl.created, task)
	wl.mu.Unlock()
	wl.stepping.Unlock()
}

// completedCount is how many reservations the workload completed so far.
func (wl *workload) completedCount() int {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return wl.completed
}

// end stops creating tasks and moving calls on, accepts what is still offered, and returns once
// every task of the workload is accepted, wrapping or completed: the work stands still.
func (wl *workload) end() {
	select {
	case <-wl.stop:
	default:
		close(wl.stop)
	}
	<-wl.done
}

func (wl *workload) String() string {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return fmt.Sprintf("%d tasks created, %d reservations accepted, %d wrapped up, %d completed", len(wl.created), wl.accepted, wl.wrapped, wl.completed)
}
