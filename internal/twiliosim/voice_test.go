package twiliosim_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// connected is a caller talking to ann in the conference Flex made.
type connected struct {
	s        *twiliosim.Sim
	c        twilio.Client
	cc       *twiliosim.ContactCentre
	rc       *receiver
	call     twiliosim.PlacedCall
	res      twilio.Reservation
	conf     string
	agentLeg string
}

// connect places a call, lets ann accept it in Flex and checks what Flex
// built: a conference named after the task, with the caller and ann.
func connect(t *testing.T, workers ...twiliosim.WorkerSpec) *connected {
	t.Helper()
	s, c := start(t, twiliosim.Options{})
	if len(workers) == 0 {
		workers = []twiliosim.WorkerSpec{{Name: "ann", Attributes: map[string]any{"contact_uri": "client:ann"}}}
	}
	cc := build(t, s, voiceCentre(workers...))
	rc := newReceiver(t, s.AuthToken(), nil)
	s.SetConferenceCallback(rc.url("/conference?policy=default"))
	call, err := s.PlaceCall("+15550001111", cc.Workflows["Voice"], map[string]any{"type": "inbound"})
	if err != nil {
		t.Fatal(err)
	}
	res := onlyPending(t, c, cc.WorkspaceSID, call.TaskSID)
	if err := s.Accept(res.SID); err != nil {
		t.Fatal(err)
	}
	task, err := c.FetchTask(ctxT(t), cc.WorkspaceSID, call.TaskSID)
	if err != nil {
		t.Fatal(err)
	}
	var attrs struct {
		CallSID    string `json:"call_sid"`
		Conference struct {
			SID          string            `json:"sid"`
			Participants map[string]string `json:"participants"`
		} `json:"conference"`
	}
	if err := json.Unmarshal([]byte(task.Attributes), &attrs); err != nil {
		t.Fatal(err)
	}
	conf, err := c.FetchConference(ctxT(t), attrs.Conference.SID)
	if err != nil {
		t.Fatalf("conference from the task attributes: %v", err)
	}
	if conf.FriendlyName != call.TaskSID || conf.Status != "in-progress" || attrs.CallSID != call.CallSID ||
		attrs.Conference.Participants["customer"] != call.CallSID || attrs.Conference.Participants["worker"] == "" {
		t.Fatalf("conference %+v, task attributes %s", conf, task.Attributes)
	}
	return &connected{s: s, c: c, cc: cc, rc: rc, call: call, res: res, conf: conf.SID, agentLeg: attrs.Conference.Participants["worker"]}
}

func (k *connected) callbacks(t *testing.T) []string {
	t.Helper()
	waitDelivered(t, k.s)
	forms, _, bad, wrong := k.rc.snapshot()
	if bad != 0 || wrong != 0 {
		t.Fatalf("%d callbacks failed the signature check, %d passed it with a wrong token", bad, wrong)
	}
	// The operator's own parser must accept every callback.
	for _, f := range forms {
		ev, err := events.ParseConferenceEvent(f)
		if err != nil {
			t.Errorf("operator cannot parse callback %v: %v", f, err)
		} else if !ev.Timestamp.Equal(k.s.Now()) {
			t.Errorf("callback timestamp %v, want the simulated time %v", ev.Timestamp, k.s.Now())
		}
	}
	return callbackSummary(forms)
}

func (k *connected) reservationStatus(t *testing.T) string {
	t.Helper()
	r, err := k.c.FetchReservation(ctxT(t), k.cc.WorkspaceSID, k.call.TaskSID, k.res.SID)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status
}

func (k *connected) participants(t *testing.T, conf string) []string {
	t.Helper()
	ps, err := k.c.ListParticipants(ctxT(t), conf)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s eceo=%t coaching=%t", p.Label, p.EndConferenceOnExit, p.Coaching))
	}
	return out
}

var acceptCallbacks = []string{
	"participant-join customer",
	"conference-start",
	"participant-join worker",
	"participant-modify worker eceo=true", // Flex's reset: two parties
}

