package recovery

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// MergeAttributes returns base with patch merged in: a key whose value is an object on both sides
// is merged key by key (so conversations keeps its other keys), any other value in patch replaces
// the one in base. Neither map is modified.
func MergeAttributes(base, patch map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range patch {
		pv, pok := v.(map[string]any)
		bv, bok := out[k].(map[string]any)
		if pok && bok {
			out[k] = MergeAttributes(bv, pv)
			continue
		}
		out[k] = v
	}
	return out
}

// HasAttributes reports whether attrs already hold every value of patch (objects compared key by key),
// so that merging patch would change nothing.
func HasAttributes(attrs, patch map[string]any) bool {
	for k, v := range patch {
		if pv, ok := v.(map[string]any); ok {
			av, ok := attrs[k].(map[string]any)
			if !ok || !HasAttributes(av, pv) {
				return false
			}
			continue
		}
		av, ok := attrs[k]
		if !ok || !scalarEqual(av, v) {
			return false
		}
	}
	return true
}

// scalarEqual compares values by their JSON encoding: numbers may be float64 (decoded) on one side
// and ints (built in Go) on the other.
func scalarEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// UnmarkedAttributes returns the original task's attributes without the marks MarkOriginalTask and
// MarkPingSuccessful put on them (disconnectedTime, wasPingSuccessful and a conversations.followed_by
// equal to followedBy), so that the ping task, and the reconnect task built from it, describe the
// call and not the outage: the reconnect segment is not itself "followed by" a reconnect.
func UnmarkedAttributes(attrs map[string]any, followedBy string) map[string]any {
	out := maps.Clone(attrs)
	if out == nil {
		out = map[string]any{}
	}
	delete(out, "disconnectedTime")
	delete(out, "wasPingSuccessful")
	if c, ok := out["conversations"].(map[string]any); ok && c["followed_by"] == cmp.Or(followedBy, DefaultFollowedBy) {
		c = maps.Clone(c)
		delete(c, "followed_by")
		out["conversations"] = c
	}
	return out
}

// IncidentMarker is the marker of the recovery's current incident with the given role.
func IncidentMarker(role TaskRole, spec v1alpha1.ConferenceRecoverySpec, st v1alpha1.ConferenceRecoveryStatus) Marker {
	m := Marker{Role: role, ConferenceSID: spec.ConferenceSID}
	if st.Disconnect != nil {
		m.DisconnectedCallSID = st.Disconnect.CallSID
	}
	return m
}
