package activity

// processNext takes one worker off the queue, reads it from TaskRouter first when that was asked
// for, then decides and writes it. The queue's key is the worker's SID and nothing else, so the
// workqueue never hands one worker to two goroutines at once.
func (r *run) processNext() bool {
	sid, quit := r.queue.Get()
	if quit {
		return false
	}
	r.busy.Add(1)
	defer r.busy.Add(-1)
	defer r.queue.Done(sid)
	r.mu.Lock()
	delete(r.retrying, sid)
	read := r.needRead[sid]
	delete(r.needRead, sid)
	if read {
		r.waiting[sid].readBegins()
	}
	r.mu.Unlock()
	if read {
		if err := r.reread(sid); err != nil {
			if r.stopping() {
				return true
			}
			r.log().Error(err, "Read a worker from TaskRouter", "worker", sid)
			r.mu.Lock()
			r.needRead[sid] = true
			r.mu.Unlock()
			r.retryLater(sid)
			return true
		}
		r.queue.Forget(sid)
	}
	if r.decide(sid) {
		r.queue.Forget(sid)
	}
	return true
}

// readFirst asks for the worker to be read from TaskRouter, then decided. The caller holds r.mu.
func (r *run) readFirst(sid string) {
	r.needRead[sid] = true
	r.queue.Add(sid)
}

// retryLater schedules the worker again after the queue's backoff; Idle counts it meanwhile.
func (r *run) retryLater(sid string) {
	r.mu.Lock()
	r.retrying[sid] = true
	r.mu.Unlock()
	r.queue.AddRateLimited(sid)
}