func TestFlexAcceptAndEndConferenceOnExitReset(t *testing.T) {
	k := connect(t)
	if diff := cmp.Diff(acceptCallbacks, k.callbacks(t)); diff != "" {
		t.Errorf("callbacks after accept (-want +got):\n%s", diff)
	}
	// The operator undoes the reset.
	if _, err := k.c.UpdateParticipant(ctxT(t), k.conf, "worker", twilio.ParticipantUpdate{EndConferenceOnExit: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	// A third party joins (three parties: no reset) and leaves (two: reset).
	third, err := k.s.DialThirdParty(k.conf, "+15550002222")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.s.CustomerHangup(third); err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, acceptCallbacks...),
		"participant-modify worker eceo=false",
		"participant-join external",
		"participant-leave external participant_hung_up/completed",
		"participant-modify worker eceo=true",
	)
	if diff := cmp.Diff(want, k.callbacks(t)); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}
	// Sequence numbers count up from 1 without gaps.
	forms, _, _, _ := k.rc.snapshot()
	for i, f := range forms {
		if got := f.Get("SequenceNumber"); got != fmt.Sprint(i+1) {
			t.Errorf("callback %d has SequenceNumber %s", i, got)
		}
		if f.Get("Timestamp") == "" || f.Get("ConferenceSid") != k.conf || f.Get("AccountSid") != k.s.AccountSID() {
			t.Errorf("callback %d lacks the common parameters: %v", i, f)
		}
	}
}

func TestRefreshPage(t *testing.T) {
	cases := []struct {
		name            string
		operatorResets  bool
		wantCallbacks   []string
		wantConfStatus  string
		wantParticipant []string
		wantCallerCall  string
	}{
		{
			name:           "operator set endConferenceOnExit back to false: the caller stays",
			operatorResets: true,
			wantCallbacks: append(append([]string{}, acceptCallbacks...),
				"participant-modify worker eceo=false",
				"participant-leave worker participant_hung_up/completed"),
			wantConfStatus:  "in-progress",
			wantParticipant: []string{"customer eceo=false coaching=false"},
			wantCallerCall:  "in-progress",
		},
		{
			name: "Flex's endConferenceOnExit left in place: the caller is cut off",
			wantCallbacks: append(append([]string{}, acceptCallbacks...),
				"participant-leave worker participant_hung_up/completed",
				"participant-leave customer moderator_ended_conference/completed",
				"conference-end participant-with-end-conference-on-exit-left"),
			wantConfStatus: "completed",
			wantCallerCall: "completed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := connect(t)
			if tc.operatorResets {
				if _, err := k.c.UpdateParticipant(ctxT(t), k.conf, k.agentLeg, twilio.ParticipantUpdate{EndConferenceOnExit: ptr(false)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := k.s.RefreshPage(k.cc.Workers["ann"]); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantCallbacks, k.callbacks(t)); diff != "" {
				t.Errorf("callbacks (-want +got):\n%s", diff)
			}
			conf, err := k.c.FetchConference(ctxT(t), k.conf)
			if err != nil || conf.Status != tc.wantConfStatus {
				t.Errorf("conference %+v (%v), want %s", conf, err, tc.wantConfStatus)
			}
			if diff := cmp.Diff(tc.wantParticipant, k.participants(t, k.conf)); diff != "" {
				t.Errorf("participants (-want +got):\n%s", diff)
			}
			if got := k.reservationStatus(t); got != "wrapping" {
				t.Errorf("reservation is %s after the refresh, want wrapping", got)
			}
			caller, err := k.c.FetchCall(ctxT(t), k.call.CallSID)
			if err != nil || caller.Status != tc.wantCallerCall {
				t.Errorf("caller's call %+v (%v), want %s", caller, err, tc.wantCallerCall)
			}
		})
	}
}

func TestGracefulHangupAndCompletion(t *testing.T) {
	k := connect(t)
	if _, err := k.c.UpdateParticipant(ctxT(t), k.conf, "worker", twilio.ParticipantUpdate{EndConferenceOnExit: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if err := k.s.Hangup(k.cc.Workers["ann"]); err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, acceptCallbacks...),
		"participant-modify worker eceo=false",
		"participant-leave customer conference_ended_via_api/completed",
		"participant-leave worker conference_ended_via_api/completed",
		"conference-end conference-ended-via-api")
	if diff := cmp.Diff(want, k.callbacks(t)); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}
	if got := k.reservationStatus(t); got != "wrapping" {
		t.Errorf("reservation %s, want wrapping", got)
	}
	if err := k.s.Complete(k.res.SID); err != nil {
		t.Fatal(err)
	}
	task, err := k.c.FetchTask(ctxT(t), k.cc.WorkspaceSID, k.call.TaskSID)
	if err != nil || task.AssignmentStatus != "completed" {
		t.Errorf("task %+v (%v), want completed", task, err)
	}
}

func TestCustomerHangup(t *testing.T) {
	k := connect(t)
	if err := k.s.CustomerHangup(k.call.CallSID); err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, acceptCallbacks...),
		"participant-leave customer participant_hung_up/completed",
		"participant-leave worker conference_ended_via_api/completed",
		"conference-end conference-ended-via-api")
	if diff := cmp.Diff(want, k.callbacks(t)); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}
	if got := k.reservationStatus(t); got != "wrapping" {
		t.Errorf("reservation %s, want wrapping", got)
	}
}

