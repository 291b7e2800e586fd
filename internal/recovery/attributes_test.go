package recovery

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMergeAttributes(t *testing.T) {
	base := map[string]any{"from": "+1555", "conversations": map[string]any{"conversation_id": "X", "followed_by": "old"},
		"conference": map[string]any{"sid": "CF1"}}
	patch := map[string]any{"disconnectedTime": "2026-01-05T09:00:00Z", "conversations": map[string]any{"followed_by": "Reconnect Agent"},
		"conference": "replaced"}
	got := MergeAttributes(base, patch)
	want := map[string]any{"from": "+1555", "disconnectedTime": "2026-01-05T09:00:00Z",
		"conversations": map[string]any{"conversation_id": "X", "followed_by": "Reconnect Agent"}, "conference": "replaced"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if base["conversations"].(map[string]any)["followed_by"] != "old" {
		t.Error("base modified")
	}
	if !HasAttributes(got, patch) {
		t.Error("merged attributes do not contain the patch")
	}
	if HasAttributes(base, patch) {
		t.Error("base reported to contain the patch")
	}
	if got := MergeAttributes(nil, map[string]any{"a": true}); !HasAttributes(got, map[string]any{"a": true}) {
		t.Errorf("merge into nil: %v", got)
	}
}

func TestHasAttributesNumbers(t *testing.T) {
	decoded := map[string]any{"n": float64(3), "ok": true, "s": "true"}
	for _, tc := range []struct {
		patch map[string]any
		want  bool
	}{
		{map[string]any{"n": 3}, true},
		{map[string]any{"ok": true}, true},
		{map[string]any{"s": true}, false},
		{map[string]any{"missing": nil}, false},
		{map[string]any{"n": map[string]any{"x": 1}}, false},
	} {
		if got := HasAttributes(decoded, tc.patch); got != tc.want {
			t.Errorf("HasAttributes(%v) = %v, want %v", tc.patch, got, tc.want)
		}
	}
}

func TestUnmarkedAttributes(t *testing.T) {
	marked := map[string]any{"from": "+1555", "disconnectedTime": "x", "wasPingSuccessful": true,
		"conversations": map[string]any{"conversation_id": "X", "followed_by": "Reconnect Agent"}}
	want := map[string]any{"from": "+1555", "conversations": map[string]any{"conversation_id": "X"}}
	if diff := cmp.Diff(want, UnmarkedAttributes(marked, "")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, ok := marked["conversations"].(map[string]any)["followed_by"]; !ok {
		t.Error("input modified")
	}
	// Someone else's followed_by is not ours to drop.
	other := map[string]any{"conversations": map[string]any{"followed_by": "Transfer"}}
	if diff := cmp.Diff(other, UnmarkedAttributes(other, "Reconnect Agent")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMarkerExpression(t *testing.T) {
	m := Marker{Role: TaskRolePing, ConferenceSID: confSID, DisconnectedCallSID: agentLeg}
	want := `flexOperatorRecovery.role == "ping" AND flexOperatorRecovery.conferenceSid == "` + confSID +
		`" AND flexOperatorRecovery.disconnectedCallSid == "` + agentLeg + `"`
	if got := m.Expression(); got != want {
		t.Errorf("got %s", got)
	}
}

func TestActionNameParsing(t *testing.T) {
	c := CorrectEndConferenceOnExit{CallSID: agentLeg, SequenceNumber: 12}
	if leg, ok := IsCorrection(c.ActionName()); !ok || leg != agentLeg {
		t.Errorf("IsCorrection(%q) = %q, %v", c.ActionName(), leg, ok)
	}
	if _, ok := IsCorrection(NameAnnounce); ok {
		t.Error("Announce is not a correction")
	}
	r := Redial{CallSID: thirdLeg}
	if leg, ok := IsRedial(r.ActionName()); !ok || leg != thirdLeg {
		t.Errorf("IsRedial(%q) = %q, %v", r.ActionName(), leg, ok)
	}
	if _, ok := IsRedial(NameEnqueueReconnect); ok {
		t.Error("EnqueueReconnect is not a redial")
	}
}
