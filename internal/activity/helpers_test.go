package activity

import (
	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// Activity SIDs of the test workspace.
const (
	sidAvailable   = "WAavailable"
	sidOnATask     = "WAonatask"
	sidOnATaskNo   = "WAonatasknoacd"
	sidWrapup      = "WAwrapup"
	sidWrapupNo    = "WAwrapupnoacd"
	sidExtended    = "WAextended"
	sidOffline     = "WAoffline"
	sidBreak       = "WAbreak"
	sidUnavailable = "WAunavailable"
	sidBackup      = "WAbackup"
)

func testActivities() []Activity {
	return []Activity{
		{SID: sidAvailable, Name: "Available", Available: true},
		{SID: sidOnATask, Name: "On a Task", Available: true},
		{SID: sidOnATaskNo, Name: "On a Task, No ACD"},
		{SID: sidWrapup, Name: "Wrap Up", Available: true},
		{SID: sidWrapupNo, Name: "Wrap Up, No ACD"},
		{SID: sidExtended, Name: "Extended Wrap Up"},
		{SID: sidOffline, Name: "Offline"},
		{SID: sidBreak, Name: "Break"},
		{SID: sidUnavailable, Name: "Unavailable"},
		{SID: sidBackup, Name: "Backup", Available: true},
	}
}

func testConfig(mut ...func(*v1alpha1.WorkerActivityPolicySpec)) *Config {
	spec := v1alpha1.WorkerActivityPolicySpec{}
	for _, m := range mut {
		m(&spec)
	}
	c, ok := NewConfig(spec, v1alpha1.ResolvedActivities{
		Available: sidAvailable, OnATask: sidOnATask, OnATaskNoAcd: sidOnATaskNo,
		Wrapup: sidWrapup, WrapupNoAcd: sidWrapupNo, ExtendedWrapup: sidExtended,
	}, testActivities())
	if !ok {
		panic("test activities do not resolve")
	}
	return c
}

// worker builds a worker in activity with the given reservations ("voice:accepted", …) and
// pending attribute.
func worker(activity, pending string, res ...Reservation) *Worker {
	attrs := `{"skills":["support"]}`
	if pending != "" {
		attrs = `{"skills":["support"],"pendingActivity":"` + pending + `"}`
	}
	w := NewWorker("WKtest", "alice", activity, "1", attrs, DefaultPendingActivityAttribute)
	for i, r := range res {
		if r.TaskSID == "" {
			r.TaskSID = "WT" + string(rune('a'+i))
		}
		w.Reservations["WR"+string(rune('a'+i))] = &r
	}
	return w
}

func res(channel string, st ResStatus) Reservation { return Reservation{Channel: channel, Status: st} }
