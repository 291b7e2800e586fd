package deploy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// balancer stands in for what routes Twilio's requests to the operator's Pods: the webhook Service
// and the ingress controller in front of it. It forwards each TCP connection to one of the
// backends in its endpoints, round robin. A backend joins the endpoints once its /readyz answers
// 200 and leaves them lag after /readyz stops answering 200: endpoint changes reach kube-proxy and
// ingress controllers late, and they keep routing to a Pod that stopped being ready until then.
// A connection a backend refuses is tried on the next backend, as an ingress controller does with
// a request it could not send; every other failure (a reset, a connection closed before the
// answer) reaches the client unchanged.
type balancer struct {
	ln  net.Listener
	lag time.Duration

	mu       sync.Mutex
	backends []*lbBackend
	next     int
	// refused counts connections a backend refused that were tried on another.
	refused int
	// unrouted counts client connections no backend took.
	unrouted int

	stop chan struct{}
	wg   sync.WaitGroup
}

type lbBackend struct {
	p *operatorProcess
	// inEndpoints: the balancer routes new connections to it.
	inEndpoints bool
	// notReadySince is when /readyz stopped answering 200 (zero while it answers 200).
	notReadySince time.Time
	// connections counts the client connections routed to it.
	connections int
}

// startBalancer listens on addr (the host:port of the operator's public URL, where the simulator
// delivers callbacks) until the test ends.
func startBalancer(t *testing.T, addr string, lag time.Duration) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("balancer: %v", err)
	}
	b := &balancer{ln: ln, lag: lag, stop: make(chan struct{})}
	b.wg.Add(2)
	go b.accept()
	go b.watchReadiness()
	t.Cleanup(func() {
		close(b.stop)
		_ = ln.Close()
		b.wg.Wait()
	})
	return b
}

// add makes a process a backend; it joins the endpoints when it reports ready.
func (b *balancer) add(p *operatorProcess) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, &lbBackend{p: p})
}

// inEndpoints reports whether the balancer routes new connections to p.
func (b *balancer) inEndpoints(p *operatorProcess) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.backends {
		if be.p == p {
			return be.inEndpoints
		}
	}
	return false
}

// connections returns how many client connections were routed to p.
func (b *balancer) connections(p *operatorProcess) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.backends {
		if be.p == p {
			return be.connections
		}
	}
	return 0
}

// stats returns the connections refused by a backend (and retried) and those no backend took.
func (b *balancer) stats() (refused, unrouted int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refused, b.unrouted
}

// watchReadiness probes every backend's /readyz, as the kubelet's readiness probe and the
// endpoints controller do together, every 50ms.
func (b *balancer) watchReadiness() {
	defer b.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		backends := append([]*lbBackend(nil), b.backends...)
		b.mu.Unlock()
		for _, be := range backends {
			ready := be.p.readyz() == http.StatusOK
			now := time.Now()
			b.mu.Lock()
			switch {
			case ready:
				be.inEndpoints, be.notReadySince = true, time.Time{}
			case be.notReadySince.IsZero():
				be.notReadySince = now
			case now.Sub(be.notReadySince) >= b.lag:
				be.inEndpoints = false
			}
			b.mu.Unlock()
		}
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
	}
}

func (b *balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.forward(c)
		}()
	}
}

// forward connects the client to a backend in the endpoints and copies both ways until either
// side closes.
func (b *balancer) forward(client net.Conn) {
	defer func() { _ = client.Close() }()
	b.mu.Lock()
	var candidates []*lbBackend
	for i := range b.backends {
		be := b.backends[(b.next+i)%len(b.backends)]
		if be.inEndpoints {
			candidates = append(candidates, be)
		}
	}
	b.next++
	b.mu.Unlock()
	var upstream net.Conn
	for _, be := range candidates {
		c, err := net.DialTimeout("tcp", be.p.webhookAddr, 2*time.Second)
		if err == nil {
			upstream = c
			b.mu.Lock()
			be.connections++
			b.mu.Unlock()
			break
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			b.mu.Lock()
			b.refused++
			b.mu.Unlock()
			continue
		}
		break
	}
	if upstream == nil {
		b.mu.Lock()
		b.unrouted++
		b.mu.Unlock()
		return
	}
	defer func() { _ = upstream.Close() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(upstream, client)
		// The client sent everything it will: pass the half-close on.
		_ = upstream.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(client, upstream)
	// The backend closed (after Connection: close, or when it stops): so does the balancer.
	_ = client.Close()
	<-done
}
