package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// simREST sends one TaskRouter REST request to the simulator as an administrator's script would
// (the operator's client has no call for it), and fails the test unless it succeeds.
func simREST(t *testing.T, method, path string, form url.Values) {
	t.Helper()
	req, err := http.NewRequest(method, env.Sim.URL()+path, strings.NewReader(form.Encode()))
	must(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(env.Sim.AccountSID(), env.Sim.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// countActivityReads counts the GETs of one activity the simulator serves while the test runs.
func countActivityReads(t *testing.T, activitySID string) *atomic.Int64 {
	var reads atomic.Int64
	hook := func(r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Activities/"+activitySID) {
			reads.Add(1)
		}
	}
	effects.hook.Store(&hook)
	t.Cleanup(func() { effects.hook.Store(nil) })
	return &reads
}

// TestActivityCreatedMidDay: an administrator adds an unavailable "Lunch" after the engine read the
// workspace; the agent picks it during a call. It is deferred by name with the No ACD variants and
// applied once the work is done. A second call: she picks Lunch again, the administrator renames it
// "Meal" while it is pending; her pending activity follows the rename and she gets it after the call.
func TestActivityCreatedMidDay(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "midday", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	lunch, err := c.Twilio.CreateActivity(ctx, c.CC.WorkspaceSID, "Lunch", false)
	must(t, err)
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Lunch"))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Lunch")
	must(t, env.Sim.Wrapup(r.SID))
	waitActivity(t, c, "alice", "Wrap Up, No ACD", "Lunch")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Lunch", "")

	// Back to work, a second call, Lunch picked again; renamed while pending.
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Available"))
	r, err = c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Lunch"))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Lunch")
	simREST(t, http.MethodPost, "/v1/Workspaces/"+c.CC.WorkspaceSID+"/Activities/"+lunch.SID, url.Values{"FriendlyName": {"Meal"}})
	// The pending attribute follows the rename: Flex shows what she will get.
	waitActivity(t, c, "alice", "On a Task, No ACD", "Meal")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Meal", "")
}

// TestActivityUnknownActivityReadOnDemand: the policy's events come through a sink its owner
// subscribed by hand, without the activity events. A new unavailable activity picked during a
// call is then first met by SID in the worker's event: the engine reads that one activity from
// TaskRouter (once) and defers it by name, as if its event had come.
func TestActivityUnknownActivityReadOnDemand(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "ondemand", Agents: []string{"alice"},
		Policy: func(s *v1alpha1.WorkerActivityPolicySpec) {
			off := false
			s.EventStream.Managed = &off
		}})
	ctx := context.Background()
	types := []string{"reservation.created", "reservation.accepted", "reservation.rejected", "reservation.timeout",
		"reservation.canceled", "reservation.rescinded", "reservation.wrapup", "reservation.completed",
		"task.canceled", "task.completed", "task.wrapup", "task.updated", "worker.activity.update", "worker.attributes.update"}
	for i, typ := range types {
		types[i] = "com.twilio.taskrouter." + typ
	}
	sink, err := c.Twilio.CreateSink(ctx, twilio.SinkCreate{Description: "by hand",
		Destination: env.WebhookURL + "/twilio/" + c.Namespace + "/activity/" + c.Policy + "/events", BatchEvents: true})
	must(t, err)
	t.Cleanup(func() { _ = c.Twilio.DeleteSink(context.Background(), sink.SID) })
	must(t, env.Sim.ActivateSink(sink.SID))
	_, err = c.Twilio.CreateSubscription(ctx, twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "by hand", Types: types})
	must(t, err)

	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	lunch, err := c.Twilio.CreateActivity(ctx, c.CC.WorkspaceSID, "Lunch", false)
	must(t, err)
	reads := countActivityReads(t, lunch.SID)
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Lunch"))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Lunch")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Lunch", "")
	must(t, c.WaitQuiet(ctx))
	if n := reads.Load(); n != 1 {
		t.Fatalf("the engine read the new activity %d times, want once", n)
	}
}

// TestActivityDeletedTaskFreesAgent: an assigned task deleted through the API ends its
// reservation without any reservation event (TaskRouter sends task.deleted only): the agent goes
// back to Available instead of staying On a Task for ever.
func TestActivityDeletedTaskFreesAgent(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "deleted", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	simREST(t, http.MethodDelete, "/v1/Workspaces/"+c.CC.WorkspaceSID+"/Tasks/"+r.TaskSID, nil)
	waitActivity(t, c, "alice", "Available", "")
}
