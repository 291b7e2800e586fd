package webhookserver

import "container/list"

// lru is a bounded map that forgets its least recently used entries first. It is not safe for
// concurrent use; its owners lock around it.
type lru[K comparable, V any] struct {
	capacity int
	order    *list.List // front = most recently used; elements hold *lruEntry
	entries  map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key   K
	value V
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{capacity: max(capacity, 1), order: list.New(), entries: map[K]*list.Element{}}
}

// get returns the value of key and marks it used.
func (c *lru[K, V]) get(key K) (V, bool) {
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).value, true
	}
	var zero V
	return zero, false
}

// add sets key to value, marks it used and evicts the least recently used entries beyond the
// capacity, skipping those for which pinned reports true (nil pins nothing) and never the entry
// just added (which its caller is about to use). Pinned entries may keep the map above its
// capacity until they are unpinned and a later add evicts them.
func (c *lru[K, V]) add(key K, value V, pinned func(V) bool) {
	if e, ok := c.entries[key]; ok {
		e.Value.(*lruEntry[K, V]).value = value
		c.order.MoveToFront(e)
	} else {
		c.entries[key] = c.order.PushFront(&lruEntry[K, V]{key: key, value: value})
	}
	for e := c.order.Back(); e != nil && len(c.entries) > c.capacity; {
		prev := e.Prev()
		entry := e.Value.(*lruEntry[K, V])
		if entry.key != key && (pinned == nil || !pinned(entry.value)) {
			c.order.Remove(e)
			delete(c.entries, entry.key)
		}
		e = prev
	}
}

// remove forgets key.
func (c *lru[K, V]) remove(key K) {
	if e, ok := c.entries[key]; ok {
		c.order.Remove(e)
		delete(c.entries, key)
	}
}

// len is the number of entries.
func (c *lru[K, V]) len() int { return len(c.entries) }
