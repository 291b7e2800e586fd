package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// Limits of the recovery store.
const (
	// maxConflictRetries bounds the re-read-and-reapply rounds of one status write. Conflicts come
	// from the controller (or another replica) writing the same object; each round re-reads it
	// uncached, so a handful always suffices unless something writes in a loop.
	maxConflictRetries = 10
	// maxBatch caps how many waiting operations go into one status write.
	maxBatch = 256
	// taskRetryInterval is how long a conference whose task could not be read waits before the
	// task is fetched again (its recovery exists, so events are still recorded meanwhile).
	taskRetryInterval = 5 * time.Second
	// storeRetryWindow is how long an op that could not be stored (the API server, or Twilio for
	// the conference's task, failing) is tried again in-process. Twilio sends a conference callback
	// once, whatever the answer, so a transient failure must be outlasted here, not left to a
	// redelivery that never comes. The request that brought the op stops waiting after its own
	// budget (RoutesOptions.HandlerTimeout) and answers 503; the op goes on being tried.
	storeRetryWindow = 30 * time.Second
	// storeMinBackoff and storeMaxBackoff bound the wait between two tries of a failed batch.
	storeMinBackoff = 25 * time.Millisecond
	storeMaxBackoff = time.Second
)

// errNoLeg and errForbidden are returned by a Flex companion mark that cannot be applied.
// errStale is returned by a mutation that depends on what the controller wrote (the current
// incident) and did not find it: the writer's copy may predate that write, so it reads the
// object again once before taking the answer.
var (
	errStale     = errors.New("the recovery does not show what the event is about; reading it again")
	errNoLeg     = errors.New("no connected agent leg of this worker in the conference")
	errForbidden = errors.New("the leg belongs to another worker")
)

// recoveryStore writes the webhook's observations into ConferenceRecovery status.
//
// Writes to one recovery are serialised inside this replica: each conference has a queue of
// operations and at most one writer goroutine. The writer takes every operation waiting in the
// queue, applies them all to the object and writes status once (group commit), so that a burst of
// callbacks for one call costs one API write instead of one each, and no two writes of this
// replica race each other into a conflict. Writes carry the resourceVersion they were computed
// from; a conflict (the controller, or another replica, wrote in between) re-reads the object
// from the API server, bypassing the cache, and re-applies the same operations, which are pure
// functions of the status. The last object written is kept, so the common path makes no read at
// all: one Update per batch.
type recoveryStore struct {
	client    client.Client
	apiReader client.Reader
	log       logr.Logger
	// timeout bounds one batch (reads, a task fetch, the write and its conflict retries).
	timeout time.Duration
	// retryWindow is how long an op that could not be stored is tried again (storeRetryWindow).
	retryWindow time.Duration

	mu    sync.Mutex
	confs *lru[types.NamespacedName, *confState]
}

// confState is what the store keeps per conference: the queue, and what the writer has learnt.
// It doubles as the cache of the conference's task (including negatives for conferences that are
// not protected), bounded with the rest by the LRU.
type confState struct {
	key types.NamespacedName
	// refs counts the writer and submitters holding the entry; guarded by recoveryStore.mu. A
	// referenced entry is never evicted, so one conference never has two writers here.
	refs int

	mu      sync.Mutex
	pending []*op
	running bool
	// wake cuts short the writer's wait before trying a failed batch again: a new op is a good
	// moment to try (its request has a budget of its own to spend).
	wake chan struct{}
	// linked is set once the old recovery of a reconnect conference points at this conference.
	linked bool
	// seen is what the writer last published for handlers to read without waiting for it: the
	// recovery as last read or written (never modified once published) and what the task says.
	seen picture

	// Owned by the running writer.
	obj  *v1alpha1.ConferenceRecovery // last version read or written; nil when unknown
	info *conferenceInfo              // what the task says; nil until a conference event needs it
	gone bool                         // the object was deleted under us: drop later events
}

// op is one change to a recovery, queued for its conference's writer.
type op struct {
	// conference is set for a conference status callback, the only kind of op that may create
	// the recovery.
	conference *conferenceOp
	// mutate changes the recovery and reports whether it did. An error rejects the op alone
	// (nothing of it may have been applied); the rest of the batch is still written.
	mutate func(rec *v1alpha1.ConferenceRecovery) (bool, error)

	// deadline ends the in-process retries of an op that could not be stored (storeRetryWindow).
	deadline time.Time
	done     chan opResult
}

// conferenceOp is a conference status callback with the policy it arrived for.
type conferenceOp struct {
	event  events.ConferenceEvent
	policy *v1alpha1.ConferenceRecoveryPolicy
	twilio twilio.Client
	// corrected is set when the handler already set endConferenceOnExit back to false for this
	// callback (see Routes.correctFirst); the writer records it on the leg.
	corrected bool
	// info is what the handler learnt of the conference's task, when it had to read it first;
	// the writer takes it over instead of reading the task again.
	info *conferenceInfo
	// receivedAt is when the request arrived, by the operator's clock.
	receivedAt time.Time
}

// picture is what a handler may read of a conference while its writer runs.
type picture struct {
	rec  *v1alpha1.ConferenceRecovery
	info *conferenceInfo // a copy: the writer's own changes as it learns
}

