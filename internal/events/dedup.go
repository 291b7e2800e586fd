package events

import "sync"

// Dedup is a bounded, concurrency-safe set of recently seen keys: CloudEvent
// ids (TaskRouterEvent.ID) and conference callbacks
// (ConferenceEvent.DedupKey). Twilio delivers at least once, so the webhook
// server acknowledges and drops what it has already seen.
//
// It remembers the last size keys added, oldest forgotten first (a ring plus
// a map). That is enough because redeliveries of an event cluster in time,
// while memory must stay fixed however many events flow. A key evicted and
// then redelivered is processed again, which the consumers tolerate: applying
// an event is idempotent (recovery.ApplyConferenceEvent) and every side effect
// is recorded in ConferenceRecovery status.actions before it is taken (see
// internal/recovery's package doc), so dedup only saves work.
type Dedup struct {
	mu   sync.Mutex
	ring []string
	next int
	// slot maps each remembered key to its ring position, so that evicting a
	// slot whose key was forgotten and added again elsewhere leaves it alone.
	slot map[string]int
}

// NewDedup returns a Dedup remembering the last size keys. A size below 1
// is taken as 1.
func NewDedup(size int) *Dedup {
	size = max(size, 1)
	return &Dedup{ring: make([]string, size), slot: make(map[string]int, size)}
}

// Seen reports whether key was seen before and marks it seen. Of concurrent
// calls with one new key, exactly one gets false.
func (d *Dedup) Seen(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.slot[key]; ok {
		return true
	}
	// Evict the slot's key only if the map still places it there: it may have
	// been forgotten, or forgotten and added again in a newer slot.
	old := d.ring[d.next]
	if i, ok := d.slot[old]; ok && i == d.next {
		delete(d.slot, old)
	}
	d.ring[d.next] = key
	d.slot[key] = d.next
	d.next = (d.next + 1) % len(d.ring)
	return false
}

// Forget removes key, so that its next delivery is processed. The webhook
// server calls it when it marked an event seen but could not store it and
// answers 5xx: Twilio's retry must not then be dropped as a duplicate.
func (d *Dedup) Forget(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.slot, key)
}

// Len returns how many keys are remembered.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.slot)
}
