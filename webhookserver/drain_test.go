package webhookserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServerDrainsBeforeClosing plays a rolling update's stop: once asked to stop, the server
// reports not ready but answers every callback sent during the drain window (on new connections and
// on kept-alive ones, with their request contexts alive), lets a request in flight finish, and only
// then closes. The drain window is ended by the test, not slept through.
func TestServerDrainsBeforeClosing(t *testing.T) {
	const drainDelay = time.Minute
	s, err := New(Options{BindAddress: "127.0.0.1:0", DrainDelay: drainDelay}, nil)
	if err != nil {
		t.Fatal(err)
	}
	drainEnds := make(chan time.Time)
	askedDelay := make(chan time.Duration, 1)
	s.after = func(d time.Duration) <-chan time.Time {
		askedDelay <- d
		return drainEnds
	}
	s.Handle("POST /callback", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.Context().Err(); err != nil {
			http.Error(w, "request context ended: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "stored")
	}))
	slowStarted := make(chan struct{}, 2)
	releaseSlow := make(chan struct{})
	s.Handle("POST /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowStarted <- struct{}{}
		<-releaseSlow
		if err := r.Context().Err(); err != nil {
			http.Error(w, "request context ended: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "stored")
	}))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	waitUntil(t, s.Ready)
	base := "http://" + s.Addr()

	// A pooled client, as an ingress controller keeps connections to its upstreams.
	pooled := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer pooled.CloseIdleConnections()
	fresh := func() *http.Client { return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} }
	post := func(c *http.Client, path string) (int, string, error) {
		resp, err := c.Post(base+path, "application/x-www-form-urlencoded", strings.NewReader("StatusCallbackEvent=participant-leave"))
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if code, body, err := post(pooled, "/callback"); err != nil || code != http.StatusOK {
		t.Fatalf("before stopping: %d %q %v", code, body, err)
	}

	// A callback in flight when the stop comes.
	slowBefore := make(chan error, 1)
	go func() { slowBefore <- expectStored(post(fresh(), "/slow")) }()
	<-slowStarted

	cancel()
	waitUntil(t, s.Draining)
	if s.Ready() {
		t.Error("Ready() is true while draining; the readiness probe would keep the replica in the Service")
	}

	// Callbacks routed here during the drain window: concurrent ones on new connections and a
	// sequence on the pooled client. Every one must be answered.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- expectStored(post(fresh(), "/callback"))
		}()
	}
	for i := 0; i < 20; i++ {
		errs <- expectStored(post(pooled, "/callback"))
	}
	wg.Wait()
	close(errs)
	answered := 0
	for err := range errs {
		if err != nil {
			t.Errorf("callback during the drain window: %v", err)
			continue
		}
		answered++
	}
	if answered != 60 {
		t.Errorf("%d of 60 callbacks sent during the drain window were answered", answered)
	}
	select {
	case err := <-done:
		t.Fatalf("server stopped before its drain window ended: %v", err)
	default:
	}

	// One more in flight as the window ends: closing waits for it.
	slowAtClose := make(chan error, 1)
	go func() { slowAtClose <- expectStored(post(fresh(), "/slow")) }()
	<-slowStarted
	close(drainEnds)
	close(releaseSlow)
	for name, ch := range map[string]chan error{"in flight at the stop": slowBefore, "in flight at the close": slowAtClose} {
		if err := <-ch; err != nil {
			t.Errorf("request %s: %v", name, err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop within 10s of its drain window ending")
	}
	if d := <-askedDelay; d != drainDelay {
		t.Errorf("drain timer set for %s, want %s", d, drainDelay)
	}
	if _, _, err := post(fresh(), "/callback"); err == nil {
		t.Error("a request after the close was answered; the listener is still open")
	}
}

// TestServerWithoutDrainClosesAtOnce: with no drain delay the server stops as soon as asked.
func TestServerWithoutDrainClosesAtOnce(t *testing.T) {
	s, err := New(Options{BindAddress: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.after = func(time.Duration) <-chan time.Time {
		t.Error("drain timer started with no drain delay")
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	waitUntil(t, s.Ready)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// expectStored turns a post's result into an error unless it is a 200 "stored".
func expectStored(code int, body string, err error) error {
	switch {
	case err != nil:
		return err
	case code != http.StatusOK || body != "stored":
		return fmt.Errorf("answered %d %q", code, body)
	}
	return nil
}
