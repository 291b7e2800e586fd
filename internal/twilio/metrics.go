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

	budgetWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flexoperator_twilio_budget_wait_seconds",
		Help: "Time a request to Twilio waited in the operator's queue for its budget's token, by class (taskrouter, voice, other) and priority (recovery, activity, background); zero when a token was free.",
		// A recovery should wait well under 5 ms; background reads may wait minutes.
		Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300},
	}, []string{"class", "priority"})

	budgetQueued = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flexoperator_twilio_budget_queued",
		Help: "Requests to Twilio now waiting in the operator's queue for their budget's token, by class and priority.",
	}, []string{"class", "priority"})

	budgetGranted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_twilio_budget_granted_total",
		Help: "Tokens of the operator's Twilio budgets granted to requests (one per attempt), by class and priority.",
	}, []string{"class", "priority"})

	budgetCoalesced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_twilio_budget_coalesced_total",
		Help: "Queued requests to Twilio dropped unsent because a newer one with the same key (a worker's newer decision) took their place, by class and priority.",
	}, []string{"class", "priority"})

	budgetPauses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_twilio_budget_pauses_total",
		Help: "Times a budget stopped granting tokens until a 429's Retry-After, by class and the priority of the throttled request (that priority and every less urgent one wait).",
	}, []string{"class", "priority"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(requestsTotal, requestDuration, retriesTotal,
		budgetWait, budgetQueued, budgetGranted, budgetCoalesced, budgetPauses)
}