// view returns what the store last published about the recovery at key (zero when nothing).
func (s *recoveryStore) view(key types.NamespacedName) picture {
	s.mu.Lock()
	cs, ok := s.confs.get(key)
	s.mu.Unlock()
	if !ok {
		return picture{}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.seen
}

// publish makes the writer's current picture visible to handlers.
func (cs *confState) publish() {
	var info *conferenceInfo
	if cs.info != nil {
		info = cs.info.clone()
	}
	cs.mu.Lock()
	cs.seen = picture{rec: cs.obj, info: info}
	cs.mu.Unlock()
}

// opResult is how an op ended.
type opResult struct {
	// outcome is one of the outcome* constants when err is nil.
	outcome string
	// err is set when the op could not be stored (answer 5xx) or was rejected by mutate.
	err error
	// For conference ops: the reconnect linkage still to make (see Routes.linkReconnect).
	reconnectOf, taskSID string
	needLink             bool
}

func newRecoveryStore(c client.Client, apiReader client.Reader, log logr.Logger, size int, timeout time.Duration) *recoveryStore {
	return &recoveryStore{client: c, apiReader: apiReader, log: log, timeout: timeout, retryWindow: storeRetryWindow,
		confs: newLRU[types.NamespacedName, *confState](size)}
}

// recoveryKey names the ConferenceRecovery of a conference: the SID in lower case.
func recoveryKey(namespace, conferenceSID string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: lowerASCII(conferenceSID)}
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// submit queues o for the recovery key and makes sure a writer runs; wait for the result with
// o.wait.
func (s *recoveryStore) submit(key types.NamespacedName, o *op) *op {
	o.done = make(chan opResult, 1)
	o.deadline = time.Now().Add(s.retryWindow)
	s.mu.Lock()
	cs, ok := s.confs.get(key)
	if !ok {
		// Referenced before it is added, so that no eviction, however full the cache is of
		// conferences in flight, can drop it and let a second writer start for the conference.
		cs = &confState{key: key, wake: make(chan struct{}, 1)}
		cs.refs++
		s.confs.add(key, cs, func(c *confState) bool { return c.refs > 0 })
	} else {
		cs.refs++ // held until the op is queued, or handed to the writer started below
	}
	s.mu.Unlock()

	cs.mu.Lock()
	cs.pending = append(cs.pending, o)
	start := !cs.running
	cs.running = true
	cs.mu.Unlock()
	if start {
		go s.run(cs) // takes over our reference
		return o
	}
	select {
	case cs.wake <- struct{}{}:
	default:
	}
	s.release(cs)
	return o
}

func (s *recoveryStore) release(cs *confState) {
	s.mu.Lock()
	cs.refs--
	s.mu.Unlock()
}

// wait returns the op's result, or an error when ctx ends first (the op may still be applied).
func (o *op) wait(ctx context.Context) opResult {
	select {
	case res := <-o.done:
		return res
	case <-ctx.Done():
		return opResult{err: fmt.Errorf("waiting for the status write: %w", ctx.Err())}
	}
}

// markLinked records that the reconnect linkage of the conference at key was made.
func (s *recoveryStore) markLinked(key types.NamespacedName) {
	s.mu.Lock()
	cs, ok := s.confs.get(key)
	s.mu.Unlock()
	if ok {
		cs.mu.Lock()
		cs.linked = true
		cs.mu.Unlock()
	}
}

// run is the conference's writer: it commits batches until the queue is empty. The ops of a batch
// that could not be stored go back to the head of the queue and are tried again after a backoff,
// together with whatever arrived meanwhile, until each one's deadline.
func (s *recoveryStore) run(cs *confState) {
	defer s.release(cs)
	var backoff time.Duration
	for {
		cs.publish()
		cs.mu.Lock()
		n := min(len(cs.pending), maxBatch)
		if n == 0 {
			cs.running = false
			cs.mu.Unlock()
			return
		}
		batch := slices.Clone(cs.pending[:n])
		cs.pending = slices.Delete(cs.pending, 0, n)
		cs.mu.Unlock()
		again := s.commit(cs, batch)
		if len(again) == 0 {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, storeMinBackoff), storeMaxBackoff)
		cs.mu.Lock()
		cs.pending = append(again, cs.pending...)
		cs.mu.Unlock()
		storeRetriesTotal.Add(float64(len(again)))
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-cs.wake:
			timer.Stop()
		}
	}
}

// storeError is a failure to read or write the API server, or to read the conference's task from
// Twilio, while storing a batch: it says nothing about the ops themselves, which are tried again.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// retryable marks err as a storeError unless retrying cannot help: the API server refused the
// request as invalid or not allowed, or Twilio answered a 4xx other than 429.
func retryable(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err),
		apierrors.IsUnauthorized(err), apierrors.IsMethodNotSupported(err), twilio.IsTerminal(err):
		return err
	}
	return &storeError{err: err}
}

// tryAgain reports whether an op that ended with err goes back to the queue.
func (o *op) tryAgain(err error, now time.Time) bool {
	var se *storeError
	return errors.As(err, &se) && now.Before(o.deadline)
}
