package twilio

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	ev "github.com/twilio/twilio-go/rest/events/v1"
)

// CreateSink implements Client.
func (c *restClient) CreateSink(ctx context.Context, s SinkCreate) (Sink, error) {
	if s.Description == "" {
		return Sink{}, errors.New("twilio: sink description is required")
	}
	if err := checkURL("sink destination", s.Destination); err != nil {
		return Sink{}, err
	}
	method := s.Method
	if method == "" {
		method = "POST"
	}
	if method != "POST" && method != "GET" {
		return Sink{}, fmt.Errorf("twilio: sink method %q must be POST or GET", method)
	}
	var conf any = map[string]any{
		"destination":  s.Destination,
		"method":       method,
		"batch_events": s.BatchEvents,
	}
	k := c.newCall(ctx, kindCreate)
	got, err := k.events().CreateSink(&ev.CreateSinkParams{
		Description:       &s.Description,
		SinkConfiguration: &conf,
		SinkType:          ptr("webhook"),
	})
	if err != nil {
		return Sink{}, k.err(err, "create sink %q", s.Description)
	}
	return sinkFrom(*got), nil
}

// ListSinks implements Client.
func (c *restClient) ListSinks(ctx context.Context) ([]Sink, error) {
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.events().ListSink(&ev.ListSinkParams{PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list sinks")
	}
	out := make([]Sink, 0, len(got))
	for _, s := range got {
		out = append(out, sinkFrom(s))
	}
	return out, nil
}

func sinkFrom(s ev.EventsV1Sink) Sink {
	out := Sink{
		SID:         deref(s.Sid),
		Description: deref(s.Description),
		SinkType:    deref(s.SinkType),
		Status:      deref(s.Status),
	}
	if s.SinkConfiguration == nil {
		return out
	}
	conf, _ := (*s.SinkConfiguration).(map[string]any)
	out.Destination, _ = conf["destination"].(string)
	out.Method, _ = conf["method"].(string)
	// Twilio has echoed batch_events both as a boolean and as a string.
	switch b := conf["batch_events"].(type) {
	case bool:
		out.BatchEvents = b
	case string:
		out.BatchEvents, _ = strconv.ParseBool(b)
	}
	return out
}

// DeleteSink implements Client.
func (c *restClient) DeleteSink(ctx context.Context, sinkSID string) error {
	if err := checkSID("sink SID", sinkSID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	err := k.err(k.events().DeleteSink(sinkSID), "delete sink %s", sinkSID)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// TestSink implements Client. The returned value is Twilio's result
// ("submitted"); the test ID itself reaches the sink inside the test event
// (data.test_id), and ValidateSink confirms it.
func (c *restClient) TestSink(ctx context.Context, sinkSID string) (result string, err error) {
	if err := checkSID("sink SID", sinkSID); err != nil {
		return "", err
	}
	// Repeating a test only sends another test event: harmless.
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.events().CreateSinkTest(sinkSID)
	if err != nil {
		return "", k.err(err, "test sink %s", sinkSID)
	}
	return deref(got.Result), nil
}

// ValidateSink implements Client.
func (c *restClient) ValidateSink(ctx context.Context, sinkSID, testID string) error {
	if err := checkSIDs("sink SID", sinkSID, "test ID", testID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.events().CreateSinkValidate(sinkSID, &ev.CreateSinkValidateParams{TestId: &testID})
	if err != nil {
		return k.err(err, "validate sink %s", sinkSID)
	}
	if r := deref(got.Result); !strings.EqualFold(r, "valid") {
		return fmt.Errorf("validate sink %s: Twilio answered %q", sinkSID, r)
	}
	return nil
}

// subscriptionSchemaVersion is the TaskRouter schema the webhook parser
// expects; version 2 only adds worker_time_in_previous_activity_ms.
const subscriptionSchemaVersion = 1

// CreateSubscription implements Client.
func (c *restClient) CreateSubscription(ctx context.Context, s SubscriptionCreate) (Subscription, error) {
	if err := checkSID("sink SID", s.SinkSID); err != nil {
		return Subscription{}, err
	}
	if s.Description == "" || len(s.Types) == 0 {
		return Subscription{}, errors.New("twilio: subscription description and types are required")
	}
	types := make([]any, 0, len(s.Types))
	for _, t := range s.Types {
		if t == "" {
			return Subscription{}, errors.New("twilio: subscription event type must not be empty")
		}
		types = append(types, map[string]any{"type": t, "schema_version": subscriptionSchemaVersion})
	}
	k := c.newCall(ctx, kindCreate)
	got, err := k.events().CreateSubscription(&ev.CreateSubscriptionParams{
		Description: &s.Description,
		SinkSid:     &s.SinkSID,
		Types:       &types,
	})
	if err != nil {
		return Subscription{}, k.err(err, "create subscription %q", s.Description)
	}
	return Subscription{
		SID:         deref(got.Sid),
		SinkSID:     deref(got.SinkSid),
		Description: deref(got.Description),
		Types:       append([]string(nil), s.Types...),
	}, nil
}

// ListSubscriptions implements Client. The subscription resource does not
// carry its types, so each subscription's events are listed too.
func (c *restClient) ListSubscriptions(ctx context.Context, sinkSID string) ([]Subscription, error) {
	if sinkSID != "" {
		if err := checkSID("sink SID", sinkSID); err != nil {
			return nil, err
		}
	}
	k := c.newCall(ctx, kindIdempotent)
	svc := k.events()
	got, err := svc.ListSubscription(&ev.ListSubscriptionParams{SinkSid: nonEmpty(sinkSID), PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list subscriptions")
	}
	out := make([]Subscription, 0, len(got))
	for _, s := range got {
		sub := Subscription{SID: deref(s.Sid), SinkSID: deref(s.SinkSid), Description: deref(s.Description)}
		events, err := svc.ListSubscribedEvent(sub.SID, &ev.ListSubscribedEventParams{PageSize: ptr(listPageSize)})
		if err != nil {
			return nil, k.err(err, "list event types of subscription %s", sub.SID)
		}
		for _, e := range events {
			sub.Types = append(sub.Types, deref(e.Type))
		}
		out = append(out, sub)
	}
	return out, nil
}

// DeleteSubscription implements Client.
func (c *restClient) DeleteSubscription(ctx context.Context, subscriptionSID string) error {
	if err := checkSID("subscription SID", subscriptionSID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	err := k.err(k.events().DeleteSubscription(subscriptionSID), "delete subscription %s", subscriptionSID)
	if IsNotFound(err) {
		return nil
	}
	return err
}
