// Command twiliosim runs the Twilio simulator standalone, so a person can
// try the operator without a Twilio account. It prints the base URL, the
// account SID and the auth token to give the operator (BaseURL in the
// credentials Secret's configuration), builds a contact centre from a JSON
// spec or a small demo one, and serves the control API under /sim/ (basic
// auth with the same credentials), for example:
//
//	go run ./hack/twiliosim -demo
//	curl -u "$SID:$TOKEN" -d '{"from":"+15550001111","workflow_sid":"WW…"}' http://127.0.0.1:8099/sim/calls
//	curl -u "$SID:$TOKEN" http://127.0.0.1:8099/sim/state
//
// Time runs on the wall clock; POST /sim/advance {"duration":"15s"} skips
// ahead.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "twiliosim:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8099", "listen address")
	publicURL := flag.String("public-url", "", "base URL to report when the listener is reached through another address")
	accountSID := flag.String("account-sid", "", "account SID (AC…); generated when empty")
	authToken := flag.String("auth-token", "", "auth token (letters and digits); generated when empty")
	rateLimit := flag.Float64("rate", 0, "REST requests per second before 429s; 0 means unlimited")
	specPath := flag.String("spec", "", "JSON file with a contact centre (twiliosim.ContactCentreSpec) to build")
	demo := flag.Bool("demo", false, "build a small demo contact centre (ignored with -spec)")
	confCallback := flag.String("conference-callback", "", "conference status callback URL the simulated Flex attaches at accept")
	flag.Parse()

	for _, cred := range []string{*accountSID, *authToken} {
		for _, r := range cred {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return errors.New("-account-sid and -auth-token may only hold letters and digits (twilio-go refuses others)")
			}
		}
	}
	var spec *twiliosim.ContactCentreSpec
	switch {
	case *specPath != "":
		raw, err := os.ReadFile(*specPath)
		if err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
		spec = &twiliosim.ContactCentreSpec{}
		if err := json.Unmarshal(raw, spec); err != nil {
			return fmt.Errorf("spec %s: %w", *specPath, err)
		}
	case *demo:
		spec = demoSpec()
	}

	sim := twiliosim.New(twiliosim.Options{
		AccountSID: *accountSID, AuthToken: *authToken, Clock: twiliosim.WallClock,
		RateLimit: *rateLimit, Addr: *addr, PublicURL: *publicURL,
	})
	if err := sim.Start(); err != nil {
		return err
	}
	defer func() { _ = sim.Close() }()
	if *confCallback != "" {
		sim.SetConferenceCallback(*confCallback)
	}
	fmt.Printf("base URL:    %s\naccount SID: %s\nauth token:  %s\n", sim.URL(), sim.AccountSID(), sim.AuthToken())
	if spec != nil {
		cc, err := sim.BuildContactCentre(*spec)
		if err != nil {
			return err
		}
		out, err := json.MarshalIndent(cc, "", "  ")
		if err != nil {
			return fmt.Errorf("print contact centre: %w", err)
		}
		fmt.Printf("contact centre:\n%s\n", out)
	}
	fmt.Println("control API under /sim/ (state, calls, reservations/{sid}/accept, workers/{sid}/refresh, advance, faults…); Ctrl-C stops")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// demoSpec is two agents, one queue and a voice workflow with the
// recovery's "Direct to an Agent" filter.
func demoSpec() *twiliosim.ContactCentreSpec {
	return &twiliosim.ContactCentreSpec{
		Name: "Flex Task Assignment",
		Workers: []twiliosim.WorkerSpec{
			{Name: "alice", Attributes: map[string]any{"contact_uri": "client:alice", "skills": []string{"support"}}},
			{Name: "bob", Attributes: map[string]any{"contact_uri": "client:bob", "skills": []string{"support", "sales"}}},
		},
		Queues: []twiliosim.QueueSpec{{Name: "Everyone", TargetWorkers: "1==1"}},
		Workflows: []twiliosim.WorkflowSpec{{
			Name: "Assign to Anyone",
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
