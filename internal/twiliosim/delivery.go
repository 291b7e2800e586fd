package twiliosim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// Webhooks leave the simulator through one queue per destination (a sink,
// a conference status callback URL, a legacy event callback URL), each
// drained by its own goroutine in order of occurrence. Nothing here holds
// s.mu, so a receiver may call the simulator while handling a webhook.

type deliveryKind int

const (
	kindJSON deliveryKind = iota // Event Streams CloudEvents
	kindForm                     // conference status and legacy callbacks
)

// maxBatchEvents and maxBatchBytes bound one Event Streams batch (Twilio
// documented a 64 kB limit for batched payloads).
const (
	maxBatchEvents = 100
	maxBatchBytes  = 64 << 10
	maxLogRecords  = 500
)

type destination struct {
	url   string
	kind  deliveryKind
	batch bool
	// retry says whether 429, 5xx and connection errors are retried.
	retry bool
	// conference marks a conference status callback: Twilio sends it once, so it is retried only
	// under the RetryConferenceCallbacks fault.
	conference bool
}

type item struct {
	event   map[string]any
	eventID string
	form    url.Values
	testID  string
}

type queued struct {
	item
	dest destination
}

type dqueue struct {
	key      string
	items    []queued
	inflight int
	wake     chan struct{}
	stats    DestinationStats
}

// DestinationStats counts the webhooks of one destination. Delivered,
// Dropped, Refused and Pending count events (or callbacks); Attempts, Retries
// and Duplicates count HTTP requests.
type DestinationStats struct {
	// Key names the destination: "sink:DG…", "callback:<url>" or
	// "legacy:<url>".
	Key        string
	URL        string
	Attempts   int
	Retries    int
	Duplicates int
	Delivered  int
	Dropped    int
	// Refused counts the dropped webhooks whose last attempt the receiver
	// refused (an answer other than 2xx) or could not be reached for, as
	// opposed to those a fault or a deleted sink discarded unsent;
	// Unreachable counts those of them that got no answer at all
	// (connection refused or reset, timeout).
	Refused     int
	Unreachable int
	Pending     int
	// LastStatus is the HTTP status of the last attempt (0 for a
	// connection error, whose text is LastError).
	LastStatus int
	LastError  string
}

// DeliveryStats sums DestinationStats over every destination.
type DeliveryStats struct {
	Attempts     int
	Retries      int
	Duplicates   int
	Delivered    int
	Dropped      int
	Refused      int
	Unreachable  int
	Pending      int
	Destinations []DestinationStats
}

// Destination returns the stats of one destination key (zero if unknown).
func (d DeliveryStats) Destination(key string) DestinationStats {
	for _, ds := range d.Destinations {
		if ds.Key == key {
			return ds
		}
	}
	return DestinationStats{Key: key}
}

// DeliveryRecord is one webhook request, for debugging.
type DeliveryRecord struct {
	At      time.Time // wall-clock time of the attempt
	Key     string
	URL     string
	Items   int
	Attempt int
	Status  int
	Error   string `json:",omitempty"`
}

type deliverer struct {
	token       string
	client      *http.Client
	minBackoff  time.Duration
	maxBackoff  time.Duration
	maxAttempts int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	queues  map[string]*dqueue
	order   []string
	faults  Faults
	changed chan struct{}
	tests   map[string]bool
	held    []queued
	log     []DeliveryRecord
	closed  bool
}