func TestWarmTransferAndMonitor(t *testing.T) {
	k := connect(t,
		twiliosim.WorkerSpec{Name: "ann"},
		twiliosim.WorkerSpec{Name: "bob", Activity: "Offline"},
		twiliosim.WorkerSpec{Name: "sue", Activity: "Offline"},
	)
	if err := k.s.SetWorkerActivity(k.cc.Workers["bob"], "Available"); err != nil {
		t.Fatal(err)
	}
	sup, err := k.s.Monitor(k.cc.Workers["sue"], k.conf)
	if err != nil {
		t.Fatal(err)
	}
	transfer, err := k.s.WarmTransfer(k.cc.Workers["ann"], k.cc.Workers["bob"])
	if err != nil {
		t.Fatal(err)
	}
	if err := k.s.Accept(transfer); err != nil {
		t.Fatal(err)
	}
	if err := k.s.Hangup(k.cc.Workers["ann"]); err != nil {
		t.Fatal(err)
	}
	want := []string{"customer eceo=false coaching=false", "supervisor eceo=false coaching=true", "worker-2 eceo=true coaching=false"}
	if diff := cmp.Diff(want, k.participants(t, k.conf)); diff != "" {
		t.Errorf("participants after the transfer (-want +got):\n%s", diff)
	}
	got := k.callbacks(t)
	tail := got[len(acceptCallbacks):]
	wantTail := []string{
		"participant-join supervisor",
		"participant-hold customer",
		"participant-join worker-2",
		"participant-modify worker eceo=false", // three parties: Flex lets ann go
		"participant-unhold customer",
		"participant-leave worker participant_updated_via_api/completed",
		"participant-modify worker-2 eceo=true",
	}
	if diff := cmp.Diff(wantTail, tail); diff != "" {
		t.Errorf("callbacks after accept (-want +got):\n%s", diff)
	}
	if got := k.reservationStatus(t); got != "wrapping" {
		t.Errorf("ann's reservation %s, want wrapping", got)
	}
	task, err := k.c.FetchTask(ctxT(t), k.cc.WorkspaceSID, k.call.TaskSID)
	if err != nil || task.AssignmentStatus != "assigned" {
		t.Errorf("task %+v (%v), want still assigned to bob", task, err)
	}
	ps, err := k.c.ListParticipants(ctxT(t), k.conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.CallSID == sup && (!p.Coaching || p.CallSIDToCoach == "" || !p.Muted) {
			t.Errorf("supervisor leg %+v, want muted coaching", p)
		}
	}
}

