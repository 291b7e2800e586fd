package twilio

import (
	"context"
	"errors"

	ev "github.com/twilio/twilio-go/rest/events/v1"
)

// Deletes and additions the policy controllers need to undo what it set up
// and to complete a subscription it adopted.

// DeleteWorkflow implements Client.
func (c *restClient) DeleteWorkflow(ctx context.Context, workspaceSID, workflowSID string) error {
	if err := checkSIDs("workspace SID", workspaceSID, "workflow SID", workflowSID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	err := k.err(k.taskrouter().DeleteWorkflow(workspaceSID, workflowSID), "delete workflow %s", workflowSID)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// DeleteTaskQueue implements Client.
func (c *restClient) DeleteTaskQueue(ctx context.Context, workspaceSID, taskQueueSID string) error {
	if err := checkSIDs("workspace SID", workspaceSID, "task queue SID", taskQueueSID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	err := k.err(k.taskrouter().DeleteTaskQueue(workspaceSID, taskQueueSID), "delete task queue %s", taskQueueSID)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// DeleteActivity implements Client.
func (c *restClient) DeleteActivity(ctx context.Context, workspaceSID, activitySID string) error {
	if err := checkSIDs("workspace SID", workspaceSID, "activity SID", activitySID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	err := k.err(k.taskrouter().DeleteActivity(workspaceSID, activitySID), "delete activity %s", activitySID)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// AddSubscribedEvent implements Client. Creating a subscribed event that
// already exists only sets its schema version again, so the call is safe to
// repeat.
func (c *restClient) AddSubscribedEvent(ctx context.Context, subscriptionSID, eventType string) error {
	if err := checkSID("subscription SID", subscriptionSID); err != nil {
		return err
	}
	if eventType == "" {
		return errors.New("twilio: subscribed event type must not be empty")
	}
	k := c.newCall(ctx, kindIdempotent)
	_, err := k.events().CreateSubscribedEvent(subscriptionSID, &ev.CreateSubscribedEventParams{
		Type:          &eventType,
		SchemaVersion: ptr(subscriptionSchemaVersion),
	})
	return k.err(err, "add %s to subscription %s", eventType, subscriptionSID)
}
