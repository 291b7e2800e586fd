package activity

import (
	"golang.org/x/sync/singleflight"

	"github.com/flexoperator/flex-operator/internal/twilio"
)

// activityReads makes workers waiting for the same unknown activity share one read of it (a new
// activity is typically picked by many agents at once).
type activityReads = singleflight.Group

// knowActivities makes sure the catalogue knows every activity the worker's decision needs,
// reading the ones it does not from TaskRouter, one activity each, at activity enforcement's
// priority: an activity created after the catalogue was read, whose activity.created event has
// not come yet (Event Streams delivers out of order) or was not subscribed. Deciding without it
// would take an unavailable activity for an available one and store a SID where the pending
// attribute promises a name. It reports false when a read failed: the worker is tried again later.
func (r *run) knowActivities(workerSID string) bool {
	r.mu.Lock()
	missing := r.ws.MissingActivities(workerSID)
	ctx := r.activityContext(workerSID)
	r.mu.Unlock()
	for _, sid := range missing {
		_, err, _ := r.activityReads.Do(sid, func() (any, error) {
			a, err := r.client().FetchActivity(ctx, r.sid, sid)
			readsTotal.WithLabelValues("activity").Inc()
			r.mu.Lock()
			defer r.mu.Unlock()
			switch {
			case err == nil:
				r.ws.PutActivity(Activity{SID: a.SID, Name: a.FriendlyName, Available: a.Available})
			case twilio.IsNotFound(err):
				r.ws.ActivityGone(sid)
				return nil, nil
			}
			return nil, err
		})
		if err != nil {
			if r.stopping() {
				return false
			}
			r.log().Error(err, "Read an activity the engine did not know; will retry", "activity", sid, "worker", workerSID)
			r.retryLater(workerSID)
			return false
		}
	}
	if len(missing) > 0 {
		r.mu.Lock()
		r.ws.MissingActivities(workerSID) // settles the request now that its activity is known
		r.mu.Unlock()
	}
	return true
}
