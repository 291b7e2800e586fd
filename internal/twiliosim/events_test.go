package twiliosim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// subscribe makes a sink to rc, active without a test event (TestSinkTestAndValidate covers that),
// and subscribes it to the given TaskRouter events.
func subscribe(t *testing.T, s *twiliosim.Sim, c twilio.Client, rc *receiver, batch bool, events ...string) twilio.Sink {
	t.Helper()
	sink, err := c.CreateSink(ctxT(t), twilio.SinkCreate{Description: "operator", Destination: rc.url("/events?policy=p1"), BatchEvents: batch})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ActivateSink(sink.SID); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, "com.twilio.taskrouter."+e)
	}
	if _, err := c.CreateSubscription(ctxT(t), twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "operator", Types: types}); err != nil {
		t.Fatal(err)
	}
	return sink
}

func eventTypes(events []map[string]any) []string {
	var out []string
	for _, ev := range events {
		out = append(out, strings.TrimPrefix(ev["type"].(string), "com.twilio.taskrouter."))
	}
	return out
}

func TestEventStreamsDeliveries(t *testing.T) {
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "single", true: "batched"}[batch]
		t.Run(name, func(t *testing.T) {
			s, c := start(t, twiliosim.Options{})
			cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}))
			rc := newReceiver(t, s.AuthToken(), nil)
			subscribe(t, s, c, rc, batch, "reservation.created", "reservation.accepted", "task-queue.entered", "task.canceled")
			call, err := s.PlaceCall("+15550001111", cc.Workflows["Voice"], nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Accept(onlyPending(t, c, cc.WorkspaceSID, call.TaskSID).SID); err != nil {
				t.Fatal(err)
			}
			waitDelivered(t, s)
			_, events, bad, wrong := rc.snapshot()
			if bad != 0 || wrong != 0 {
				t.Fatalf("%d deliveries failed the signature check, %d passed with a wrong token", bad, wrong)
			}
			if diff := cmp.Diff([]string{"task-queue.entered", "reservation.created", "reservation.accepted"}, eventTypes(events)); diff != "" {
				t.Errorf("event types (-want +got):\n%s", diff)
			}
			for _, ev := range events {
				p := payloadOf(ev)
				if ev["specversion"] != "1.0" || !strings.HasPrefix(ev["id"].(string), "EZ") || p["task_sid"] != call.TaskSID ||
					p["workflow_sid"] != cc.Workflows["Voice"] || p["task_channel_unique_name"] != "voice" {
					t.Errorf("event %v payload %v", ev["type"], p)
				}
				if _, isString := p["task_attributes"].(string); !isString {
					t.Errorf("task_attributes is %T, want a JSON string", p["task_attributes"])
				}
			}
			if p := payloadOf(events[2]); p["worker_sid"] != cc.Workers["ann"] || p["reservation_sid"] == nil {
				t.Errorf("reservation.accepted payload %v", p)
			}
		})
	}
}

func TestSinkRetriesAndDiscards(t *testing.T) {
	cases := []struct {
		name          string
		answer        func(hit int) int
		wantAttempts  int
		wantDelivered int
		wantDropped   int
		wantReceived  int
	}{
		{"500 then 200: the batch comes again", func(hit int) int {
			if hit == 1 {
				return 500
			}
			return 200
		}, 2, 1, 0, 2},
		{"429 then 200: retried", func(hit int) int {
			if hit == 1 {
				return 429
			}
			return 204
		}, 2, 1, 0, 2},
		{"400: discarded, never retried", func(int) int { return 400 }, 1, 0, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := start(t, twiliosim.Options{})
			cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Activity: "Offline"}))
			rc := newReceiver(t, s.AuthToken(), tc.answer)
			sink := subscribe(t, s, c, rc, true, "task.created")
			createTask(t, c, cc.WorkspaceSID, cc.Workflows["Voice"], nil)
			waitDelivered(t, s)
			st := s.Deliveries().Destination("sink:" + sink.SID)
			if st.Attempts != tc.wantAttempts || st.Delivered != tc.wantDelivered || st.Dropped != tc.wantDropped {
				t.Errorf("stats %+v, want %d attempts, %d delivered, %d dropped", st, tc.wantAttempts, tc.wantDelivered, tc.wantDropped)
			}
			rc.mu.Lock()
			bodies := append([]string(nil), rc.bodies...)
			rc.mu.Unlock()
			if len(bodies) != tc.wantReceived {
				t.Fatalf("receiver saw %d requests, want %d", len(bodies), tc.wantReceived)
			}
			if len(bodies) == 2 && bodies[0] != bodies[1] {
				t.Errorf("the retry carried a different batch:\n%s\n%s", bodies[0], bodies[1])
			}
		})
	}
}

