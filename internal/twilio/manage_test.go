package twilio_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// simClient starts a simulator and returns a client pointed at it.
func simClient(t *testing.T) (*twiliosim.Sim, twilio.Client, context.Context) {
	t.Helper()
	sim := twiliosim.New(twiliosim.Options{})
	if err := sim.Start(); err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	c, err := twilio.New(twilio.Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL(), Rate: -1},
		twilio.WithRetry(2, time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return sim, c, ctx
}

// TestDeleteWorkflowAndQueue deletes a workflow and then its queue, checks that deleting again is
// not an error, and that Twilio's refusal to delete a queue still in use comes back as terminal.
func TestDeleteWorkflowAndQueue(t *testing.T) {
	sim, c, ctx := simClient(t)
	cc, err := sim.BuildContactCentre(twiliosim.ContactCentreSpec{
		Queues: []twiliosim.QueueSpec{{Name: "Ping"}},
		Workflows: []twiliosim.WorkflowSpec{{Name: "Ping", Configuration: map[string]any{
			"task_routing": map[string]any{"default_filter": map[string]any{"queue": "Ping"}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws, queue, workflow := cc.WorkspaceSID, cc.Queues["Ping"], cc.Workflows["Ping"]

	err = c.DeleteTaskQueue(ctx, ws, queue)
	if err == nil || !twilio.IsTerminal(err) {
		t.Fatalf("deleting a queue a workflow targets: %v, want a terminal error", err)
	}
	if err := c.DeleteWorkflow(ctx, ws, workflow); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchWorkflow(ctx, ws, workflow); !twilio.IsNotFound(err) {
		t.Fatalf("workflow still there: %v", err)
	}
	if err := c.DeleteTaskQueue(ctx, ws, queue); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindTaskQueue(ctx, ws, "Ping"); !twilio.IsNotFound(err) {
		t.Fatalf("queue still there: %v", err)
	}
	if err := c.DeleteWorkflow(ctx, ws, workflow); err != nil {
		t.Errorf("deleting a workflow already gone: %v", err)
	}
	if err := c.DeleteTaskQueue(ctx, ws, queue); err != nil {
		t.Errorf("deleting a queue already gone: %v", err)
	}
	if err := c.DeleteWorkflow(ctx, ws, "WW/../x"); err == nil {
		t.Error("a SID with a slash was accepted")
	}
}

// TestAddSubscribedEvent adds a type to a subscription, twice.
func TestAddSubscribedEvent(t *testing.T) {
	sim, c, ctx := simClient(t)
	sink, err := c.CreateSink(ctx, twilio.SinkCreate{Description: "d", Destination: "https://example.com/events"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.ActivateSink(sink.SID); err != nil {
		t.Fatal(err)
	}
	sub, err := c.CreateSubscription(ctx, twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "d",
		Types: []string{"com.twilio.taskrouter.task.created"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.AddSubscribedEvent(ctx, sub.SID, "com.twilio.taskrouter.reservation.accepted"); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := c.ListSubscriptions(ctx, sink.SID)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions", len(subs))
	}
	got := slices.Sorted(slices.Values(subs[0].Types))
	want := []string{"com.twilio.taskrouter.reservation.accepted", "com.twilio.taskrouter.task.created"}
	if !slices.Equal(got, want) {
		t.Fatalf("types %v, want %v", got, want)
	}
	if err := c.AddSubscribedEvent(ctx, sub.SID, "com.twilio.nothing.like.this"); err == nil || !twilio.IsTerminal(err) {
		t.Errorf("an unknown type: %v, want a terminal error", err)
	}
	if err := c.AddSubscribedEvent(ctx, "DF"+"0123456789abcdef0123456789abcdef", "com.twilio.taskrouter.task.created"); !twilio.IsNotFound(err) {
		t.Errorf("a missing subscription: %v, want not found", err)
	}
}
