package twilio

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics of every HTTP attempt made to Twilio. They are registered on
// controller-runtime's registry so the manager's /metrics endpoint serves
// them next to the reconcilers' own.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_twilio_requests_total",
		Help: "HTTP requests sent to Twilio, one per attempt, by product, operation and HTTP status (\"error\" when no response came back).",
	}, []string{"product", "operation", "status"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flexoperator_twilio_request_duration_seconds",
		Help: "Duration of one HTTP attempt to Twilio, from sending to response headers.",
		// Twilio answers in tens of milliseconds; the tail matters for the
		// endConferenceOnExit reset, so the low buckets are fine-grained.
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"product", "operation"})

	retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_twilio_retries_total",
		Help: "Requests to Twilio repeated after a retryable failure, by product, operation and reason (429, 5xx, connection).",
	}, []string{"product", "operation", "reason"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(requestsTotal, requestDuration, retriesTotal)
}