// TestTwiMLEnqueueAndDial walks the recovery the operator performs, with
// only Twilio API calls: after the agent's refresh the caller is
// redirected into a new task for the same agent, the old reservation is
// completed, the agent accepts, and a third party is moved across with
// <Dial><Conference>.
func TestTwiMLEnqueueAndDial(t *testing.T) {
	k := connect(t)
	ctx := ctxT(t)
	ws, ann := k.cc.WorkspaceSID, k.cc.Workers["ann"]
	third, err := k.s.DialThirdParty(k.conf, "+15550003333")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.c.UpdateParticipant(ctx, k.conf, "worker", twilio.ParticipantUpdate{EndConferenceOnExit: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if err := k.s.RefreshPage(ann); err != nil {
		t.Fatal(err)
	}
	if err := k.c.AnnounceConference(ctx, k.conf, "https://example.com/connection-interrupted.mp3"); err != nil {
		t.Fatal(err)
	}

	enqueue := fmt.Sprintf(`<Response><Say>Please hold</Say><Enqueue workflowSid="%s"><Task priority="1000">{"targetWorkerSid":"%s","isReconnect":true}</Task></Enqueue></Response>`,
		k.cc.Workflows["Voice"], ann)
	if _, err := k.c.RedirectCall(ctx, k.call.CallSID, enqueue); err != nil {
		t.Fatal(err)
	}
	st := k.s.Snapshot()
	caller, _ := st.Call(k.call.CallSID)
	reconnect, ok := st.Task(caller.QueueTaskSID)
	if !ok {
		t.Fatalf("the caller waits in no task:\n%s", k.s.Dump())
	}
	if reconnect.Priority != 1000 || reconnect.Attributes["targetWorkerSid"] != ann || reconnect.Attributes["call_sid"] != k.call.CallSID || reconnect.Channel != "voice" {
		t.Errorf("reconnect task %+v", reconnect)
	}
	// ann's voice capacity is still held by the wrapping reservation.
	if rs := reservationsOf(t, k.c, ws, reconnect.SID); len(rs) != 0 {
		t.Fatalf("reconnect task reserved before the old reservation completed: %+v", rs)
	}
	if _, err := k.c.UpdateReservation(ctx, ws, k.call.TaskSID, k.res.SID, twilio.ReservationUpdate{Status: ptr("completed")}); err != nil {
		t.Fatal(err)
	}
	res2 := onlyPending(t, k.c, ws, reconnect.SID)
	if res2.WorkerSID != ann {
		t.Fatalf("reconnect task offered to %s, want ann", res2.WorkerSID)
	}
	if err := k.s.Accept(res2.SID); err != nil {
		t.Fatal(err)
	}
	newConf := k.s.Snapshot()
	nc, ok := newConf.Call(k.call.CallSID)
	if !ok || nc.ConferenceSID == "" || nc.ConferenceSID == k.conf {
		t.Fatalf("caller not in a new conference: %+v", nc)
	}
	dial := fmt.Sprintf(`<Response><Dial><Conference participantLabel="external" endConferenceOnExit="false">%s</Conference></Dial></Response>`, reconnect.SID)
	if _, err := k.c.RedirectCall(ctx, third, dial); err != nil {
		t.Fatal(err)
	}
	// Three parties: Flex has set the agent's endConferenceOnExit to false.
	want := []string{"customer eceo=false coaching=false", "worker eceo=false coaching=false", "external eceo=false coaching=false"}
	if diff := cmp.Diff(want, k.participants(t, nc.ConferenceSID)); diff != "" {
		t.Errorf("new conference (-want +got):\n%s", diff)
	}
	old, err := k.c.FetchConference(ctx, k.conf)
	if err != nil || old.Status != "completed" || old.ReasonConferenceEnded != "last-participant-left" {
		t.Errorf("old conference %+v (%v), want completed by last-participant-left", old, err)
	}
	got := k.callbacks(t)
	var tail []string
	for _, line := range got {
		if strings.HasPrefix(line, "participant-leave customer") || strings.HasPrefix(line, "participant-leave external") ||
			strings.HasPrefix(line, "announcement") {
			tail = append(tail, line)
		}
	}
	wantTail := []string{
		"announcement-end",
		"participant-leave customer participant_updated_via_api/in-progress",
		"participant-leave external participant_updated_via_api/in-progress",
	}
	if diff := cmp.Diff(wantTail, tail); diff != "" {
		t.Errorf("old conference's leaves (-want +got):\n%s", diff)
	}
}

func TestRedirectRejectsUnmodelledTwiML(t *testing.T) {
	k := connect(t)
	for _, twiml := range []string{
		`<Response><Gather/></Response>`,
		`<Response><Enqueue>support</Enqueue></Response>`,
		`<Response><Enqueue workflowSid="WW00000000000000000000000000000000"/></Response>`,
		`<Response><Dial>+15550001111</Dial></Response>`,
		`<Response><Say>` + strings.Repeat("x", 4000) + `</Say></Response>`,
		`not xml`,
	} {
		if _, err := k.c.RedirectCall(ctxT(t), k.call.CallSID, twiml); !twilio.IsTerminal(err) {
			t.Errorf("redirect with %.40q: %v, want a 400", twiml, err)
		}
	}
	if got := k.participants(t, k.conf); len(got) != 2 {
		t.Errorf("a refused redirect changed the conference: %v", got)
	}
}

// A conference status callback is sent once, as Twilio sends it: one answered 503, or whose
// connection fails, is lost. Only the RetryConferenceCallbacks fault sends it again.
func TestConferenceCallbacksAreSentOnce(t *testing.T) {
	refuseFirst := func(hit int) int {
		if hit == 1 {
			return 503
		}
		return 200
	}
	cases := []struct {
		name         string
		retry        bool
		answer       func(hit int) int
		closed       bool // the receiver is gone: every connection fails
		wantReceived []string
		wantStats    twiliosim.DestinationStats // Attempts, Retries, Delivered, Dropped, Refused, Unreachable
	}{
		{name: "503: lost", answer: refuseFirst, wantReceived: acceptCallbacks[1:],
			wantStats: twiliosim.DestinationStats{Attempts: 4, Delivered: 3, Dropped: 1, Refused: 1}},
		{name: "connection refused: lost", closed: true,
			wantStats: twiliosim.DestinationStats{Attempts: 4, Dropped: 4, Refused: 4, Unreachable: 4}},
		{name: "503 with the retry fault: sent again", retry: true, answer: refuseFirst, wantReceived: acceptCallbacks,
			wantStats: twiliosim.DestinationStats{Attempts: 5, Retries: 1, Delivered: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := start(t, twiliosim.Options{DeliveryMaxAttempts: 5})
			s.SetFaults(twiliosim.Faults{RetryConferenceCallbacks: tc.retry})
			cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Attributes: map[string]any{"contact_uri": "client:ann"}}))
			rc := newReceiver(t, s.AuthToken(), tc.answer)
			callbackURL := rc.url("/conference")
			if tc.closed {
				rc.srv.Close()
			}
			s.SetConferenceCallback(callbackURL)
			call, err := s.PlaceCall("+15550001111", cc.Workflows["Voice"], nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Accept(onlyPending(t, c, cc.WorkspaceSID, call.TaskSID).SID); err != nil {
				t.Fatal(err)
			}
			waitDelivered(t, s)
			forms, _, _, _ := rc.snapshot()
			if diff := cmp.Diff(tc.wantReceived, callbackSummary(forms)); diff != "" {
				t.Errorf("callbacks received (-want +got):\n%s", diff)
			}
			st := s.Deliveries().Destination("callback:" + callbackURL)
			got := twiliosim.DestinationStats{Attempts: st.Attempts, Retries: st.Retries, Delivered: st.Delivered, Dropped: st.Dropped,
				Refused: st.Refused, Unreachable: st.Unreachable}
			if got != tc.wantStats {
				t.Errorf("delivery stats %+v, want %+v", got, tc.wantStats)
			}
		})
	}
}

