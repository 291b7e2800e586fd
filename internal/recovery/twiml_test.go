package recovery

import (
	"encoding/json"
	"encoding/xml"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

func TestBuildEnqueueTwiML(t *testing.T) {
	attrs := map[string]any{"name": `O'Brien <&> "x"`, "isReconnect": true}
	got, err := BuildEnqueueTwiML(workflowSID, 1000, attrs)
	if err != nil {
		t.Fatal(err)
	}
	want := `<Response><Enqueue workflowSid="` + workflowSID + `"><Task priority="1000">` +
		`{&#34;isReconnect&#34;:true,&#34;name&#34;:&#34;O&#39;Brien \u003c\u0026\u003e \&#34;x\&#34;&#34;}</Task></Enqueue></Response>`
	if got != want {
		t.Errorf("twiml\n got %s\nwant %s", got, want)
	}
	// What Twilio reads back is the JSON we meant.
	var doc struct {
		Enqueue struct {
			WorkflowSID string `xml:"workflowSid,attr"`
			Task        struct {
				Priority string `xml:"priority,attr"`
				Body     string `xml:",chardata"`
			}
		}
	}
	if err := xml.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(doc.Enqueue.Task.Body), &back); err != nil {
		t.Fatalf("task body not JSON: %v", err)
	}
	if diff := cmp.Diff(attrs, back); diff != "" || doc.Enqueue.WorkflowSID != workflowSID || doc.Enqueue.Task.Priority != "1000" {
		t.Errorf("round trip (-want +got):\n%s %+v", diff, doc)
	}

	for _, bad := range []struct {
		name     string
		workflow string
		priority int64
		attrs    map[string]any
	}{
		{"bad workflow", `WW"/><Hangup/>`, 1, nil},
		{"negative priority", workflowSID, -1, nil},
		{"unencodable attribute", workflowSID, 1, map[string]any{"f": func() {}}},
	} {
		if _, err := BuildEnqueueTwiML(bad.workflow, bad.priority, bad.attrs); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
}

func TestBuildDialConferenceTwiML(t *testing.T) {
	got := BuildDialConferenceTwiML("a<b&c")
	want := `<Response><Dial><Conference endConferenceOnExit="false">a&lt;b&amp;c</Conference></Dial></Response>`
	if got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestPingTaskAttributes(t *testing.T) {
	original := map[string]any{"from": "+15550001", "conversations": map[string]any{"conversation_id": "X"}}
	spec := v1alpha1.ConferenceRecoverySpec{ConferenceSID: confSID, TaskSID: taskSID, WorkflowSID: workflowSID}
	st := v1alpha1.ConferenceRecoveryStatus{Disconnect: &v1alpha1.DisconnectStatus{WorkerSID: workerSID, WorkerName: "Ann",
		CallSID: agentLeg, ReservationSID: resSID, At: *mt(10)}}
	got := PingTaskAttributes(original, spec, st)
	want := map[string]any{
		"from": "+15550001", "conversations": map[string]any{"conversation_id": "X"},
		"disconnectedTaskSid": taskSID, "disconnectedTaskWorkflowSid": workflowSID, "disconnectedConferenceSid": confSID,
		"disconnectedWorkerSid": workerSID, "disconnectedWorkerName": "Ann", "disconnectedCallSid": agentLeg,
		"disconnectedReservationSid": resSID, "disconnectedTime": t0.Add(10 * time.Second).Format(time.RFC3339),
		MarkerAttribute: map[string]any{"role": "ping", "conferenceSid": confSID, "disconnectedCallSid": agentLeg},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if len(original) != 2 {
		t.Error("original modified")
	}
}

// TestSecondRecoveryInheritsNothing builds the tasks of a call that drops twice: the second ping
// is built from the first reconnect task (the original task of the new conference). Nothing of the
// first incident may make the second ping look like a reconnect task, target the first agent, or
// point at the first conference.
func TestSecondRecoveryInheritsNothing(t *testing.T) {
	first := v1alpha1.ConferenceRecoverySpec{ConferenceSID: confSID, TaskSID: taskSID, WorkflowSID: workflowSID}
	firstSt := v1alpha1.ConferenceRecoveryStatus{Disconnect: &v1alpha1.DisconnectStatus{WorkerSID: workerSID, CallSID: agentLeg,
		ReservationSID: resSID, At: *mt(10)}}
	ping1 := PingTaskAttributes(map[string]any{"from": "+15550001"}, first, firstSt)
	reconnect1 := ReconnectTaskAttributes(ping1, IncidentMarker(TaskRoleReconnect, first, firstSt), taskSID, workerSID, false)

	secondConf, secondTask, secondLeg := "CF"+strings.Repeat("2", 32), "WT"+strings.Repeat("2", 32), "CA"+strings.Repeat("2", 32)
	second := v1alpha1.ConferenceRecoverySpec{ConferenceSID: secondConf, TaskSID: secondTask, WorkflowSID: workflowSID}
	secondSt := v1alpha1.ConferenceRecoveryStatus{Disconnect: &v1alpha1.DisconnectStatus{CallSID: secondLeg, At: *mt(90)}}
	ping2 := PingTaskAttributes(UnmarkedAttributes(reconnect1, ""), second, secondSt)

	got := AttributesOf(ping2)
	if want := (Marker{Role: TaskRolePing, ConferenceSID: secondConf, DisconnectedCallSID: secondLeg}); got.Marker != want {
		t.Errorf("second ping marker = %+v, want %+v", got.Marker, want)
	}
	for _, k := range []string{"isReconnect", "targetWorkerSid", "disconnectedReservationSid", "disconnectedWorkerSid"} {
		if v, ok := ping2[k]; ok {
			t.Errorf("second ping inherited %s = %v", k, v)
		}
	}
	if ping2["disconnectedConferenceSid"] != secondConf || ping2["disconnectedTaskSid"] != secondTask {
		t.Errorf("second ping points at %v / %v", ping2["disconnectedConferenceSid"], ping2["disconnectedTaskSid"])
	}
	reconnect2 := ReconnectTaskAttributes(ping2, IncidentMarker(TaskRoleReconnect, second, secondSt), secondTask, "", true)
	if m := AttributesOf(reconnect2).Marker; m.Role != TaskRoleReconnect || m.ConferenceSID != secondConf || m.DisconnectedCallSID != secondLeg {
		t.Errorf("second reconnect marker = %+v", m)
	}
	if _, ok := reconnect2["targetWorkerSid"]; ok {
		t.Error("a fallback reconnect targets a worker")
	}
	// The lookups of the second incident do not find the first incident's tasks.
	if IncidentMarker(TaskRolePing, second, secondSt).Matches(confSID, agentLeg) {
		t.Error("the second incident's marker matches the first")
	}
}

func TestReconnectTaskAttributes(t *testing.T) {
	ping := map[string]any{"disconnectedTaskSid": taskSID, "targetWorkerSid": "stale",
		"conference": map[string]any{"sid": confSID}, "conversations": map[string]any{"followed_by": "Reconnect Agent"}}
	tests := []struct {
		name     string
		ping     map[string]any
		fallback bool
		want     map[string]any
	}{{
		name: "to the same agent, conversation id from the original task",
		ping: ping,
		want: map[string]any{"disconnectedTaskSid": taskSID, "targetWorkerSid": workerSID, "isReconnect": true, "conference": map[string]any{},
			MarkerAttribute: map[string]any{"role": "reconnect", "conferenceSid": confSID, "disconnectedCallSid": agentLeg},
			"conversations": map[string]any{"followed_by": "Reconnect Agent", "conversation_id": taskSID}},
	}, {
		name: "fallback has no target; existing conversation id kept",
		ping: map[string]any{"conversations": map[string]any{"conversation_id": "KEEP"}}, fallback: true,
		want: map[string]any{"isReconnect": true, "conference": map[string]any{}, "conversations": map[string]any{"conversation_id": "KEEP"},
			MarkerAttribute: map[string]any{"role": "reconnect", "conferenceSid": confSID, "disconnectedCallSid": agentLeg}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReconnectTaskAttributes(tt.ping, Marker{ConferenceSID: confSID, DisconnectedCallSID: agentLeg}, "", workerSID, tt.fallback)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, ok := ping["isReconnect"]; ok || ping["targetWorkerSid"] != "stale" {
		t.Error("ping attributes modified")
	}
	if _, ok := ping["conversations"].(map[string]any)["conversation_id"]; ok {
		t.Error("nested conversations modified")
	}
}

func TestBuildRedialTwiML(t *testing.T) {
	for _, tc := range []struct{ name, label, want string }{
		{"WT1", "external", `<Response><Dial><Conference participantLabel="external" endConferenceOnExit="false">WT1</Conference></Dial></Response>`},
		{"a<b", `x"y`, `<Response><Dial><Conference participantLabel="x&#34;y" endConferenceOnExit="false">a&lt;b</Conference></Dial></Response>`},
		{"WT1", "", `<Response><Dial><Conference endConferenceOnExit="false">WT1</Conference></Dial></Response>`},
	} {
		if got := BuildRedialTwiML(tc.name, tc.label); got != tc.want {
			t.Errorf("BuildRedialTwiML(%q, %q)\n got %s\nwant %s", tc.name, tc.label, got, tc.want)
		}
		var doc struct {
			Dial struct {
				Conference struct {
					Label string `xml:"participantLabel,attr"`
					Name  string `xml:",chardata"`
				}
			}
		}
		if err := xml.Unmarshal([]byte(BuildRedialTwiML(tc.name, tc.label)), &doc); err != nil ||
			doc.Dial.Conference.Name != tc.name || doc.Dial.Conference.Label != tc.label {
			t.Errorf("round trip of %q/%q: %+v %v", tc.name, tc.label, doc, err)
		}
	}
}

func TestAnnouncementURL(t *testing.T) {
	got, err := AnnouncementURL(Announce{URL: "https://example.com/a.mp3"})
	if err != nil || got != "https://example.com/a.mp3" {
		t.Errorf("URL: %q, %v", got, err)
	}
	got, err = AnnouncementURL(Announce{Text: "Please hold & wait"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil || u.Scheme != "https" || u.Host != "twimlets.com" || u.Query().Get("Message[0]") != "Please hold & wait" {
		t.Errorf("text: %q (%v)", got, err)
	}
	if _, err := AnnouncementURL(Announce{Text: "  "}); err == nil {
		t.Error("empty announcement accepted")
	}
}
