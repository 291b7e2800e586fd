package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// eventStreams stands in for Event Streams delivering to the operator's replicas behind their
// Service, across a replica's death. It listens at the operator's public URL, where the
// simulator's sinks deliver, takes each delivery as the simulator signed it (answering the
// simulator at once: from then on the delivery is this stand-in's to make), and delivers it to
// the replicas in the order received, one at a time, round robin, as the Service spreads
// connections (a replica whose process died leaves them as a Pod leaves a Service's endpoints).
// An attempt that fails as a dead or leaderless replica fails — a refused or reset
// connection, 429 or 5xx — is made again on the next replica after a backoff, as Event Streams
// retries, until a replica acknowledges it with 2xx; every failed attempt is counted. Any other
// answer (a 4xx: refused input) is a failure of the test, and the delivery is not made again.
type eventStreams struct {
	srv    *http.Server
	client *http.Client
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	replicas []*operatorProcess
	next     int
	queue    []streamDelivery
	// received counts deliveries taken from the simulator, acked those a replica answered 2xx
	// (by replica name), retried those that took more than one attempt.
	received int
	acked    map[string]int
	retried  int
	// refused counts failed attempts that got no answer (a killed replica), unavailable those
	// answered 429 or 5xx (a follower that could not forward to a leader).
	refused     int
	unavailable int
	failures    []string
}

// streamDelivery is one request of the simulator, as it will be made again to a replica.
type streamDelivery struct {
	uri    string
	header http.Header
	body   []byte
}

// startEventStreams listens on addr (the host:port of the operator's public URL) until the test
// ends; deliveries wait until replicas are added.
func startEventStreams(t *testing.T, addr string) *eventStreams {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("event streams: %v", err)
	}
	es := &eventStreams{
		client: &http.Client{Timeout: 10 * time.Second},
		wake:   make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		acked: map[string]int{},
	}
	es.srv = &http.Server{Handler: http.HandlerFunc(es.take), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = es.srv.Serve(ln) }()
	go es.deliver()
	t.Cleanup(func() {
		close(es.stop)
		<-es.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = es.srv.Shutdown(ctx)
	})
	return es
}

// add makes a replica a destination of the deliveries.
func (es *eventStreams) add(p *operatorProcess) {
	es.mu.Lock()
	es.replicas = append(es.replicas, p)
	es.mu.Unlock()
	es.poke()
}

func (es *eventStreams) poke() {
	select {
	case es.wake <- struct{}{}:
	default:
	}
}

// take queues one delivery of the simulator.
func (es *eventStreams) take(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	header := http.Header{}
	for _, k := range []string{"Content-Type", "X-Twilio-Signature", "I-Twilio-Idempotency-Token", "User-Agent"} {
		if v := r.Header.Get(k); v != "" {
			header.Set(k, v)
		}
	}
	es.mu.Lock()
	es.queue = append(es.queue, streamDelivery{uri: r.URL.RequestURI(), header: header, body: body})
	es.received++
	es.mu.Unlock()
	es.poke()
	w.WriteHeader(http.StatusOK)
}

// deliver makes the queued deliveries, oldest first, each until a replica acknowledges it.
func (es *eventStreams) deliver() {
	defer close(es.done)
	for {
		es.mu.Lock()
		ready := len(es.queue) > 0 && len(es.replicas) > 0
		var d streamDelivery
		if ready {
			d = es.queue[0]
		}
		es.mu.Unlock()
		if !ready {
			select {
			case <-es.stop:
				return
			case <-es.wake:
				continue
			}
		}
		if !es.attempts(d) {
			return
		}
		es.mu.Lock()
		es.queue = es.queue[1:]
		es.mu.Unlock()
	}
}

// attempts makes one delivery until a replica takes it or refuses its input; false when the
// stand-in is stopped first.
func (es *eventStreams) attempts(d streamDelivery) bool {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p := es.pick()
		code, err := es.post(p, d)
		es.mu.Lock()
		switch {
		case err == nil && code >= 200 && code < 300:
			es.acked[p.name]++
			if attempt > 1 {
				es.retried++
			}
			es.mu.Unlock()
			return true
		case err != nil:
			es.refused++
		case code == http.StatusTooManyRequests || code >= 500:
			es.unavailable++
		default:
			es.failures = append(es.failures, fmt.Sprintf("%s answered %d to %s", p.name, code, d.uri))
			es.mu.Unlock()
			return true
		}
		es.mu.Unlock()
		select {
		case <-es.stop:
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// pick is the replica of the next attempt, round robin over the Service's endpoints: every
// replica but those whose process exited more than endpointLag ago (the kubelet reports a Pod
// whose container died not ready, and the endpoints controller takes it out of the Service; until
// then, connections to it are refused).
func (es *eventStreams) pick() *operatorProcess {
	es.mu.Lock()
	defer es.mu.Unlock()
	for range es.replicas {
		p := es.replicas[es.next%len(es.replicas)]
		es.next++
		if p.running() || time.Since(p.exitedAt) < endpointLag {
			return p
		}
	}
	// No endpoint left: the Service refuses, as the dead replicas do.
	p := es.replicas[es.next%len(es.replicas)]
	es.next++
	return p
}

// post makes one attempt of a delivery at a replica's own webhook address; the path and query
// (the body's hash the signature covers) are the simulator's.
func (es *eventStreams) post(p *operatorProcess, d streamDelivery) (int, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+p.webhookAddr+d.uri, bytes.NewReader(d.body))
	if err != nil {
		return 0, err
	}
	req.Header = d.header.Clone()
	resp, err := es.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// streamStats is what the stand-in counted.
type streamStats struct {
	received, retried, refused, unavailable, pending int
	acked                                            map[string]int
	failures                                         []string
}

func (es *eventStreams) stats() streamStats {
	es.mu.Lock()
	defer es.mu.Unlock()
	st := streamStats{received: es.received, retried: es.retried, refused: es.refused, unavailable: es.unavailable,
		pending: len(es.queue), acked: map[string]int{}, failures: append([]string(nil), es.failures...)}
	for k, v := range es.acked {
		st.acked[k] = v
	}
	return st
}

func (st streamStats) String() string {
	return fmt.Sprintf("%d deliveries received from the simulator, acknowledged by replica %v, %d pending; %d needed more than one attempt: %d attempts refused or cut, %d answered 429/5xx",
		st.received, st.acked, st.pending, st.retried, st.refused, st.unavailable)
}
