package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// DefaultSweepInterval is how often the live legs of every watched call are checked against the
// account's list of live calls: the bound on how long a lost agent leave (a customer alone) or a
// lost conference end goes unnoticed on a call that looked fine.
const DefaultSweepInterval = 10 * time.Second

// recoverySweep bounds how long a lost leave can go unrepaired, at a cost that does not grow with
// each call. Reading every call's conference in turn costs a request or two per call, so at the
// resync's budget a thousand calls are each read only every quarter of an hour. Instead, every
// DefaultSweepInterval the sweep lists the account's in-progress calls (Twilio pages hold 1,000
// calls: two requests for a thousand conferences of two legs) and compares them with the legs the
// recoveries in Monitoring record as connected. A recovery with a leg whose call has ended is
// suspect: it is read from Twilio at once, ahead of the resync's queue, and repaired.
//
// It watches recoveries in Monitoring only: one in an incident is already read every
// --recovery-resync-after without queueing, and its legs are moved by the recovery itself.
type recoverySweep struct {
	r     *ConferenceRecoveryReconciler
	every time.Duration
	// suspects brings a suspect recovery to the controller.
	suspects chan event.GenericEvent
}

// NeedLeaderElection says the sweep runs on the leader, beside the controller it feeds.
func (s *recoverySweep) NeedLeaderElection() bool { return true }

// Start sweeps at once (a restart may have lost leaves), then every interval.
func (s *recoverySweep) Start(ctx context.Context) error {
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		s.sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// watched is a recovery the sweep checks: its account's client and the legs it records connected.
type watched struct {
	rec  *v1alpha1.ConferenceRecovery
	legs []string
}

// sweep checks every account once.
func (s *recoverySweep) sweep(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("recovery-sweep")
	var policies v1alpha1.ConferenceRecoveryPolicyList
	if err := s.r.List(ctx, &policies); err != nil {
		log.Error(err, "List ConferenceRecoveryPolicies")
		return
	}
	// The recoveries are read before the calls are listed: a leg that joins after the list was
	// taken is not in it, and must not be taken for one that ended.
	var recs v1alpha1.ConferenceRecoveryList
	if err := s.r.List(ctx, &recs); err != nil {
		log.Error(err, "List ConferenceRecoveries")
		return
	}
	clients := map[string]twilio.Client{}
	byPolicy := map[types.NamespacedName]string{}
	for i := range policies.Items {
		policy := &policies.Items[i]
		creds, tc, err := s.r.Twilio.For(ctx, policy.Namespace, policy.Spec.Twilio)
		if err != nil {
			continue // the policy's conditions say why; its recoveries wait for it
		}
		clients[creds.AccountSID] = tc
		byPolicy[client.ObjectKeyFromObject(policy)] = creds.AccountSID
	}
	byAccount := map[string][]watched{}
	for i := range recs.Items {
		rec := &recs.Items[i]
		if phase := rec.Status.Phase; phase != "" && phase != v1alpha1.PhaseMonitoring {
			continue
		}
		account, ok := byPolicy[types.NamespacedName{Namespace: rec.Namespace, Name: rec.Spec.PolicyName}]
		if !ok {
			continue
		}
		w := watched{rec: rec}
		for _, p := range rec.Status.Participants {
			if p.JoinedAt != nil && p.LeftAt == nil {
				w.legs = append(w.legs, p.CallSID)
			}
		}
		if len(w.legs) > 0 {
			byAccount[account] = append(byAccount[account], w)
		}
	}
	for account, list := range byAccount {
		calls, err := clients[account].ListCalls(ctx, "in-progress")
		if err != nil {
			log.Error(err, "List the live calls", "account", account)
			continue
		}
		recoverySweepsTotal.Inc()
		live := make(map[string]bool, len(calls))
		for _, c := range calls {
			live[c.SID] = true
		}
		for _, w := range list {
			if allLive(w.legs, live) {
				continue
			}
			recoverySweepSuspectsTotal.Inc()
			s.r.resync.suspect(client.ObjectKeyFromObject(w.rec))
			select {
			case s.suspects <- event.GenericEvent{Object: w.rec}:
			case <-ctx.Done():
				return
			}
		}
	}
}

func allLive(legs []string, live map[string]bool) bool {
	for _, leg := range legs {
		if !live[leg] {
			return false
		}
	}
	return true
}
