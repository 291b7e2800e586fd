package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
)

// commit applies one batch and writes the recovery's status at most once (plus conflict retries).
// It answers every op except those that could not be stored for a reason that may pass (a
// storeError) and whose deadline has not come: it returns those, unanswered, to be tried again.
func (s *recoveryStore) commit(cs *confState, batch []*op) (again []*op) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	log := s.log.WithValues("recovery", cs.key)
	results := make([]opResult, len(batch))
	defer func() {
		now := time.Now()
		var cause error
		for i, o := range batch {
			if o.tryAgain(results[i].err, now) {
				again, cause = append(again, o), results[i].err
				continue
			}
			o.done <- results[i]
		}
		if len(again) > 0 {
			log.Info("Could not store events; trying again", "events", len(again), "error", cause.Error())
		}
	}()
	// finish sets the result of every op still without one; err, when set, is a failure to store.
	finish := func(outcome string, err error) {
		err = retryable(err)
		for i := range results {
			if results[i].outcome == "" && results[i].err == nil {
				results[i].outcome, results[i].err = outcome, err
			}
		}
	}
	// Conference callbacks in sequence order; the rest (marks, TaskRouter observations) after
	// them in arrival order. ApplyConferenceEvent does not depend on the order, but a stable one
	// makes a batch's effect easy to reason about.
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ca, cb := batch[a].conference, batch[b].conference
		switch {
		case ca != nil && cb != nil:
			return int(min(max(ca.event.SequenceNumber-cb.event.SequenceNumber, -1), 1))
		case ca != nil:
			return -1
		case cb != nil:
			return 1
		}
		return 0
	})
	var latest *conferenceOp // the newest policy snapshot and client in the batch
	for _, o := range batch {
		if o.conference != nil {
			latest = o.conference
		}
	}
	conferenceOutcome := func(outcome string) {
		for i, o := range batch {
			if o.conference != nil && results[i].outcome == "" && results[i].err == nil {
				results[i].outcome = outcome
			}
		}
	}

	if cs.gone {
		conferenceOutcome(outcomeIgnored)
		finish(outcomeNoRecovery, nil)
		return
	}
	if latest != nil {
		if cs.obj == nil {
			// The cache only: a conference not seen before is usually not protected, and asking
			// the API server about each would cost a read per call. A recovery another replica has
			// just created is found by the create below (AlreadyExists).
			obj, err := s.readCached(ctx, cs.key)
			if err != nil {
				finish("", err)
				return
			}
			cs.obj = obj
		}
		if cs.info.stale(latest.policy) {
			for _, o := range batch {
				if c := o.conference; c != nil && c.info != nil && !c.info.stale(latest.policy) && (cs.obj == nil || c.info.protected) {
					cs.info = c.info
				}
			}
		}
		if cs.info.stale(latest.policy) {
			info, err := resolveConference(ctx, latest, cs.obj)
			if err != nil {
				if cs.obj == nil {
					finish("", fmt.Errorf("read the conference's task: %w", err))
					return
				}
				// The recovery exists, so the call is protected: record the event with what its
				// spec says and fetch the task again later for roles and reconnect linkage.
				log.Error(err, "Read the conference's task; recording the event without it")
				info = infoFromRecovery(cs.obj, latest.policy)
			}
			cs.info = info
		}
		if cs.obj == nil && !cs.info.protected {
			conferenceOutcome(outcomeIgnored)
		}
	}
	live := slices.DeleteFunc(order, func(i int) bool { return results[i].outcome != "" })
	if len(live) == 0 {
		return
	}

	if cs.obj == nil {
		var obj *v1alpha1.ConferenceRecovery
		var err error
		if latest != nil && cs.info.protected {
			obj, err = s.create(ctx, cs.key, latest, cs.info)
			if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
				// A genuine callback the API server will never accept (a policy name too long
				// for a label, say): retrying cannot help, so it is acknowledged and logged.
				log.Error(err, "The API server refused the ConferenceRecovery")
				conferenceOutcome(outcomeRejected)
				finish(outcomeNoRecovery, nil)
				return
			}
		} else {
			obj, err = s.read(ctx, cs.key)
		}
		if err != nil {
			finish("", err)
			return
		}
		if obj == nil {
			conferenceOutcome(outcomeIgnored)
			finish(outcomeNoRecovery, nil)
			return
		}
		cs.obj = obj
	}

	refetched, reread := false, false
	for attempt := 1; ; attempt++ {
		rec := cs.obj.DeepCopy()
		changed := false
		for _, i := range live {
			results[i] = opResult{}
			var opChanged bool
			var err error
			if c := batch[i].conference; c != nil {
				opChanged = recovery.ApplyConferenceEvent(&rec.Status, c.event, nil)
				if c.corrected && recovery.RecordCorrection(&rec.Status, c.event.CallSID, c.event.SequenceNumber) {
					opChanged = true
				}
				if recovery.RecordReceipt(&rec.Status, c.event, c.receivedAt) {
					opChanged = true
				}
			} else {
				opChanged, err = batch[i].mutate(rec)
			}
			switch {
			case errors.Is(err, errStale) && reread:
				results[i].outcome = outcomeIgnored // it is about no incident the recovery has
			case err != nil:
				results[i].err = err
			case opChanged:
				results[i].outcome, changed = outcomeStored, true
			default:
				results[i].outcome = outcomeUnchanged
			}
		}
		if !reread && slices.ContainsFunc(live, func(i int) bool { return errors.Is(results[i].err, errStale) }) {
			// The controller (or another replica) may have written what the op looks for since
			// this writer last read the object.
			reread = true
			fresh, err := s.readFresh(ctx, cs.key)
			if err != nil {
				for _, i := range live {
					results[i] = opResult{} // nothing of this attempt was written
				}
				finish("", err)
				return
			}
			if fresh != nil {
				cs.obj = fresh
				attempt--
				continue
			}
		}
		if cs.info != nil {
			if !refetched && latest != nil && cs.info.wantsRefetch(rec.Status.Participants) {
				// A leg the task's conference.participants did not list when it was read: read it
				// again (once per leg) so its role and worker are known, then start over.
				refetched = true
				if err := cs.info.refetch(ctx, latest, rec.Status.Participants); err != nil {
					log.Error(err, "Read the conference's task again for a new participant")
				}
				attempt--
				continue
			}
			if fillRoles(&rec.Status, cs.info) {
				changed = true
			}
		}
		if !changed {
			break
		}
		err := s.client.Status().Update(ctx, rec)
		switch {
		case err == nil:
			cs.obj = rec
		case apierrors.IsConflict(err) && attempt < maxConflictRetries:
			fresh, rerr := s.readFresh(ctx, cs.key)
			if rerr != nil || fresh == nil {
				cs.obj = nil
				for _, i := range live {
					results[i] = opResult{} // nothing of this attempt was written
				}
				if rerr != nil {
					finish("", rerr)
					return
				}
				cs.gone = true
				conferenceOutcome(outcomeIgnored)
				finish(outcomeNoRecovery, nil)
				return
			}
			cs.obj = fresh
			continue
		case apierrors.IsNotFound(err):
			// Deleted under us (retention, or by hand): a deleted recovery is not brought back.
			cs.obj, cs.gone = nil, true
			for _, i := range live {
				results[i] = opResult{outcome: outcomeNoRecovery}
				if batch[i].conference != nil {
					results[i].outcome = outcomeIgnored
				}
			}
			return
		default:
			cs.obj = nil
			failed := retryable(fmt.Errorf("write ConferenceRecovery status: %w", err))
			for _, i := range live {
				if results[i].err == nil {
					results[i] = opResult{err: failed}
				}
			}
			return
		}
		break
	}

	// Conference ops report the reconnect linkage still to make.
	if cs.info != nil && cs.info.reconnectOf != "" {
		cs.mu.Lock()
		needLink := !cs.linked
		cs.mu.Unlock()
		for _, i := range live {
			if batch[i].conference != nil && results[i].err == nil {
				results[i].reconnectOf, results[i].taskSID, results[i].needLink = cs.info.reconnectOf, cs.info.taskSID, needLink
			}
		}
	}
	return again
}