func newDeliverer(s *Sim, opts Options) *deliverer {
	d := &deliverer{
		token:       s.authToken,
		client:      opts.HTTPClient,
		minBackoff:  opts.DeliveryMinBackoff,
		maxBackoff:  opts.DeliveryMaxBackoff,
		maxAttempts: opts.DeliveryMaxAttempts,
		queues:      map[string]*dqueue{},
		changed:     make(chan struct{}),
		tests:       map[string]bool{},
	}
	if d.minBackoff <= 0 {
		d.minBackoff = 10 * time.Millisecond
	}
	if d.maxBackoff <= 0 {
		d.maxBackoff = 500 * time.Millisecond
	}
	if d.maxAttempts <= 0 {
		d.maxAttempts = 20
	}
	if d.client == nil {
		timeout := opts.DeliveryTimeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		d.client = &http.Client{
			Timeout: timeout,
			// Twilio does not follow redirects for webhooks.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

func sinkKey(sid string) string { return "sink:" + sid }

// notify wakes WaitDeliveries; d.mu must be held.
func (d *deliverer) notify() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// enqueue adds one webhook to a destination's queue, starting its goroutine
// on first use.
func (d *deliverer) enqueue(key string, dest destination, it item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	q, ok := d.queues[key]
	if !ok {
		q = &dqueue{key: key, wake: make(chan struct{}, 1), stats: DestinationStats{Key: key}}
		d.queues[key] = q
		d.order = append(d.order, key)
		d.wg.Add(1)
		go d.run(q)
	}
	q.stats.URL = dest.url
	if it.form != nil && d.faults.DropCallbacks != nil && d.faults.DropCallbacks(it.form) {
		q.stats.Dropped++
		d.notify()
		return
	}
	if it.form != nil && d.faults.HoldCallbacks != nil && d.faults.HoldCallbacks(it.form) {
		d.held = append(d.held, queued{item: it, dest: dest})
		d.notify()
		return
	}
	q.items = append(q.items, queued{item: it, dest: dest})
	q.stats.Pending = len(q.items) + q.inflight
	select {
	case q.wake <- struct{}{}:
	default:
	}
	d.notify()
}

// drop discards what is queued for a destination (a deleted sink).
func (d *deliverer) drop(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q, ok := d.queues[key]; ok {
		q.stats.Dropped += len(q.items)
		q.items = nil
		q.stats.Pending = q.inflight
		d.notify()
	}
}

// releaseHeld queues the held callbacks again, in the order they were held,
// behind whatever their destinations have queued meanwhile.
func (d *deliverer) releaseHeld() int {
	d.mu.Lock()
	held := d.held
	d.held = nil
	d.mu.Unlock()
	for _, h := range held {
		d.enqueueAfterHold(h)
	}
	return len(held)
}

func (d *deliverer) enqueueAfterHold(h queued) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range d.queues {
		if q.stats.URL == h.dest.url {
			q.items = append(q.items, h)
			q.stats.Pending = len(q.items) + q.inflight
			select {
			case q.wake <- struct{}{}:
			default:
			}
			d.notify()
			return
		}
	}
}

func (d *deliverer) setFaults(f Faults) {
	d.mu.Lock()
	d.faults = f
	d.mu.Unlock()
}

func (d *deliverer) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
}

// take removes the next request's worth of items from the queue: a batch of
// JSON events for a batching sink, else one item. With the reorder fault it
// reverses a batch, or sends the second queued item before the first.
func (d *deliverer) take(q *dqueue) []queued {
	first := q.items[0]
	n := 1
	// A sink test event always travels alone, so Validate can tell it
	// arrived.
	if first.dest.kind == kindJSON && first.dest.batch && first.testID == "" {
		b, _ := json.Marshal(first.event)
		size := len(b)
		for n < len(q.items) && n < maxBatchEvents {
			it := q.items[n]
			if it.dest != first.dest || it.testID != "" {
				break
			}
			b, _ := json.Marshal(it.event)
			if size+len(b) > maxBatchBytes {
				break
			}
			size += len(b)
			n++
		}
	}
	if d.faults.ReorderDeliveries {
		if n > 1 {
			batch := append([]queued(nil), q.items[:n]...)
			q.items = q.items[n:]
			slices.Reverse(batch)
			return batch
		}
		if len(q.items) > 1 && q.items[1].dest == first.dest {
			second := q.items[1]
			q.items = append(q.items[:1:1], q.items[2:]...)
			return []queued{second}
		}
	}
	batch := append([]queued(nil), q.items[:n]...)
	q.items = q.items[n:]
	return batch
}

func (d *deliverer) run(q *dqueue) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for len(q.items) == 0 {
			d.mu.Unlock()
			select {
			case <-q.wake:
			case <-d.ctx.Done():
				return
			}
			d.mu.Lock()
		}
		if d.faults.ReorderDeliveries && len(q.items) == 1 {
			// Give a second webhook a moment to arrive so there is
			// something to reorder.
			d.mu.Unlock()
			select {
			case <-time.After(50 * time.Millisecond):
			case <-d.ctx.Done():
				return
			}
			d.mu.Lock()
			if len(q.items) == 0 {
				d.mu.Unlock()
				continue
			}
		}
		batch := d.take(q)
		q.inflight = len(batch)
		faults := d.faults
		d.mu.Unlock()

		delivered, answered := d.send(q, batch, faults)

		d.mu.Lock()
		q.inflight = 0
		if delivered {
			q.stats.Delivered += len(batch)
			for _, it := range batch {
				if it.testID != "" {
					d.tests[it.testID] = true
				}
			}
		} else {
			q.stats.Dropped += len(batch)
			if d.ctx.Err() == nil {
				q.stats.Refused += len(batch)
				if !answered {
					q.stats.Unreachable += len(batch)
				}
			}
		}
		q.stats.Pending = len(q.items)
		d.notify()
		d.mu.Unlock()
	}
}

