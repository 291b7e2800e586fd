package controllers

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

func TestPlanRetention(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-ago)} }
	rec := func(name string, phase v1alpha1.RecoveryPhase, finished *metav1.Time) v1alpha1.ConferenceRecovery {
		return v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.ConferenceRecoveryStatus{Phase: phase, FinishedAt: finished}}
	}
	deleting := rec("deleting", v1alpha1.PhaseRecovered, at(time.Hour))
	deleting.DeletionTimestamp = at(0)
	cases := []struct {
		name        string
		items       []v1alpha1.ConferenceRecovery
		wantCounts  v1alpha1.RecoveryCounts
		wantExpired []string
		wantNext    time.Duration
	}{
		{name: "none"},
		{
			name: "every phase, nothing finished long ago",
			items: []v1alpha1.ConferenceRecovery{
				rec("a", "", nil), rec("b", v1alpha1.PhaseMonitoring, nil), rec("c", v1alpha1.PhasePinging, nil),
				rec("d", v1alpha1.PhaseRecovered, at(time.Minute)), rec("e", v1alpha1.PhaseAbandoned, at(2*time.Minute)),
				rec("f", v1alpha1.PhaseFailed, at(0)), rec("g", v1alpha1.PhaseEnded, at(3*time.Minute)),
			},
			wantCounts: v1alpha1.RecoveryCounts{InProgress: 3, Recovered: 1, Abandoned: 1, Failed: 1, Ended: 1},
			wantNext:   7*time.Minute + time.Second, // g: finished 3 min ago, retention 10 min
		},
		{
			name: "expired ones are deleted and not counted",
			items: []v1alpha1.ConferenceRecovery{
				rec("old", v1alpha1.PhaseRecovered, at(11*time.Minute)), rec("due", v1alpha1.PhaseFailed, at(10*time.Minute)),
				rec("live", v1alpha1.PhaseReconnecting, nil), deleting,
			},
			wantCounts:  v1alpha1.RecoveryCounts{InProgress: 1, Failed: 1},
			wantExpired: []string{"old"},
			wantNext:    time.Second, // "due" expires only strictly after finishedAt + retention
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := planRetention(tc.items, 10*time.Minute, now)
			if plan.counts != tc.wantCounts {
				t.Errorf("counts %+v, want %+v", plan.counts, tc.wantCounts)
			}
			var expired []string
			for _, r := range plan.expired {
				expired = append(expired, r.Name)
			}
			if len(expired) != len(tc.wantExpired) || (len(expired) > 0 && expired[0] != tc.wantExpired[0]) {
				t.Errorf("expired %v, want %v", expired, tc.wantExpired)
			}
			if plan.nextExpiry != tc.wantNext {
				t.Errorf("next expiry in %s, want %s", plan.nextExpiry, tc.wantNext)
			}
		})
	}
}

func TestDirectToAgentQueue(t *testing.T) {
	cases := []struct {
		filter    string
		wantQueue string
		want      bool
	}{
		{directToAgentFilter("WQ1"), "WQ1", true},
		{`{"expression":" targetWorkerSid  !=  NULL ","targets":[{"queue":"WQ0"},{"queue":"WQ2","known_worker_sid":"task.targetWorkerSid"}]}`, "WQ2", true},
		{`{"filter_friendly_name":"Direct to an Agent","expression":"targetWorkerSid != null","targets":[{"queue":"WQ1"}]}`, "", false},
		{`{"expression":"1==1","targets":[{"queue":"WQ1","known_worker_sid":"task.targetWorkerSid"}]}`, "", false},
		{`{"expression":"targetWorkerSid != null","targets":[{"queue":"WQ1","known_worker_sid":"task.agent"}]}`, "", false},
		{`{"expression":7}`, "", false},
	}
	for _, tc := range cases {
		q, ok := directToAgentQueue(tc.filter)
		if q != tc.wantQueue || ok != tc.want {
			t.Errorf("%s: (%q, %v), want (%q, %v)", tc.filter, q, ok, tc.wantQueue, tc.want)
		}
	}
}

func TestPingWorkflowConfiguration(t *testing.T) {
	got := pingWorkflowConfiguration("WQ9")
	want := `{"task_routing":{"filters":[{"filter_friendly_name":"Ping Disconnected Agent","expression":"disconnectedWorkerSid != null","targets":[{"queue":"WQ9","known_worker_sid":"task.disconnectedWorkerSid"}]}],"default_filter":{"queue":"WQ9"}}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(directToAgentFilter("WQ9"))) {
		t.Fatal("the filter is not JSON")
	}
}
