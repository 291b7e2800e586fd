package twiliosim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// start runs a simulator and returns it with an operator client pointed at
// it. The client's own rate limit is lifted so the simulator's is the one
// that matters.
func start(t *testing.T, opts twiliosim.Options) (*twiliosim.Sim, twilio.Client) {
	t.Helper()
	s := twiliosim.New(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close simulator: %v", err)
		}
	})
	c, err := twilio.New(twilio.Config{
		AccountSID: s.AccountSID(), AuthToken: s.AuthToken(), BaseURL: s.URL(),
		Rate: 10000, Burst: 10000, MinBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return s, c
}

func build(t *testing.T, s *twiliosim.Sim, spec twiliosim.ContactCentreSpec) *twiliosim.ContactCentre {
	t.Helper()
	cc, err := s.BuildContactCentre(spec)
	if err != nil {
		t.Fatalf("build contact centre: %v", err)
	}
	return cc
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// voiceCentre is a one-queue contact centre with a voice workflow that has
// the recovery's "Direct to an Agent" filter.
func voiceCentre(workers ...twiliosim.WorkerSpec) twiliosim.ContactCentreSpec {
	return twiliosim.ContactCentreSpec{
		Name:    "Voice",
		Workers: workers,
		Queues:  []twiliosim.QueueSpec{{Name: "Everyone", TargetWorkers: "1==1"}},
		Workflows: []twiliosim.WorkflowSpec{{
			Name: "Voice",
			Configuration: map[string]any{"task_routing": map[string]any{
				"filters": []any{map[string]any{
					"filter_friendly_name": "Direct to an Agent",
					"expression":           "targetWorkerSid != null",
					"targets":              []any{map[string]any{"queue": "Everyone", "known_worker_sid": "task.targetWorkerSid"}},
				}},
				"default_filter": map[string]any{"queue": "Everyone"},
			}},
		}},
	}
}

// reservationsOf lists a task's reservations through the operator client.
func reservationsOf(t *testing.T, c twilio.Client, ws, task string) []twilio.Reservation {
	t.Helper()
	rs, err := c.ListReservations(ctxT(t), ws, twilio.ReservationFilter{TaskSID: task})
	if err != nil {
		t.Fatalf("list reservations of %s: %v", task, err)
	}
	return rs
}

// onlyPending returns the task's single pending reservation or fails.
func onlyPending(t *testing.T, c twilio.Client, ws, task string) twilio.Reservation {
	t.Helper()
	var pending []twilio.Reservation
	for _, r := range reservationsOf(t, c, ws, task) {
		if r.Status == "pending" {
			pending = append(pending, r)
		}
	}
	if len(pending) != 1 {
		t.Fatalf("task %s has %d pending reservations, want 1: %+v", task, len(pending), pending)
	}
	return pending[0]
}

// receiver is a webhook endpoint that checks every request's signature with
// twilio-go's RequestValidator, both with the right token (must pass) and a
// wrong one (must fail), and records what it accepted.
type receiver struct {
	srv    *httptest.Server
	token  string
	answer func(hit int) int

	mu          sync.Mutex
	hits        int
	badSig      int
	wrongPassed int
	forms       []url.Values
	events      []map[string]any
	bodies      []string
}

func newReceiver(t *testing.T, token string, answer func(hit int) int) *receiver {
	t.Helper()
	rc := &receiver{token: token, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url(path string) string { return rc.srv.URL + path }

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	full := "http://" + r.Host + r.URL.RequestURI()
	sig := r.Header.Get("X-Twilio-Signature")
	good := client.NewRequestValidator(rc.token)
	wrong := client.NewRequestValidator(rc.token + "x")
	var valid, wrongOK bool
	var form url.Values
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		valid = good.ValidateBody(full, body, sig)
		wrongOK = wrong.ValidateBody(full, body, sig)
	} else {
		form, _ = url.ParseQuery(string(body))
		params := map[string]string{}
		for k, v := range form {
			params[k] = v[0]
		}
		valid = good.Validate(full, params, sig)
		wrongOK = wrong.Validate(full, params, sig)
	}
	rc.mu.Lock()
	rc.hits++
	hit := rc.hits
	if wrongOK {
		rc.wrongPassed++
	}
	if !valid {
		rc.badSig++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
		return
	}
	status := http.StatusOK
	if rc.answer != nil {
		status = rc.answer(hit)
	}
	rc.bodies = append(rc.bodies, string(body))
	if status < 300 {
		if form != nil {
			rc.forms = append(rc.forms, form)
		} else {
			var batch []map[string]any
			if err := json.Unmarshal(body, &batch); err != nil {
				var one map[string]any
				if json.Unmarshal(body, &one) == nil {
					batch = []map[string]any{one}
				}
			}
			rc.events = append(rc.events, batch...)
		}
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) snapshot() (forms []url.Values, events []map[string]any, badSig, wrongPassed int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]url.Values(nil), rc.forms...), append([]map[string]any(nil), rc.events...), rc.badSig, rc.wrongPassed
}

// callbackSummary renders conference callbacks as "event label extra".
func callbackSummary(forms []url.Values) []string {
	var out []string
	for _, f := range forms {
		line := f.Get("StatusCallbackEvent")
		if l := f.Get("ParticipantLabel"); l != "" {
			line += " " + l
		}
		switch f.Get("StatusCallbackEvent") {
		case "participant-modify":
			line += " eceo=" + f.Get("EndConferenceOnExit")
		case "participant-leave":
			line += " " + f.Get("ReasonParticipantLeft") + "/" + f.Get("ParticipantCallStatus")
		case "conference-end":
			line += " " + f.Get("ReasonConferenceEnded")
		}
		out = append(out, line)
	}
	return out
}

func waitDelivered(t *testing.T, s *twiliosim.Sim) {
	t.Helper()
	if err := s.WaitDeliveries(ctxT(t)); err != nil {
		t.Fatalf("%v\n%s", err, s.Dump())
	}
}

// payloadOf returns a CloudEvent's data.payload.
func payloadOf(ev map[string]any) map[string]any {
	data, _ := ev["data"].(map[string]any)
	p, _ := data["payload"].(map[string]any)
	return p
}