// send posts one batch, retrying as Twilio does; it reports whether the
// receiver accepted it, and whether the last attempt got an answer at all.
func (d *deliverer) send(q *dqueue, batch []queued, faults Faults) (delivered, answered bool) {
	dest := batch[0].dest
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := d.post(dest, batch)
		d.record(q, dest, len(batch), attempt, status, err)
		if err == nil && status >= 200 && status < 300 {
			if faults.DuplicateDeliveries {
				st, _, err := d.post(dest, batch)
				d.mu.Lock()
				q.stats.Duplicates++
				d.mu.Unlock()
				d.record(q, dest, len(batch), attempt, st, err)
			}
			return true, true
		}
		retryable := err != nil || status == http.StatusTooManyRequests || status >= 500
		retry := dest.retry || dest.conference && faults.RetryConferenceCallbacks
		if !retry || !retryable || attempt >= d.maxAttempts {
			return false, err == nil
		}
		wait := d.minBackoff << min(attempt-1, 20)
		if retryAfter > wait {
			wait = retryAfter
		}
		wait = min(wait, d.maxBackoff)
		d.mu.Lock()
		q.stats.Retries++
		d.mu.Unlock()
		select {
		case <-time.After(wait):
		case <-d.ctx.Done():
			return false, err == nil
		}
	}
}

func (d *deliverer) record(q *dqueue, dest destination, items, attempt, status int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q.stats.Attempts++
	q.stats.LastStatus = status
	q.stats.LastError = ""
	rec := DeliveryRecord{At: time.Now(), Key: q.key, URL: dest.url, Items: items, Attempt: attempt, Status: status}
	if err != nil {
		q.stats.LastError = err.Error()
		rec.Error = err.Error()
	}
	d.log = append(d.log, rec)
	if len(d.log) > maxLogRecords {
		d.log = d.log[len(d.log)-maxLogRecords:]
	}
	d.notify()
}

// post makes one signed request and returns the status and Retry-After.
func (d *deliverer) post(dest destination, batch []queued) (int, time.Duration, error) {
	var (
		target, sig, ctype string
		body               []byte
	)
	switch dest.kind {
	case kindJSON:
		var err error
		if dest.batch {
			evs := make([]map[string]any, len(batch))
			for i, it := range batch {
				evs[i] = it.event
			}
			body, err = json.Marshal(evs)
		} else {
			body, err = json.Marshal(batch[0].event)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("encode events: %w", err)
		}
		target = events.BodySHA256URL(dest.url, body)
		sig = events.SignJSON(d.token, target)
		ctype = "application/json"
	case kindForm:
		form := batch[0].form
		body = []byte(form.Encode())
		target = dest.url
		sig = events.SignForm(d.token, target, form)
		ctype = "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("X-Twilio-Signature", sig)
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if dest.kind == kindJSON && len(batch) == 1 && batch[0].eventID != "" {
		req.Header.Set("I-Twilio-Idempotency-Token", batch[0].eventID)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	var retryAfter time.Duration
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			retryAfter = time.Duration(secs) * time.Second
		}
	}
	return resp.StatusCode, retryAfter, nil
}

func (d *deliverer) stats() DeliveryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out DeliveryStats
	for _, k := range d.order {
		q := d.queues[k]
		st := q.stats
		st.Pending = len(q.items) + q.inflight
		out.Destinations = append(out.Destinations, st)
		out.Attempts += st.Attempts
		out.Retries += st.Retries
		out.Duplicates += st.Duplicates
		out.Delivered += st.Delivered
		out.Dropped += st.Dropped
		out.Refused += st.Refused
		out.Unreachable += st.Unreachable
		out.Pending += st.Pending
	}
	return out
}

func (d *deliverer) records() []DeliveryRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DeliveryRecord(nil), d.log...)
}

func (d *deliverer) testDelivered(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tests[id]
}

// Deliveries reports webhook delivery counts so tests can wait on them.
func (s *Sim) Deliveries() DeliveryStats { return s.deliver.stats() }

// ReleaseHeldCallbacks delivers the callbacks the HoldCallbacks fault held
// back, after what was sent meanwhile, and reports how many there were.
func (s *Sim) ReleaseHeldCallbacks() int { return s.deliver.releaseHeld() }

// DeliveryLog returns the most recent webhook requests (up to 500).
func (s *Sim) DeliveryLog() []DeliveryRecord { return s.deliver.records() }

// WaitDeliveries blocks until every queued webhook has been delivered or
// dropped, or ctx ends. Webhooks emitted while it waits are waited for too.
func (s *Sim) WaitDeliveries(ctx context.Context) error {
	return s.WaitDeliveriesFunc(ctx, func(st DeliveryStats) bool { return st.Pending == 0 })
}

// WaitDeliveriesFunc blocks until cond holds for the delivery stats or ctx
// ends; cond is checked after every change.
func (s *Sim) WaitDeliveriesFunc(ctx context.Context, cond func(DeliveryStats) bool) error {
	d := s.deliver
	for {
		st := d.stats()
		if cond(st) {
			return nil
		}
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		// The stats may have changed between reading them and taking the
		// channel; re-check before sleeping on it.
		if cond(d.stats()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("twiliosim: waiting for deliveries: %w", ctx.Err())
		}
	}
}
