package recovery

import (
	"testing"
	"time"
)

func TestPickDisconnectedReservation(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ann, bob := sid("WK", 1), sid("WK", 2)
	rejected := Reservation{SID: sid("WR", 1), WorkerSID: bob, Status: "rejected", Updated: at(1)}
	annWrap := Reservation{SID: sid("WR", 2), WorkerSID: ann, WorkerName: "Ann", Status: "wrapping", Updated: at(5)}
	bobWrapLater := Reservation{SID: sid("WR", 3), WorkerSID: bob, WorkerName: "Bob", Status: "wrapping", Updated: at(9)}
	bobAccepted := Reservation{SID: sid("WR", 4), WorkerSID: bob, WorkerName: "Bob", Status: "accepted", Updated: at(20)}
	annCompleted := Reservation{SID: sid("WR", 5), WorkerSID: ann, Status: "completed", Updated: at(30)}
	tests := []struct {
		name   string
		rs     []Reservation
		worker string
		want   string
	}{
		{"the only connected one, worker unknown", []Reservation{rejected, annWrap}, "", annWrap.SID},
		{"the known worker's", []Reservation{annWrap, bobWrapLater}, ann, annWrap.SID},
		{"warm transfer, worker unknown: the last to wrap", []Reservation{annWrap, bobWrapLater}, "", bobWrapLater.SID},
		{"wrapping beats accepted", []Reservation{bobAccepted, annWrap}, "", annWrap.SID},
		{"accepted beats completed", []Reservation{annCompleted, bobAccepted}, "", bobAccepted.SID},
		{"a worker without a connected reservation", []Reservation{rejected, annWrap}, bob, ""},
		{"none", nil, "", ""},
	}
	for _, tt := range tests {
		got, ok := PickDisconnectedReservation(tt.rs, tt.worker)
		if ok != (tt.want != "") || got.SID != tt.want {
			t.Errorf("%s: got %q (%v), want %q", tt.name, got.SID, ok, tt.want)
		}
	}
}
