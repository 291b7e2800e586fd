package main

import (
	"context"
	"fmt"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// activityStory shows worker activity sync: an agent's activity following her work, and a
// supervisor's change while she is busy held until her task is done.
func activityStory(ctx context.Context, env *scenario.Env, kubectl, kubeconfig string) error {
	step("Worker activity: applying a WorkerActivityPolicy over a workspace with agent carol")
	c, err := env.NewActivityCentre(ctx, scenario.ActivityCentreOptions{Name: "demo-activity", Agents: []string{"carol"}})
	if err != nil {
		return err
	}
	if _, err := c.WaitReady(ctx); err != nil {
		return err
	}
	show(kubectl, kubeconfig, c.Namespace, "workeractivitypolicies")
	activity := func(what string) {
		w := c.WorkerState("carol")
		pending, _ := w.Attributes["pendingActivity"].(string)
		if pending == "" {
			pending = "-"
		}
		fmt.Printf("    %-52s activity %-20q pending %s\n", what, w.Activity, pending)
	}
	wait := func(act, pending string) error {
		_, err := c.WaitActivity(ctx, "carol", act, pending)
		return err
	}
	activity("carol waits for work")
	r, err := c.Offer(ctx, "chat", "carol")
	if err != nil {
		return err
	}
	if err := env.Sim.Accept(r.SID); err != nil {
		return err
	}
	if err := wait("On a Task", ""); err != nil {
		return err
	}
	activity("carol accepts a chat")
	step("A supervisor sets carol to Break while she is busy (her browser is closed)")
	if err := env.Sim.SetWorkerActivity(c.Worker("carol"), "Break"); err != nil {
		return err
	}
	if err := wait("On a Task, No ACD", "Break"); err != nil {
		return err
	}
	activity("the operator holds Break as pending, no new work")
	if err := env.Sim.Wrapup(r.SID); err != nil {
		return err
	}
	if err := wait("Wrap Up, No ACD", "Break"); err != nil {
		return err
	}
	activity("carol wraps up")
	if err := env.Sim.Complete(r.SID); err != nil {
		return err
	}
	if err := wait("Break", ""); err != nil {
		return err
	}
	activity("carol completes: the deferred Break is applied")
	// The policy's status is refreshed from the engine every few seconds.
	_ = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		var p v1alpha1.WorkerActivityPolicy
		if err := env.Client.Get(ctx, c.Key(), &p); err != nil {
			return false, err
		}
		return p.Status.Enforcements >= 4, nil
	})
	show(kubectl, kubeconfig, c.Namespace, "workeractivitypolicies")
	return nil
}
