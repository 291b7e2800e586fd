package activity

import (
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// TestOneQueueKeyPerWorker: a worker to read first and a worker to decide are one queue key, so
// the workqueue never hands one worker to two goroutines: work for a worker being processed waits
// for it, and the need to read it first is kept as state until then.
func TestOneQueueKeyPerWorker(t *testing.T) {
	r := &run{
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, time.Second)),
		needRead: map[string]bool{}, retrying: map[string]bool{},
	}
	defer r.queue.ShutDown()
	r.mu.Lock()
	r.readFirst("WK1")
	r.mu.Unlock()
	r.queue.Add("WK1")
	if n := r.queue.Len(); n != 1 {
		t.Fatalf("%d queue entries for one worker to read and decide, want 1", n)
	}
	key, _ := r.queue.Get()
	// An event and a 412 for the worker while a goroutine holds her.
	r.queue.Add("WK1")
	r.mu.Lock()
	r.readFirst("WK1")
	r.mu.Unlock()
	if n := r.queue.Len(); n != 0 {
		t.Fatalf("%d entries another goroutine could take while the worker is being processed", n)
	}
	r.queue.Done(key)
	if n := r.queue.Len(); n != 1 || !r.needRead["WK1"] {
		t.Fatalf("after the first goroutine: %d entries, read first %v; want 1 and true", n, r.needRead["WK1"])
	}
}
