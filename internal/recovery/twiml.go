package recovery

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// BuildEnqueueTwiML returns the TwiML that moves the customer's call into a new task on workflowSID:
// <Response><Enqueue workflowSid="WW…"><Task priority="n">{json}</Task></Enqueue></Response>, with
// the JSON attributes XML-escaped.
func BuildEnqueueTwiML(workflowSID string, priority int64, attrs map[string]any) (string, error) {
	if !events.ValidSID(workflowSID, "WW") {
		return "", fmt.Errorf("enqueue twiml: workflow SID %q is not WW and 32 hex digits", workflowSID)
	}
	if priority < 0 || priority > 2147483647 {
		return "", fmt.Errorf("enqueue twiml: priority %d is outside 0..2147483647", priority)
	}
	body, err := json.Marshal(attrs)
	if err != nil {
		return "", fmt.Errorf("enqueue twiml: encode task attributes: %w", err)
	}
	var b strings.Builder
	b.WriteString(`<Response><Enqueue workflowSid="`)
	b.WriteString(workflowSID)
	b.WriteString(`"><Task priority="`)
	b.WriteString(strconv.FormatInt(priority, 10))
	b.WriteString(`">`)
	b.WriteString(xmlEscape(string(body)))
	b.WriteString(`</Task></Enqueue></Response>`)
	return b.String(), nil
}

// BuildDialConferenceTwiML returns the TwiML that dials a leg into the conference called name.
func BuildDialConferenceTwiML(name string) string {
	return `<Response><Dial><Conference endConferenceOnExit="false">` +
		xmlEscape(name) + `</Conference></Dial></Response>`
}

// BuildRedialTwiML returns the TwiML that moves a leg of the old conference into the new one called
// name, keeping its participant label (Flex's "external…" labels) when it had one. The leg must not
// end the new conference when it leaves.
func BuildRedialTwiML(name, label string) string {
	var b strings.Builder
	b.WriteString(`<Response><Dial><Conference`)
	if label != "" {
		b.WriteString(` participantLabel="`)
		b.WriteString(xmlEscape(label))
		b.WriteString(`"`)
	}
	b.WriteString(` endConferenceOnExit="false">`)
	b.WriteString(xmlEscape(name))
	b.WriteString(`</Conference></Dial></Response>`)
	return b.String()
}

// twimletMessage is Twilio's hosted Message twimlet, which answers with <Say> of its Message[0]
// parameter. A conference announcement can only be given as a URL, so text to say goes through it.
const twimletMessage = "https://twimlets.com/message"

// AnnouncementURL is the URL a conference announcement plays: the policy's URL as given, or for
// text the Message twimlet saying it.
func AnnouncementURL(a Announce) (string, error) {
	switch {
	case a.URL != "":
		return a.URL, nil
	case strings.TrimSpace(a.Text) != "":
		return twimletMessage + "?" + url.Values{"Message[0]": {a.Text}}.Encode(), nil
	}
	return "", fmt.Errorf("announcement has neither a URL nor text")
}

func xmlEscape(s string) string {
	var buf bytes.Buffer
	// EscapeText only fails when the writer does; a bytes.Buffer never does.
	_ = xml.EscapeText(&buf, []byte(s))
	return buf.String()
}

// recoveryFields are the attributes a recovery writes on its ping and reconnect tasks (and on the
// original task). A task built from another task's attributes gets them fresh, never inherited:
// after one recovery the original task of the next is a reconnect task, and what it says about the
// first incident (its role, its target agent, the first disconnect) must not leak into the second.
var recoveryFields = []string{
	MarkerAttribute, "isReconnect", "targetWorkerSid", "wasPingSuccessful",
	"disconnectedTaskSid", "disconnectedTaskWorkflowSid", "disconnectedConferenceSid", "disconnectedWorkerSid",
	"disconnectedWorkerName", "disconnectedCallSid", "disconnectedReservationSid", "disconnectedTime",
}

// PingTaskAttributes returns the Recovery Ping task's attributes: the original task's attributes
// without any recovery field they carried, plus the disconnected* fields the ping workflow routes
// on and the ping's marker (see MarkerAttribute). The original map is not modified. Fields whose
// value is unknown are left out.
func PingTaskAttributes(original map[string]any, spec v1alpha1.ConferenceRecoverySpec, st v1alpha1.ConferenceRecoveryStatus) map[string]any {
	attrs := copyMap(original)
	for _, k := range recoveryFields {
		delete(attrs, k)
	}
	set := func(key, value string) {
		if value != "" {
			attrs[key] = value
		}
	}
	set("disconnectedTaskSid", spec.TaskSID)
	set("disconnectedTaskWorkflowSid", spec.WorkflowSID)
	set("disconnectedConferenceSid", spec.ConferenceSID)
	marker := Marker{Role: TaskRolePing, ConferenceSID: spec.ConferenceSID}
	if d := st.Disconnect; d != nil {
		set("disconnectedWorkerSid", d.WorkerSID)
		set("disconnectedWorkerName", d.WorkerName)
		set("disconnectedCallSid", d.CallSID)
		set("disconnectedReservationSid", d.ReservationSID)
		if !d.At.IsZero() {
			attrs["disconnectedTime"] = d.At.UTC().Format(time.RFC3339)
		}
		marker.DisconnectedCallSID = d.CallSID
	}
	attrs[MarkerAttribute] = marker.Value()
	return attrs
}

// ReconnectTaskAttributes returns the reconnect task's attributes from the ping task's (which carry
// the original's): the reconnect marker of the incident (which replaces the ping's), targetWorkerSid
// only when the agent answered the ping (not a fallback), the seed's isReconnect true for the Flex
// plugin, conference emptied so Flex fills it in for the new conference, and
// conversations.conversation_id kept, or set to the original task SID so reporting links the two.
func ReconnectTaskAttributes(pingAttrs map[string]any, incident Marker, originalTaskSID, targetWorkerSID string, fallback bool) map[string]any {
	attrs := copyMap(pingAttrs)
	delete(attrs, "targetWorkerSid")
	if !fallback && targetWorkerSID != "" {
		attrs["targetWorkerSid"] = targetWorkerSID
	}
	incident.Role = TaskRoleReconnect
	attrs[MarkerAttribute] = incident.Value()
	attrs["isReconnect"] = true
	attrs["conference"] = map[string]any{}
	conversations := map[string]any{}
	if c, ok := attrs["conversations"].(map[string]any); ok {
		conversations = copyMap(c)
	}
	if originalTaskSID == "" {
		originalTaskSID, _ = attrs["disconnectedTaskSid"].(string)
	}
	if id, _ := conversations["conversation_id"].(string); id == "" && originalTaskSID != "" {
		conversations["conversation_id"] = originalTaskSID
	}
	attrs["conversations"] = conversations
	return attrs
}

// copyMap is a shallow copy; nested maps that are changed are copied by the caller.
func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+8)
	for k, v := range m {
		out[k] = v
	}
	return out
}
