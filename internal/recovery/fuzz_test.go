package recovery

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// FuzzApplyConferenceEvent decodes the input into a sequence of callbacks over a few legs and checks
// that applying them never panics, that re-applying the whole sequence changes nothing, and that
// Decide never panics on the result. Sequence numbers are unique, as they are for real callbacks of
// one conference (the webhook server drops duplicates by sequence number).
func FuzzApplyConferenceEvent(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte{2, 1, 0, 0, 1, 1, 200, 3, 1})
	f.Add([]byte{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7})
	kinds := []string{events.ParticipantJoin, events.ParticipantLeave, events.ParticipantModify, events.ParticipantHold,
		events.ConferenceEnd, events.ConferenceStart}
	legs := []string{customerLeg, agentLeg, agent2Leg, superLeg, thirdLeg}
	labels := []string{"customer", "worker", "worker", "supervisor", "external", ""}
	reasons := []string{"participant_hung_up", "participant_updated_via_api", "conference_ended_via_api", ""}
	f.Fuzz(func(t *testing.T, data []byte) {
		var evs []events.ConferenceEvent
		used := map[int64]bool{}
		for i := 0; i+3 < len(data) && len(evs) < 64; i += 4 {
			a, b, c, d := data[i], data[i+1], data[i+2], data[i+3]
			seq := int64(d)
			if used[seq] {
				continue
			}
			used[seq] = true
			e := events.ConferenceEvent{ConferenceSID: confSID, SequenceNumber: seq,
				Timestamp: t0.Add(time.Duration(c) * time.Second), Event: kinds[int(a)%len(kinds)]}
			if e.IsParticipantEvent() {
				leg := int(b) % len(legs)
				e.CallSID = legs[leg]
				e.ParticipantLabel = labels[(leg+int(b>>4))%len(labels)]
				e.Coaching = b&0x80 != 0
				e.EndConferenceOnExit = a&0x40 != 0
				e.ReasonParticipantLeft = reasons[int(a>>3)%len(reasons)]
			}
			evs = append(evs, e)
		}
		marks := GracefulMarks{}
		if len(data) > 0 && data[0]&1 == 1 {
			marks[agent2Leg] = true
		}
		var st v1alpha1.ConferenceRecoveryStatus
		for _, e := range evs {
			ApplyConferenceEvent(&st, e, marks)
		}
		before := st.DeepCopy()
		for _, e := range evs {
			if ApplyConferenceEvent(&st, e, marks) {
				t.Fatalf("re-applying %+v reported a change", e)
			}
		}
		if diff := cmp.Diff(*before, st); diff != "" {
			t.Fatalf("re-applying changed status (-before +after):\n%s", diff)
		}
		d := Decide(st, policy(), t0.Add(time.Hour))
		if d.Disconnect != nil {
			st.Disconnect = d.Disconnect
			_ = Decide(st, policy(), t0.Add(time.Hour))
		}
		for _, e := range evs {
			_ = CorrectionForEvent(st, e, v1alpha1.RoleAgent)
		}
	})
}