func TestSinkTestAndValidate(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	rc := newReceiver(t, s.AuthToken(), nil)
	sink, err := c.CreateSink(ctxT(t), twilio.SinkCreate{Description: "operator", Destination: rc.url("/events"), BatchEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	sub := twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "d", Types: []string{"com.twilio.taskrouter.task.created"}}
	if _, err := c.CreateSubscription(ctxT(t), sub); !twilio.IsTerminal(err) {
		t.Fatalf("subscription on an unvalidated sink: %v, want a 400", err)
	}
	if _, err := c.TestSink(ctxT(t), sink.SID); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, s)
	_, events, _, _ := rc.snapshot()
	if len(events) != 1 || events[0]["type"] != "com.twilio.eventstreams.test-event" {
		t.Fatalf("test delivery: %v", events)
	}
	testID, _ := events[0]["data"].(map[string]any)["test_id"].(string)
	if err := c.ValidateSink(ctxT(t), sink.SID, "not-the-test-id"); err == nil {
		t.Error("validate with a wrong test ID succeeded")
	}
	if err := c.ValidateSink(ctxT(t), sink.SID, testID); err != nil {
		t.Fatalf("validate with the received test ID: %v", err)
	}
	sinks, err := c.ListSinks(ctxT(t))
	if err != nil || len(sinks) != 1 || sinks[0].Status != "active" || !sinks[0].BatchEvents || sinks[0].Destination != rc.url("/events") {
		t.Fatalf("sinks %+v (%v)", sinks, err)
	}
	if _, err := c.CreateSubscription(ctxT(t), sub); err != nil {
		t.Fatalf("subscription on the validated sink: %v", err)
	}
	bad := sub
	bad.Types = []string{"com.twilio.taskrouter.reservation.acceptd"}
	if _, err := c.CreateSubscription(ctxT(t), bad); !twilio.IsTerminal(err) {
		t.Errorf("subscription to a misspelt type: %v, want a 400", err)
	}
	subs, err := c.ListSubscriptions(ctxT(t), sink.SID)
	if err != nil || len(subs) != 1 || !cmp.Equal(subs[0].Types, sub.Types) {
		t.Errorf("subscriptions %+v (%v)", subs, err)
	}
	if err := c.DeleteSink(ctxT(t), sink.SID); err != nil {
		t.Fatal(err)
	}
	if subs, err := c.ListSubscriptions(ctxT(t), ""); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions after deleting their sink: %+v (%v)", subs, err)
	}
}

func TestDuplicateAndReorderedDelivery(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Activity: "Offline"}))
	rc := newReceiver(t, s.AuthToken(), nil)
	subscribe(t, s, c, rc, false, "task.created")
	s.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true})
	first := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Voice"], map[string]any{"n": 1})
	second := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Voice"], map[string]any{"n": 2})
	waitDelivered(t, s)
	_, events, _, _ := rc.snapshot()
	var order []string
	for _, ev := range events {
		order = append(order, payloadOf(ev)["task_sid"].(string))
	}
	want := []string{second.SID, second.SID, first.SID, first.SID}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("delivery order (-want +got):\n%s", diff)
	}
	if events[0]["id"] != events[1]["id"] {
		t.Errorf("a duplicate must carry the same event id: %v %v", events[0]["id"], events[1]["id"])
	}
}

func TestLegacyEventCallback(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	rc := newReceiver(t, s.AuthToken(), nil)
	spec := voiceCentre(twiliosim.WorkerSpec{Name: "ann"})
	spec.EventCallbackURL = rc.url("/legacy")
	cc := build(t, s, spec)
	task := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Voice"], nil)
	waitDelivered(t, s)
	forms, _, bad, wrong := rc.snapshot()
	if bad != 0 || wrong != 0 {
		t.Fatalf("%d legacy callbacks failed the signature, %d passed with a wrong token", bad, wrong)
	}
	var types []string
	for _, f := range forms {
		if f.Get("TaskSid") == task.SID {
			types = append(types, f.Get("EventType"))
		}
	}
	want := []string{"task.created", "workflow.entered", "workflow.target-matched", "task-queue.entered", "reservation.created"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("legacy events for the task (-want +got):\n%s", diff)
	}
}

