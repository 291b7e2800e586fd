package activity

import (
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

func TestDecideTable(t *testing.T) {
	extended := Reservation{Channel: "voice", Status: ResWrapping, Extended: true}
	chatOnly := func(s *v1alpha1.WorkerActivityPolicySpec) { s.Channels = []string{"chat"} }
	cases := []struct {
		name     string
		cfg      *Config
		w        *Worker
		rule     string
		activity string // "" = no change
		pending  *string
	}{
		{"pending reservation holds everything", testConfig(), worker(sidAvailable, "", res("voice", ResPending), res("chat", ResAccepted)), RulePendingReservation, "", nil},
		{"pending reservation while wrapping with a pending activity", testConfig(), worker(sidWrapup, "Break", res("voice", ResPending)), RulePendingReservation, "", nil},
		{"accepted from Available", testConfig(), worker(sidAvailable, "", res("voice", ResAccepted)), RuleAccepted, sidOnATask, nil},
		{"accepted already On a Task", testConfig(), worker(sidOnATask, "", res("voice", ResAccepted)), RuleAccepted, "", nil},
		{"accepted while in an unavailable activity stores it", testConfig(), worker(sidOffline, "", res("voice", ResAccepted)), RuleAccepted, sidOnATaskNo, strp("Offline")},
		{"accepted with an unavailable pending", testConfig(), worker(sidOnATask, "Break", res("voice", ResAccepted)), RuleAccepted, sidOnATaskNo, nil},
		{"accepted stays No ACD", testConfig(), worker(sidOnATaskNo, "", res("voice", ResAccepted)), RuleAccepted, "", nil},
		{"accepted from an available person's activity keeps it pending", testConfig(), worker(sidBackup, "", res("voice", ResAccepted)), RuleAccepted, sidOnATask, strp("Backup")},
		{"accepted beats wrapping", testConfig(), worker(sidWrapup, "", res("voice", ResWrapping), res("chat", ResAccepted)), RuleAccepted, sidOnATask, nil},
		{"accepted from Wrap Up, No ACD stays No ACD", testConfig(), worker(sidWrapupNo, "", res("chat", ResAccepted)), RuleAccepted, sidOnATaskNo, nil},
		{"wrapping from On a Task", testConfig(), worker(sidOnATask, "", res("voice", ResWrapping)), RuleWrapping, sidWrapup, nil},
		{"wrapping from No ACD", testConfig(), worker(sidOnATaskNo, "", res("voice", ResWrapping)), RuleWrapping, sidWrapupNo, nil},
		{"wrapping with Break pending", testConfig(), worker(sidOnATask, "Break", res("voice", ResWrapping)), RuleWrapping, sidWrapupNo, nil},
		{"extended wrap-up", testConfig(), worker(sidWrapup, "", extended), RuleExtendedWrapup, sidExtended, nil},
		{"extended among wrapping", testConfig(), worker(sidWrapup, "", res("chat", ResWrapping), extended), RuleExtendedWrapup, sidExtended, nil},
		{"pending activity applied and cleared", testConfig(), worker(sidWrapupNo, "Break", res("voice", ResEnded)), RulePendingActivity, sidBreak, strp("")},
		{"pending activity compared without case", testConfig(), worker(sidWrapup, "break"), RulePendingActivity, sidBreak, strp("")},
		{"pending activity already current is only cleared", testConfig(), worker(sidBreak, "Break"), RulePendingActivity, "", strp("")},
		{"unknown pending activity cleared, Available from system", testConfig(), worker(sidWrapup, "UNKNOWN"), RuleUnknownPending, sidAvailable, strp("")},
		{"unknown pending activity cleared, person's activity kept", testConfig(), worker(sidBreak, "Gone"), RuleUnknownPending, "", strp("")},
		{"idle in On a Task", testConfig(), worker(sidOnATask, ""), RuleIdle, sidAvailable, nil},
		{"idle in Extended Wrap Up", testConfig(), worker(sidExtended, ""), RuleIdle, sidAvailable, nil},
		{"idle in Break stays", testConfig(), worker(sidBreak, ""), RuleNothing, "", nil},
		{"idle Available stays", testConfig(), worker(sidAvailable, ""), RuleNothing, "", nil},
		{"other channels do not count", testConfig(chatOnly), worker(sidAvailable, "", res("voice", ResAccepted)), RuleNothing, "", nil},
		{"a pending reservation on another channel does not hold", testConfig(chatOnly), worker(sidAvailable, "", res("voice", ResPending), res("chat", ResAccepted)), RuleAccepted, sidOnATask, nil},
		{"counted channel accepted", testConfig(chatOnly), worker(sidOnATask, "", res("voice", ResAccepted), res("chat", ResWrapping)), RuleWrapping, sidWrapup, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.cfg, tc.w)
			if d.Rule != tc.rule {
				t.Errorf("rule %s, want %s", d.Rule, tc.rule)
			}
			if d.ActivitySID != tc.activity {
				t.Errorf("activity %q, want %q", d.ActivitySID, tc.activity)
			}
			if tc.pending == nil && d.SetPending {
				t.Errorf("pending set to %q, want untouched", d.Pending)
			}
			if tc.pending != nil && (!d.SetPending || d.Pending != *tc.pending) {
				t.Errorf("pending (%v, %q), want set to %q", d.SetPending, d.Pending, *tc.pending)
			}
			// Applying the decision and deciding again changes nothing: one write per decision.
			w := *tc.w
			apply(tc.cfg, &w, d)
			if again := Decide(tc.cfg, &w); again.Changes() {
				t.Errorf("second decision after applying %+v still changes: %+v", d, again)
			}
		})
	}
}

