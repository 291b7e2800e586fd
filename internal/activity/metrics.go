package activity

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics of the activity engine, on controller-runtime's registry. Labels are bounded: event
// types are TaskRouter's, outcomes and rules are this package's constants.
var (
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_activity_events_total",
		Help: "TaskRouter events handed to the activity engine, by outcome (applied, ignored, buffered, unknown_worker, doubt, duplicate, bad, no_policy, other_workspace, older_than_read).",
	}, []string{"outcome"})

	decisionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_activity_decisions_total",
		Help: "Decisions that change a worker, by rule and mode (Enforce, Observe).",
	}, []string{"rule", "mode"})

	writesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_activity_writes_total",
		Help: "Worker updates sent to TaskRouter, by outcome (ok, conflict, not_found, error, canceled; superseded: dropped unsent for the worker's newer update).",
	}, []string{"outcome"})

	readsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_activity_twilio_reads_total",
		Help: "TaskRouter reads made to rebuild state, by reason (rebuild, doubt, activity: one activity the catalogue did not know).",
	}, []string{"reason"})

	eventToWriteSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flexoperator_activity_event_to_write_seconds",
		Help:    "Time from receiving the first event of a change to TaskRouter confirming the worker update.",
		Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	})

	rebuildSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flexoperator_activity_rebuild_seconds",
		Help:    "Time to read a whole workspace from TaskRouter in the background, from the start of a run to a complete picture (workers with events are enforced meanwhile).",
		Buckets: []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300},
	})

	bufferedEvents = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flexoperator_activity_buffered_events",
		Help: "Events held until what they are about has been read from TaskRouter (before the workspace's activities are read, or per worker not known yet), coalesced per reservation, task, worker and activity, by workspace.",
	}, []string{"workspace"})

	badInputTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_activity_bad_input_total",
		Help: "Inputs the engine could not use, by kind (event, attributes, activity, policy).",
	}, []string{"kind"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(eventsTotal, decisionsTotal, writesTotal, readsTotal, eventToWriteSeconds, rebuildSeconds, bufferedEvents, badInputTotal)
}
