package activity

import (
	"strings"
)

// reread marks a queue key asking for the worker to be read from TaskRouter first.
const rereadPrefix = "?"

func (r *run) processNext() bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	r.busy.Add(1)
	defer r.busy.Add(-1)
	defer r.queue.Done(key)
	sid := key
	if strings.HasPrefix(key, rereadPrefix) {
		sid = strings.TrimPrefix(key, rereadPrefix)
		if err := r.reread(sid); err != nil {
			r.log().Error(err, "Read a worker from TaskRouter", "worker", sid)
			r.queue.AddRateLimited(key)
			return true
		}
		r.queue.Forget(key)
	}
	if r.decide(sid) {
		r.queue.Forget(key)
	}
	return true
}