func strp(s string) *string { return &s }

// apply is what a successful write does to the state.
func apply(c *Config, w *Worker, d Decision) {
	if d.ActivitySID != "" {
		w.ActivitySID = d.ActivitySID
	}
	if d.SetPending {
		attrs, err := SetStringAttribute(w.Attributes, c.PendingAttribute, d.Pending, d.Pending == "")
		if err != nil {
			panic(err)
		}
		w.Attributes = attrs
		w.Pending = PendingFromAttributes(attrs, c.PendingAttribute)
	}
	w.Requested = nil
	if w.Version >= 0 {
		w.Version++
	}
}

func TestPersonChangedWhileBusy(t *testing.T) {
	c := testConfig()
	// Supervisor sets Break while the agent is on a call: Break becomes pending, On a Task, No
	// ACD meanwhile; once the call is done, Break.
	w := worker(sidOnATask, "", res("voice", ResAccepted))
	w.ActivitySID = sidBreak
	w.PersonChanged(c)
	d := Decide(c, w)
	if d.ActivitySID != sidOnATaskNo || !d.SetPending || d.Pending != "Break" {
		t.Fatalf("busy Break: %+v", d)
	}
	apply(c, w, d)
	w.Reservations["WRa"].Status = ResWrapping
	if d := Decide(c, w); d.ActivitySID != sidWrapupNo || d.SetPending {
		t.Fatalf("wrapping: %+v", d)
	}
	apply(c, w, Decide(c, w))
	w.Reservations["WRa"].Status = ResEnded
	if d := Decide(c, w); d.ActivitySID != sidBreak || !d.SetPending || d.Pending != "" {
		t.Fatalf("done: %+v", d)
	}

	// Picking Available while busy with Break pending clears the pending: ACD again.
	w = worker(sidOnATaskNo, "Break", res("voice", ResAccepted))
	w.ActivitySID = sidAvailable
	w.PersonChanged(c)
	if d := Decide(c, w); d.ActivitySID != sidOnATask || !d.SetPending || d.Pending != "" {
		t.Fatalf("busy Available: %+v", d)
	}

	// A person picking a system activity is corrected.
	w = worker(sidAvailable, "")
	w.ActivitySID = sidOnATask
	w.PersonChanged(c)
	if d := Decide(c, w); d.ActivitySID != sidAvailable {
		t.Fatalf("idle On a Task: %+v", d)
	}
	w = worker(sidOnATask, "", res("voice", ResAccepted))
	w.ActivitySID = sidWrapup
	w.PersonChanged(c)
	if d := Decide(c, w); d.ActivitySID != sidOnATask {
		t.Fatalf("busy Wrap Up: %+v", d)
	}

	// A change while not busy stands and clears a stale pending activity.
	w = worker(sidAvailable, "Break")
	w.ActivitySID = sidBackup
	w.PersonChanged(c)
	if d := Decide(c, w); d.ActivitySID != "" || !d.SetPending || d.Pending != "" {
		t.Fatalf("idle Backup: %+v", d)
	}
}

