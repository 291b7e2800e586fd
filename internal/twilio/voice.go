package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	api "github.com/twilio/twilio-go/rest/api/v2010"
)

// FetchCall implements Client.
func (c *restClient) FetchCall(ctx context.Context, callSID string) (Call, error) {
	if err := checkSID("call SID", callSID); err != nil {
		return Call{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.api().FetchCall(callSID, nil)
	if err != nil {
		return Call{}, k.err(err, "fetch call %s", callSID)
	}
	return callFrom(*got), nil
}

// ListCalls implements Client.
func (c *restClient) ListCalls(ctx context.Context, status string) ([]Call, error) {
	switch status {
	case "", "queued", "ringing", "in-progress", "canceled", "completed", "failed", "busy", "no-answer":
	default:
		return nil, fmt.Errorf("twilio: call status %q is not one Twilio knows", status)
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.api().ListCall(&api.ListCallParams{Status: nonEmpty(status), PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list calls")
	}
	out := make([]Call, 0, len(got))
	for _, call := range got {
		out = append(out, callFrom(call))
	}
	return out, nil
}

// RedirectCall implements Client.
func (c *restClient) RedirectCall(ctx context.Context, callSID, twiml string) (Call, error) {
	if err := checkSID("call SID", callSID); err != nil {
		return Call{}, err
	}
	if twiml == "" {
		return Call{}, errors.New("twilio: TwiML for the redirect is required")
	}
	// The new TwiML usually enqueues a task: sent twice, the customer could
	// be enqueued twice. So this is retried only like a create, and an
	// unknown outcome is reported as such.
	k := c.newCall(ctx, kindCreate)
	got, err := k.api().UpdateCall(callSID, &api.UpdateCallParams{Twiml: &twiml})
	if err != nil {
		return Call{}, k.err(err, "redirect call %s", callSID)
	}
	return callFrom(*got), nil
}

func callFrom(c api.ApiV2010Call) Call {
	return Call{
		SID:           deref(c.Sid),
		ParentCallSID: deref(c.ParentCallSid),
		From:          deref(c.From),
		To:            deref(c.To),
		Status:        deref(c.Status),
		Direction:     deref(c.Direction),
	}
}

// FetchConference implements Client.
func (c *restClient) FetchConference(ctx context.Context, conferenceSID string) (Conference, error) {
	if err := checkSID("conference SID", conferenceSID); err != nil {
		return Conference{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.api().FetchConference(conferenceSID, nil)
	if err != nil {
		return Conference{}, k.err(err, "fetch conference %s", conferenceSID)
	}
	return conferenceFrom(*got), nil
}

// ListConferences implements Client.
func (c *restClient) ListConferences(ctx context.Context, status string) ([]Conference, error) {
	switch status {
	case "", "init", "in-progress", "completed":
	default:
		return nil, fmt.Errorf("twilio: conference status %q is not init, in-progress or completed", status)
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.api().ListConference(&api.ListConferenceParams{Status: nonEmpty(status), PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list conferences")
	}
	out := make([]Conference, 0, len(got))
	for _, conf := range got {
		out = append(out, conferenceFrom(conf))
	}
	return out, nil
}

func conferenceFrom(c api.ApiV2010Conference) Conference {
	return Conference{
		SID:                     deref(c.Sid),
		FriendlyName:            deref(c.FriendlyName),
		Status:                  deref(c.Status),
		ReasonConferenceEnded:   deref(c.ReasonConferenceEnded),
		CallSIDEndingConference: deref(c.CallSidEndingConference),
	}
}

// AnnounceConference implements Client.
func (c *restClient) AnnounceConference(ctx context.Context, conferenceSID, announceURL string) error {
	if err := checkSID("conference SID", conferenceSID); err != nil {
		return err
	}
	if err := checkURL("announce URL", announceURL); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	_, err := k.api().UpdateConference(conferenceSID, &api.UpdateConferenceParams{AnnounceUrl: &announceURL})
	return k.err(err, "announce to conference %s", conferenceSID)
}

// EndConference implements Client.
func (c *restClient) EndConference(ctx context.Context, conferenceSID string) error {
	if err := checkSID("conference SID", conferenceSID); err != nil {
		return err
	}
	k := c.newCall(ctx, kindIdempotent)
	_, err := k.api().UpdateConference(conferenceSID, &api.UpdateConferenceParams{Status: ptr("completed")})
	return k.err(err, "end conference %s", conferenceSID)
}

// ListParticipants implements Client.
func (c *restClient) ListParticipants(ctx context.Context, conferenceSID string) ([]Participant, error) {
	if err := checkSID("conference SID", conferenceSID); err != nil {
		return nil, err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.api().ListParticipant(conferenceSID, &api.ListParticipantParams{PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list participants of %s", conferenceSID)
	}
	out := make([]Participant, 0, len(got))
	for _, p := range got {
		out = append(out, participantFrom(p))
	}
	return out, nil
}

// UpdateParticipant implements Client.
func (c *restClient) UpdateParticipant(ctx context.Context, conferenceSID, callSIDOrLabel string, u ParticipantUpdate) (Participant, error) {
	if err := checkSID("conference SID", conferenceSID); err != nil {
		return Participant{}, err
	}
	if callSIDOrLabel == "" {
		return Participant{}, errors.New("twilio: participant call SID or label is required")
	}
	p := &api.UpdateParticipantParams{
		EndConferenceOnExit: u.EndConferenceOnExit,
		Hold:                u.Hold,
		HoldUrl:             u.HoldURL,
		AnnounceUrl:         u.AnnounceURL,
		Muted:               u.Muted,
		Coaching:            u.Coaching,
		CallSidToCoach:      u.CallSIDToCoach,
	}
	k := c.newCall(ctx, kindIdempotent)
	// Twilio accepts a label in place of the call SID, percent-encoded;
	// twilio-go pastes it into the path as is.
	got, err := k.api().UpdateParticipant(conferenceSID, url.PathEscape(callSIDOrLabel), p)
	if err != nil {
		return Participant{}, k.err(err, "update participant %q of %s", callSIDOrLabel, conferenceSID)
	}
	return participantFrom(*got), nil
}

// CreateParticipant implements Client.
func (c *restClient) CreateParticipant(ctx context.Context, conferenceSID string, p ParticipantCreate) (Participant, error) {
	if err := checkSID("conference SID", conferenceSID); err != nil {
		return Participant{}, err
	}
	if p.From == "" || p.To == "" {
		return Participant{}, errors.New("twilio: participant From and To are required")
	}
	if p.Timeout != 0 && (p.Timeout < 5 || p.Timeout > 600) {
		return Participant{}, fmt.Errorf("twilio: participant ring timeout %d must be 5..600 seconds", p.Timeout)
	}
	params := &api.CreateParticipantParams{
		From:                     &p.From,
		To:                       &p.To,
		Label:                    nonEmpty(p.Label),
		EndConferenceOnExit:      p.EndConferenceOnExit,
		StartConferenceOnEnter:   p.StartConferenceOnEnter,
		Coaching:                 p.Coaching,
		CallSidToCoach:           nonEmpty(p.CallSIDToCoach),
		Muted:                    p.Muted,
		StatusCallback:           nonEmpty(p.StatusCallback),
		ConferenceStatusCallback: nonEmpty(p.ConferenceStatusCallback),
	}
	if p.Timeout != 0 {
		params.Timeout = ptr(p.Timeout)
	}
	if len(p.StatusCallbackEvent) > 0 {
		params.StatusCallbackEvent = &p.StatusCallbackEvent
	}
	if len(p.ConferenceStatusCallbackEvent) > 0 {
		params.ConferenceStatusCallbackEvent = &p.ConferenceStatusCallbackEvent
	}
	k := c.newCall(ctx, kindCreate)
	got, err := k.api().CreateParticipant(conferenceSID, params)
	if err != nil {
		return Participant{}, k.err(err, "add participant %s to %s", p.To, conferenceSID)
	}
	return participantFrom(*got), nil
}

func participantFrom(p api.ApiV2010Participant) Participant {
	return Participant{
		CallSID:                deref(p.CallSid),
		ConferenceSID:          deref(p.ConferenceSid),
		Label:                  deref(p.Label),
		CallSIDToCoach:         deref(p.CallSidToCoach),
		Coaching:               deref(p.Coaching),
		EndConferenceOnExit:    deref(p.EndConferenceOnExit),
		StartConferenceOnEnter: deref(p.StartConferenceOnEnter),
		Muted:                  deref(p.Muted),
		Hold:                   deref(p.Hold),
		Status:                 deref(p.Status),
	}
}

// checkURL rejects URLs Twilio could not fetch.
func checkURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("twilio: %s %q must be an absolute http(s) URL", what, raw)
	}
	return nil
}
