package twilio

import (
	"context"
	"time"
)

// Priority orders requests that share an account's Twilio budget. A lower value goes first: a
// request of a more urgent class never waits behind queued requests of a less urgent one.
type Priority int

const (
	// PriorityRecovery is conference recovery: a customer may be alone on a call. It is the
	// default of a context that names no priority, so that nothing urgent is ever slowed by a
	// caller that forgot to say what it is.
	PriorityRecovery Priority = iota
	// PriorityActivity is activity enforcement: an agent's activity is wrong until the write lands.
	PriorityActivity
	// PriorityBackground is reads that rebuild or resync state and may take their time.
	PriorityBackground
)

// String names the priority as metrics label it.
func (p Priority) String() string {
	switch p {
	case PriorityRecovery:
		return "recovery"
	case PriorityActivity:
		return "activity"
	case PriorityBackground:
		return "background"
	}
	return "unknown"
}

type priorityKey struct{}

// WithPriority returns a context whose Twilio requests are sent at priority p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority of ctx's Twilio requests: PriorityRecovery unless WithPriority
// said otherwise.
func PriorityOf(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return PriorityRecovery
}

type orderKey struct{}

// WithOrder returns a context whose Twilio requests queue, among waiting requests of the same
// priority, by at (the earlier first) instead of by their own arrival. The activity engine passes
// when the event it acts on was received: a worker's handling takes several requests in turn (its
// read, its reservations, their tasks, the write), and ordered by the event each of them keeps
// its place instead of going behind the requests of every worker whose event came later. at is
// the wall clock (time.Now), as a request without an order is stamped with.
func WithOrder(ctx context.Context, at time.Time) context.Context {
	if at.IsZero() {
		return ctx
	}
	return context.WithValue(ctx, orderKey{}, at)
}

// orderOf returns ctx's queue order, or now when WithOrder gave none.
func orderOf(ctx context.Context, now time.Time) time.Time {
	if at, ok := ctx.Value(orderKey{}).(time.Time); ok {
		return at
	}
	return now
}
