package recovery

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/internal/events"
)

func TestParseTaskAttributes(t *testing.T) {
	customer, worker := "CA"+strings.Repeat("1", 32), "WK"+strings.Repeat("3", 32)
	marker := `"flexOperatorRecovery":{"role":"reconnect","conferenceSid":"` + confSID + `","disconnectedCallSid":"` + agentLeg + `"}`
	tests := []struct {
		name string
		raw  string
		want TaskAttributes
		bad  bool
	}{
		{"empty", "", TaskAttributes{}, false},
		{"not JSON", "{", TaskAttributes{}, true},
		{"not an object", `[1]`, TaskAttributes{}, true},
		{"null", `null`, TaskAttributes{}, true},
		{"reconnect marker", `{` + marker + `,"isReconnect":true}`,
			TaskAttributes{Marker: Marker{Role: TaskRoleReconnect, ConferenceSID: confSID, DisconnectedCallSID: agentLeg}, IsReconnect: true}, false},
		{"isReconnect as a string is not the flag", `{"isReconnect":"true"}`, TaskAttributes{}, false},
		{"the seed's attributes alone are no marker", `{"disconnectedConferenceSid":"` + confSID + `","isReconnect":true}`,
			TaskAttributes{IsReconnect: true}, false},
		{"marker of an unknown role", `{"flexOperatorRecovery":{"role":"other","conferenceSid":"` + confSID + `"}}`, TaskAttributes{}, false},
		{"marker without a valid conference", `{"flexOperatorRecovery":{"role":"ping","conferenceSid":"CF1"}}`, TaskAttributes{}, false},
		{"marker of another shape", `{"flexOperatorRecovery":"ping"}`, TaskAttributes{}, false},
		{"Flex conference participants", `{"conference":{"sid":"` + confSID + `","participants":{"customer":"` + customer + `","worker":"` + agentLeg + `","` + worker + `":"` + agentLeg + `","bad":"x","num":3}}}`,
			TaskAttributes{Participants: map[string]string{"customer": customer, "worker": agentLeg, worker: agentLeg}, ConferenceSID: confSID}, false},
	}
	for _, tt := range tests {
		got, err := ParseTaskAttributes(tt.raw)
		if (err != nil) != tt.bad {
			t.Errorf("%s: error %v", tt.name, err)
		}
		got.All = nil
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
}

// FuzzParseTaskAttributes checks that task attributes of any shape never panic the parser and that
// whatever it extracts is well-formed.
func FuzzParseTaskAttributes(f *testing.F) {
	f.Add(`{"flexOperatorRecovery":{"role":"ping","conferenceSid":"` + confSID + `"},"isReconnect":true}`)
	f.Add(`{"conference":{"participants":{"customer":"` + agentLeg + `","worker":7}}}`)
	f.Add(`{"isReconnect":"true","conference":[]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		got, _ := ParseTaskAttributes(raw)
		if got.All == nil {
			t.Fatal("nil attributes")
		}
		if m := got.Marker; m.Role != "" && (!events.ValidSID(m.ConferenceSID, "CF") ||
			(m.DisconnectedCallSID != "" && !events.ValidSID(m.DisconnectedCallSID, "CA"))) {
			t.Fatalf("marker %+v", m)
		}
		for key, call := range got.Participants {
			if !events.ValidSID(call, "CA") {
				t.Fatalf("participant %q: call SID %q", key, call)
			}
		}
	})
}