func TestInjectedServerErrorsAreRetried(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}))
	s.SetFaults(twiliosim.Faults{FailNext: 2, FailStatus: 503})
	if _, err := c.FetchWorker(ctxT(t), cc.WorkspaceSID, cc.Workers["ann"]); err != nil {
		t.Fatalf("fetch through two 503s: %v", err)
	}
	if f := s.CurrentFaults(); f.FailNext != 0 {
		t.Errorf("%d injected failures left", f.FailNext)
	}
}

func TestFlexTokenValidation(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Attributes: map[string]any{"contact_uri": "client:ann_40example_2Ecom", "email": "ann@example.com"}}))
	token := s.IssueFlexToken(cc.Workers["ann"], "agent", "supervisor")
	id, err := c.ValidateFlexToken(ctxT(t), token)
	if err != nil {
		t.Fatal(err)
	}
	want := twilio.FlexIdentity{Valid: true, Identity: "ann_40example_2Ecom", RealmUserID: "ann@example.com",
		WorkerSID: cc.Workers["ann"], Roles: []string{"agent", "supervisor"}, Expiration: s.Now().Add(time.Hour)}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if id, err := c.ValidateFlexToken(ctxT(t), token+"x"); err != nil || id.Valid {
		t.Errorf("forged token: %+v, %v", id, err)
	}
	s.Advance(time.Hour)
	if id, err := c.ValidateFlexToken(ctxT(t), token); err != nil || id.Valid {
		t.Errorf("expired token: %+v, %v", id, err)
	}
}

func TestAuthentication(t *testing.T) {
	s, _ := start(t, twiliosim.Options{})
	bad, err := twilio.New(twilio.Config{AccountSID: s.AccountSID(), AuthToken: "wrongtoken", BaseURL: s.URL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ListSinks(ctxT(t)); !twilio.IsTerminal(err) {
		t.Errorf("wrong auth token: %v, want a 401", err)
	}
}

func TestControlAPIOverHTTP(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	post := func(path string, body any, out any) int {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, s.URL()+path, bytes.NewReader(b))
		req.SetBasicAuth(s.AccountSID(), s.AuthToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		raw, _ := io.ReadAll(resp.Body)
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				t.Fatalf("%s: %v: %s", path, err, raw)
			}
		}
		return resp.StatusCode
	}
	var cc twiliosim.ContactCentre
	if code := post("/sim/contact-centre", voiceCentre(twiliosim.WorkerSpec{Name: "ann"}), &cc); code != 200 {
		t.Fatalf("contact centre: %d", code)
	}
	var placed twiliosim.PlacedCall
	if code := post("/sim/calls", map[string]any{"from": "+15550001111", "workflow_sid": cc.Workflows["Voice"]}, &placed); code != 200 {
		t.Fatalf("place call: %d", code)
	}
	res := onlyPending(t, c, cc.WorkspaceSID, placed.TaskSID)
	if code := post("/sim/reservations/"+res.SID+"/accept", nil, nil); code != 200 {
		t.Fatalf("accept: %d", code)
	}
	if code := post("/sim/workers/"+cc.Workers["ann"]+"/refresh", nil, nil); code != 200 {
		t.Fatalf("refresh: %d", code)
	}
	if code := post("/sim/reservations/WR00000000000000000000000000000000/accept", nil, nil); code != 404 {
		t.Errorf("accept of an unknown reservation: %d, want 404", code)
	}
	if code := post("/sim/advance", map[string]any{"duration": "90s"}, nil); code != 200 {
		t.Errorf("advance: %d", code)
	}
	r, err := c.FetchReservation(ctxT(t), cc.WorkspaceSID, placed.TaskSID, res.SID)
	if err != nil || r.Status != "wrapping" {
		t.Errorf("reservation after accept and refresh over HTTP: %+v (%v)", r, err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/sim/state", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("state without credentials: %v %v, want 401", resp, err)
	} else {
		_ = resp.Body.Close()
	}
}
