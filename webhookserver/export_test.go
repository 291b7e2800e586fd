package webhookserver

import "github.com/prometheus/client_golang/prometheus/testutil"

// Metric readers for the external tests.

// SignatureFailures reads flexoperator_webhook_signature_failures_total.
func SignatureFailures(route string) float64 {
	return testutil.ToFloat64(signatureFailures.WithLabelValues(route))
}

// DuplicatesTotal reads flexoperator_webhook_duplicates_total.
func DuplicatesTotal(route string) float64 {
	return testutil.ToFloat64(duplicatesTotal.WithLabelValues(route))
}

// EventsTotal reads flexoperator_webhook_events_total.
func EventsTotal(route, typ, outcome string) float64 {
	return testutil.ToFloat64(eventsTotal.WithLabelValues(route, typ, outcome))
}

// RequestsTotal reads flexoperator_webhook_requests_total.
func RequestsTotal(route, code string) float64 {
	return testutil.ToFloat64(requestsTotal.WithLabelValues(route, code))
}

// StoreRetriesTotal reads flexoperator_webhook_store_retries_total.
func StoreRetriesTotal() float64 { return testutil.ToFloat64(storeRetriesTotal) }

// GracefulMarksTotal reads flexoperator_graceful_marks_total.
func GracefulMarksTotal(outcome string) float64 {
	return testutil.ToFloat64(gracefulMarksTotal.WithLabelValues(outcome))
}
