// Command demo plays the operator's main job on one machine: it starts a real control plane (built
// by hack/setup-envtest.sh), the Twilio simulator and the operator exactly as main.go builds it,
// applies a ConferenceRecoveryPolicy, plays a call in which the agent's browser page refreshes, and
// shows the ConferenceRecovery table as the call moves through the recovery to Recovered.
// Everything it starts is stopped when it ends. Run it with `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

func main() {
	crds := flag.String("crds", "config/crd/bases", "directory of the CustomResourceDefinitions")
	flag.Parse()
	if err := run(*crds); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(crds string) error {
	ctx := context.Background()
	step("Starting the control plane (kube-apiserver + etcd), the Twilio simulator and the operator")
	env, err := scenario.Start(scenario.Options{
		CRDDir: crds,
		Sim:    twiliosim.Options{Clock: twiliosim.WallClock},
	})
	if err != nil {
		return err
	}
	defer func() {
		step("Cleaning up: stopping the operator, the simulator and the control plane")
		env.Stop()
	}()
	tmp, err := os.MkdirTemp("", "flex-operator-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	kubeconfig, err := env.WriteKubeconfig(tmp)
	if err != nil {
		return err
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")

	step("Applying a credentials Secret and a ConferenceRecoveryPolicy protecting the voice workflow")
	c, err := env.NewCentre(ctx, scenario.CentreOptions{Name: "demo", Agents: []string{"alice"}})
	if err != nil {
		return err
	}
	policy, err := c.WaitPolicyReady(ctx)
	if err != nil {
		return err
	}
	show(kubectl, kubeconfig, c.Namespace, "conferencerecoverypolicies")
	fmt.Printf("    Recovery Ping workflow %s, Event Streams sink %s -> %s\n",
		policy.Status.PingWorkflowSID, policy.Status.SinkSID, policy.Status.WebhookURL)

	step("Watching the namespace's ConferenceRecovery objects; a customer calls and agent alice accepts")
	watch := startWatch(env, c.Namespace)
	defer watch()
	call, err := c.Answer(ctx, "alice")
	if err != nil {
		return err
	}
	fmt.Printf("    task %s, conference %s\n", call.TaskSID, call.ConferenceSID)
	if _, err := c.WaitRecovery(ctx, call.ConferenceSID, "Flex's endConferenceOnExit reset corrected", func(*v1alpha1.ConferenceRecovery) bool {
		leg, ok := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
		return ok && !leg.EndConferenceOnExit
	}); err != nil {
		return err
	}
	fmt.Println("    Flex set endConferenceOnExit=true on alice's leg; the operator set it back to false")

	step("alice's browser page refreshes: her leg drops out of the call, the customer stays")
	if err := env.Sim.RefreshPage(c.Worker("alice")); err != nil {
		return err
	}
	ping, err := c.WaitReservation(ctx, func(t twiliosim.TaskState, r twiliosim.ReservationState) bool {
		return scenario.IsPingTask(t) && r.WorkerSID == c.Worker("alice") && r.Status == "pending"
	})
	if err != nil {
		return fmt.Errorf("no Recovery Ping for alice: %w", err)
	}
	step("Flex reloads and auto-accepts the Recovery Ping %s", ping.TaskSID)
	if err := env.Sim.Accept(ping.SID); err != nil {
		return err
	}
	reconnect, err := c.WaitReservation(ctx, func(t twiliosim.TaskState, r twiliosim.ReservationState) bool {
		return scenario.IsReconnectTask(t) && r.WorkerSID == c.Worker("alice") && r.Status == "pending"
	})
	if err != nil {
		return fmt.Errorf("no reconnect task for alice: %w", err)
	}
	step("The customer is routed back to alice (reconnect task %s); Flex auto-accepts it", reconnect.TaskSID)
	if err := env.Sim.Accept(reconnect.SID); err != nil {
		return err
	}
	rec, err := c.WaitPhase(ctx, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if err != nil {
		return err
	}
	watch()
	step("Recovered")
	show(kubectl, kubeconfig, c.Namespace, "conferencerecoveries")
	if t := rec.Status.Timings.CustomerWithoutAgent; t != nil {
		fmt.Printf("    The customer was without an agent for %s", t.Duration.Round(time.Millisecond))
	}
	if t := rec.Status.Timings.DetectionToPing; t != nil {
		fmt.Printf("; detection to ping took %s", t.Duration.Round(time.Millisecond))
	}
	fmt.Println()
	for _, a := range rec.Status.Actions {
		fmt.Printf("    %-40s %-8s %s\n", a.Name, a.State, a.SID)
	}
	return activityStory(ctx, env, kubectl, kubeconfig)
}

// show prints `kubectl get <resource>` in the namespace.
func show(kubectl, kubeconfig, namespace, resource string) {
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "-n", namespace, "get", resource).CombinedOutput()
	if err != nil {
		fmt.Printf("    kubectl: %v\n", err)
	}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("    " + line)
	}
}

// startWatch prints a row of the `kubectl get conferencerecoveries` table each time a recovery in
// the namespace changes phase (kubectl --watch would print every status write); the returned
// function stops it (safe to call twice).
func startWatch(env *scenario.Env, namespace string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fmt.Printf("    %-36s %-13s %-36s %-36s %s\n", "NAME", "PHASE", "TASK", "WORKER", "CUSTOMER-WAIT")
		seen := map[string]v1alpha1.RecoveryPhase{}
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var list v1alpha1.ConferenceRecoveryList
			if err := env.Client.List(ctx, &list, client.InNamespace(namespace)); err == nil {
				for _, r := range list.Items {
					if r.Status.Phase == "" || seen[r.Name] == r.Status.Phase {
						continue
					}
					seen[r.Name] = r.Status.Phase
					worker, wait := "", ""
					if d := r.Status.Disconnect; d != nil {
						worker = d.WorkerSID
					}
					if w := r.Status.Timings.CustomerWithoutAgent; w != nil {
						wait = w.Duration.Round(time.Millisecond).String()
					}
					fmt.Printf("    %-36s %-13s %-36s %-36s %s\n", r.Name, r.Status.Phase, r.Spec.TaskSID, worker, wait)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
}
