package twilio

import "context"

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