// TestListLiveConferences: the live conferences of the account are listed by status with the
// fields the operator's start-up discovery reads (the friendly name Flex gives them, the task's
// SID), and their participants with label and endConferenceOnExit; a finished conference is not
// in-progress any more.
func TestListLiveConferences(t *testing.T) {
	k := connect(t)
	live, err := k.c.ListConferences(ctxT(t), "in-progress")
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0].SID != k.conf || live[0].FriendlyName != k.call.TaskSID || live[0].Status != "in-progress" {
		t.Fatalf("in-progress conferences %+v, want only %s named %s", live, k.conf, k.call.TaskSID)
	}
	parts, err := k.c.ListParticipants(ctxT(t), k.conf)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range parts {
		got[p.Label] = fmt.Sprintf("%s eceo=%t %s", p.CallSID, p.EndConferenceOnExit, p.Status)
	}
	want := map[string]string{"customer": k.call.CallSID + " eceo=false connected", "worker": k.agentLeg + " eceo=true connected"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("participants (-want +got):\n%s", diff)
	}
	if _, err := k.c.ListConferences(ctxT(t), "ringing"); err == nil {
		t.Error("a status Twilio does not know was accepted")
	}
	if err := k.s.CustomerHangup(k.call.CallSID); err != nil {
		t.Fatal(err)
	}
	if live, err = k.c.ListConferences(ctxT(t), "in-progress"); err != nil || len(live) != 0 {
		t.Errorf("in-progress after the customer hung up: %+v, %v", live, err)
	}
	done, err := k.c.ListConferences(ctxT(t), "completed")
	if err != nil || len(done) != 1 || done[0].SID != k.conf {
		t.Errorf("completed conferences %+v, %v; want %s", done, err, k.conf)
	}
}

// TestListLiveCalls: the account's live calls are listed by status, so the operator's sweep can
// tell, in one request per thousand calls, which legs of its recoveries have ended.
func TestListLiveCalls(t *testing.T) {
	k := connect(t)
	live, err := k.c.ListCalls(ctxT(t), "in-progress")
	if err != nil {
		t.Fatal(err)
	}
	var sids []string
	for _, c := range live {
		sids = append(sids, c.SID)
	}
	if !slices.Contains(sids, k.call.CallSID) || !slices.Contains(sids, k.agentLeg) {
		t.Fatalf("in-progress calls %v lack the customer %s or the agent's leg %s", sids, k.call.CallSID, k.agentLeg)
	}
	if err := k.s.RefreshPage(k.res.WorkerSID); err != nil {
		t.Fatal(err)
	}
	if live, err = k.c.ListCalls(ctxT(t), "in-progress"); err != nil {
		t.Fatal(err)
	}
	for _, c := range live {
		if c.SID == k.agentLeg {
			t.Errorf("the agent's leg %s is still in-progress after the refresh: %+v", k.agentLeg, c)
		}
	}
	if _, err := k.c.ListCalls(ctxT(t), "live"); err == nil {
		t.Error("a status Twilio does not know was accepted")
	}
}
