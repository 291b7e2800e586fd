package twiliosim_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// TestDeleteAssignedTask: deleting a task whose reservation was accepted sends task.deleted and no
// reservation event (TaskRouter cancels only pending reservations), and frees the worker: the next
// call is offered to her.
func TestDeleteAssignedTask(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}))
	call, err := s.PlaceCall("+15550001111", cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Accept(onlyPending(t, c, cc.WorkspaceSID, call.TaskSID).SID); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, s.AuthToken(), nil)
	subscribe(t, s, c, rc, true, "reservation.canceled", "reservation.completed", "task.deleted")
	req, _ := http.NewRequest(http.MethodDelete, s.URL()+"/v1/Workspaces/"+cc.WorkspaceSID+"/Tasks/"+call.TaskSID, nil)
	req.SetBasicAuth(s.AccountSID(), s.AuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	waitDelivered(t, s)
	_, events, _, _ := rc.snapshot()
	if diff := cmp.Diff([]string{"task.deleted"}, eventTypes(events)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	next, err := s.PlaceCall("+15550002222", cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := onlyPending(t, c, cc.WorkspaceSID, next.TaskSID); r.WorkerSID != cc.Workers["ann"] {
		t.Fatalf("the next call is offered to %s", r.WorkerSID)
	}
}
