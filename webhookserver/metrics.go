package webhookserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Route names, the "route" label of every webhook metric.
const (
	routeConference = "conference"
	routeEvents     = "events"
	// routeActivityEvents is a WorkerActivityPolicy's Event Streams route.
	routeActivityEvents = "activity_events"
	routeTaskRouter     = "taskrouter"
	routeGraceful       = "graceful"
	routeRecovery       = "recovery"
	routeFlexConfig     = "flex_config"
	routeCheck          = "check"
)

// Outcomes of a graceful mark, the "outcome" label of flexoperator_graceful_marks_total. Anything
// but marked and nothing_to_mark means an agent's deliberate hang-up may be taken for an outage.
const (
	// markOutcomeMarked: the leg is marked graceful (200).
	markOutcomeMarked = "marked"
	// markOutcomeNothingToMark: not a protected call, or no such leg of the worker (404, 409).
	markOutcomeNothingToMark = "nothing_to_mark"
	// markOutcomeRefused: no token, a token Twilio rejects, or another worker's leg (401, 403).
	markOutcomeRefused = "refused"
	// markOutcomeInvalid: a body the operator cannot read (400, 413, 415).
	markOutcomeInvalid = "invalid"
	// markOutcomeFailed: the operator could not take the mark now (429, 5xx).
	markOutcomeFailed = "failed"
)

// Outcomes of one event, the "outcome" label of flexoperator_webhook_events_total.
const (
	// outcomeStored: the event changed a ConferenceRecovery and the change was written.
	outcomeStored = "stored"
	// outcomeUnchanged: the event was applied but changed nothing (already known).
	outcomeUnchanged = "unchanged"
	// outcomeIgnored: genuine, but not about a protected call (an unprotected conference, a task
	// that is neither a ping nor a reconnect, an event type recovery does not use).
	outcomeIgnored = "ignored"
	// outcomeNoRecovery: about a ConferenceRecovery that does not exist (deleted, or never made).
	outcomeNoRecovery = "no_recovery"
	// outcomeMalformed: signed, but not decodable.
	outcomeMalformed = "malformed"
	// outcomeUnknown: a conference event name this operator does not know.
	outcomeUnknown = "unknown"
	// outcomeRejected: the API server refused the object as invalid; retrying cannot help.
	outcomeRejected = "rejected"
	// outcomeFailed: the event could not be stored; the sender was answered 5xx.
	outcomeFailed = "failed"
	// outcomeValidating: a sink test event whose validation was started.
	outcomeValidating = "validating"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_webhook_requests_total",
		Help: "Webhook requests answered, by route and HTTP status code.",
	}, []string{"route", "code"})
	signatureFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_webhook_signature_failures_total",
		Help: "Webhook requests refused because X-Twilio-Signature was missing or wrong, by route.",
	}, []string{"route"})
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_webhook_events_total",
		Help: "Twilio events received with a valid signature, by route, event type and outcome.",
	}, []string{"route", "type", "outcome"})
	duplicatesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_webhook_duplicates_total",
		Help: "Redelivered Twilio events acknowledged and dropped, by route.",
	}, []string{"route"})
	correctionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_webhook_endconferenceonexit_corrections_total",
		Help: "endConferenceOnExit corrections made by the webhook server on receipt of a callback, by outcome (stored: set at Twilio; ignored: the leg was gone; failed: left to the controller).",
	}, []string{"outcome"})
	storeRetriesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flexoperator_webhook_store_retries_total",
		Help: "Events tried again in-process after the API server (or Twilio, for a conference's task) failed to store them.",
	})
	gracefulMarksTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_graceful_marks_total",
		Help: "Graceful-hangup marks from the Flex companion, by outcome (marked, nothing_to_mark, refused, invalid, failed). Marks that never reach the operator are not counted: see the FlexOperatorGracefulMarksMissing alert.",
	}, []string{"outcome"})
	handlingSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flexoperator_webhook_handling_seconds",
		Help: "Time from receiving a webhook request to answering it, by route.",
		// 1 ms to about 8 s: Event Streams gives a sink 5 s to answer.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"route"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, signatureFailures, eventsTotal, duplicatesTotal, correctionsTotal, storeRetriesTotal, handlingSeconds, gracefulMarksTotal)
}

// instrument counts a route's answers by status code and times them.
func instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		requestsTotal.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		handlingSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// countMarks counts a graceful mark's answer by outcome.
func countMarks(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		gracefulMarksTotal.WithLabelValues(markOutcome(rec.code)).Inc()
	}
}

// markOutcome classifies a graceful mark's status code.
func markOutcome(code int) string {
	switch {
	case code >= 200 && code < 300:
		return markOutcomeMarked
	case code == http.StatusNotFound || code == http.StatusConflict:
		return markOutcomeNothingToMark
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return markOutcomeRefused
	case code == http.StatusTooManyRequests || code >= 500:
		return markOutcomeFailed
	}
	return markOutcomeInvalid
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.written {
		s.code, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.written = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