func TestPersonChangedAllow(t *testing.T) {
	c := testConfig(func(s *v1alpha1.WorkerActivityPolicySpec) { s.ActivityChangeWhileBusy = v1alpha1.BusyChangeAllow })
	w := worker(sidOnATask, "", res("voice", ResAccepted))
	w.ActivitySID = sidBreak
	w.PersonChanged(c)
	if d := Decide(c, w); d.Changes() || d.Rule != RuleAllowed {
		t.Fatalf("allowed change was overridden: %+v", d)
	}
	// The work changes: the engine takes over again.
	if !w.ApplyReservation("WRa", Reservation{TaskSID: "WTa", Channel: "voice", Status: ResWrapping}) {
		t.Fatal("wrap-up not applied")
	}
	if d := Decide(c, w); d.ActivitySID != sidWrapupNo {
		t.Fatalf("after the work changed: %+v", d)
	}
}

func TestApplyReservationMonotonic(t *testing.T) {
	w := worker(sidAvailable, "")
	if !w.ApplyReservation("WR1", Reservation{TaskSID: "WT1", Channel: "voice", Status: ResAccepted}) {
		t.Fatal("accepted not applied")
	}
	if w.ApplyReservation("WR1", Reservation{TaskSID: "WT1", Channel: "voice", Status: ResPending}) {
		t.Fatal("a late created event moved the reservation back")
	}
	if !w.ApplyReservation("WR1", Reservation{Status: ResEnded}) {
		t.Fatal("completion not applied")
	}
	if w.ApplyReservation("WR1", Reservation{Status: ResWrapping}) {
		t.Fatal("a late wrap-up revived an ended reservation")
	}
	if w.ApplyReservation("WR2", Reservation{Status: ResEnded}) {
		t.Fatal("an ended reservation first seen counts as a change")
	}
	w.Prune(func(string) bool { return false })
	if len(w.Reservations) != 0 {
		t.Fatalf("tombstones not pruned: %v", w.Reservations)
	}
}

func TestObserveWorkerVersions(t *testing.T) {
	c := testConfig()
	w := worker(sidOnATask, "") // version 1
	if w.ObserveWorker(c, 1, sidBreak, "", false) {
		t.Fatal("an event at the known version counted as a change")
	}
	if !w.ObserveWorker(c, 3, sidBreak, `{"pendingActivity":"Offline"}`, true) || w.Pending != "Offline" || w.Version != 3 {
		t.Fatalf("newer event not applied: %+v", w)
	}
	if w.ObserveWorker(c, 2, sidOnATask, `{}`, true) || w.ActivitySID != sidBreak || w.Pending != "Offline" {
		t.Fatalf("older event applied: %+v", w)
	}
}

func TestParseETag(t *testing.T) {
	for in, want := range map[string]int64{"3": 3, `"12"`: 12, `W/"7"`: 7, "": -1, "abc": -1} {
		if got := ParseETag(in); got != want {
			t.Errorf("ParseETag(%q) = %d, want %d", in, got, want)
		}
	}
}
