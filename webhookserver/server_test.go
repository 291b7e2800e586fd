package webhookserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerGatesOnCacheSyncAndCapsBodies starts the server on loopback and checks the 503 before
// caches sync (once a request has waited SyncWait for them), the route after, 413 past the body
// cap and a clean stop.
func TestServerGatesOnCacheSyncAndCapsBodies(t *testing.T) {
	synced := make(chan struct{})
	s, err := New(Options{BindAddress: "127.0.0.1:0", PublicURL: "https://flex.example.com/", MaxBodyBytes: 16, SyncWait: 50 * time.Millisecond},
		func(ctx context.Context) bool {
			select {
			case <-synced:
				return true
			case <-ctx.Done():
				return false
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if s.PublicURL() != "https://flex.example.com" {
		t.Errorf("public URL %q", s.PublicURL())
	}
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = w.Write(b)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	waitUntil(t, func() bool { return s.Addr() != "" })
	url := "http://" + s.Addr() + "/echo"

	post := func(body string) int {
		t.Helper()
		resp, err := http.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		return resp.StatusCode
	}
	if got := post("hi"); got != http.StatusServiceUnavailable {
		t.Errorf("before cache sync: %d, want 503", got)
	}
	close(synced)
	waitUntil(t, s.Ready)
	if got := post("hi"); got != http.StatusOK {
		t.Errorf("after cache sync: %d, want 200", got)
	}
	if got := post(string(bytes.Repeat([]byte("x"), 17))); got != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestRequestBeforeCacheSyncIsHeld sends a request while the caches are still syncing: it is held,
// not refused, and served once they have synced (Twilio would not send a refused conference
// callback again).
func TestRequestBeforeCacheSyncIsHeld(t *testing.T) {
	synced := make(chan struct{})
	s, err := New(Options{BindAddress: "127.0.0.1:0", PublicURL: "https://flex.example.com"}, func(ctx context.Context) bool {
		select {
		case <-synced:
			return true
		case <-ctx.Done():
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("POST /callback", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	waitUntil(t, func() bool { return s.Addr() != "" })
	answer := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+s.Addr()+"/callback", "application/x-www-form-urlencoded", strings.NewReader("a=b"))
		if err != nil {
			answer <- 0
			return
		}
		_ = resp.Body.Close()
		answer <- resp.StatusCode
	}()
	waitUntil(t, func() bool { return s.holding.Load() == 1 })
	close(synced)
	if got := <-answer; got != http.StatusOK {
		t.Errorf("a request held through the cache sync got %d, want 200", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestParsePublicURL(t *testing.T) {
	for _, bad := range []string{"flex.example.com", "ftp://x", "https://x/?a=1", "https://u:p@x", "https://x/#f", "https://"} {
		if _, err := ParsePublicURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	got, err := ParsePublicURL("https://x.example.com/twilio/")
	if err != nil || got != "https://x.example.com/twilio" {
		t.Errorf("got %q, %v", got, err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("condition not met within 10s"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
