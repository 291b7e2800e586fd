package twiliosim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// TestActivityEvents: creating, renaming and deleting an activity publish activity.created,
// activity.updated and activity.deleted with the activity's SID, name and availability, as
// TaskRouter does; the activity reads back by SID until it is deleted.
func TestActivityEvents(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}))
	rc := newReceiver(t, s.AuthToken(), nil)
	subscribe(t, s, c, rc, true, "activity.created", "activity.updated", "activity.deleted")
	lunch, err := c.CreateActivity(ctxT(t), cc.WorkspaceSID, "Lunch", false)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"FriendlyName": {"Meal"}}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/Workspaces/"+cc.WorkspaceSID+"/Activities/"+lunch.SID, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.AccountSID(), s.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rename: %d", resp.StatusCode)
	}
	got, err := c.FetchActivity(ctxT(t), cc.WorkspaceSID, lunch.SID)
	if err != nil || got.FriendlyName != "Meal" || got.Available {
		t.Fatalf("fetch after rename: %+v, %v", got, err)
	}
	if err := c.DeleteActivity(ctxT(t), cc.WorkspaceSID, lunch.SID); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, s)
	_, events, bad, _ := rc.snapshot()
	if bad != 0 {
		t.Fatalf("%d deliveries failed the signature check", bad)
	}
	if diff := cmp.Diff([]string{"activity.created", "activity.updated", "activity.deleted"}, eventTypes(events)); diff != "" {
		t.Fatalf("event types (-want +got):\n%s", diff)
	}
	for i, name := range []string{"Lunch", "Meal", "Meal"} {
		p := payloadOf(events[i])
		if p["activity_sid"] != lunch.SID || p["activity_name"] != name || p["activity_available"] != false ||
			p["resource_type"] != "activity" || p["resource_sid"] != lunch.SID {
			t.Errorf("%v payload %v", events[i]["type"], p)
		}
	}
}
