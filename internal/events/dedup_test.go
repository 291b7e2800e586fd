package events

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDedup(t *testing.T) {
	d := NewDedup(3)
	steps := []struct {
		key  string
		want bool
	}{
		{"a", false}, {"a", true}, {"b", false}, {"c", false},
		{"a", true},  // still within the last 3
		{"d", false}, // evicts a, the oldest
		{"a", false}, // evicts b
		{"c", true}, {"d", true},
		{"b", false},
	}
	for i, step := range steps {
		if got := d.Seen(step.key); got != step.want {
			t.Fatalf("step %d: Seen(%q) = %v, want %v", i, step.key, got, step.want)
		}
		if d.Len() > 3 {
			t.Fatalf("step %d: Len() = %d, beyond the bound 3", i, d.Len())
		}
	}
}

func TestDedupBound(t *testing.T) {
	const size = 100
	d := NewDedup(size)
	for i := range 10 * size {
		d.Seen(fmt.Sprint(i))
	}
	if got := d.Len(); got != size {
		t.Errorf("Len() = %d after %d keys, want %d", got, 10*size, size)
	}
	for i := 9 * size; i < 10*size; i++ {
		if !d.Seen(fmt.Sprint(i)) {
			t.Fatalf("key %d, among the last %d, was forgotten", i, size)
		}
	}
}

func TestDedupForget(t *testing.T) {
	d := NewDedup(3)
	d.Seen("a")
	d.Forget("a")
	if d.Seen("a") { // now in slot 1; slot 0 still names "a"
		t.Fatal(`Seen("a") after Forget = true, want false`)
	}
	d.Seen("b")
	d.Seen("c") // fills slot 0 again: must not evict the live "a" of slot 1
	if !d.Seen("a") {
		t.Error(`"a" was evicted through its stale, forgotten slot`)
	}
	if got := d.Len(); got != 3 {
		t.Errorf("Len() = %d, want 3", got)
	}
	d.Forget("never-seen") // harmless
}

func TestDedupSizeBelowOne(t *testing.T) {
	d := NewDedup(0)
	if d.Seen("a") || !d.Seen("a") || d.Seen("b") || d.Seen("a") {
		t.Error("a Dedup of size 0 should remember exactly the last key")
	}
}

func TestDedupEmptyKey(t *testing.T) {
	d := NewDedup(2)
	if d.Seen("") {
		t.Error(`first Seen("") = true`)
	}
	d.Seen("x")
	d.Seen("y") // evicts ""
	if d.Seen("") {
		t.Error(`Seen("") after eviction = true`)
	}
	if got := d.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
}

// Many goroutines deliver the same keys: each key is new to exactly one.
// Run with -race.
func TestDedupConcurrent(t *testing.T) {
	const (
		keys       = 500
		goroutines = 8
	)
	d := NewDedup(keys)
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range keys {
				// Each goroutine starts elsewhere in the key space, so
				// that they race on every key from different positions.
				k := (i + g*61) % keys
				if !d.Seen(fmt.Sprintf("EZ%032x", k)) {
					firsts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := firsts.Load(); got != keys {
		t.Errorf("%d calls reported a key as new, want exactly %d", got, keys)
	}
}
