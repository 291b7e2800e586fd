package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
)

// Metrics of conference recovery, on controller-runtime's registry. The timings are the ones a
// contact-centre manager asks about; they are observed once per recovery.
var (
	recoveryStepsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_recovery_steps_total",
		Help: "Recovery steps taken on Twilio, by step (EndConferenceOnExit, Announce, CreatePingTask, EnqueueReconnect, RerouteReconnect, Redial, …) and outcome (Done, Skipped, Failed).",
	}, []string{"step", "state"})

	recoveryPhasesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flexoperator_recovery_phase_transitions_total",
		Help: "ConferenceRecovery phase changes, by the phase entered.",
	}, []string{"phase"})

	detectionToPingSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flexoperator_recovery_detection_to_ping_seconds",
		Help:    "Time from the operator's receipt of the agent's leave to the creation of the Recovery Ping task, by the operator's clock.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10},
	})

	recoveryResyncRepairsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flexoperator_recovery_resync_repairs_total",
		Help: "Recoveries repaired from Twilio's REST API because callbacks or events about them were lost.",
	})

	recoverySweepsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flexoperator_recovery_sweeps_total",
		Help: "Checks of an account's live calls against the legs its recoveries in Monitoring record as connected.",
	})

	recoverySweepSuspectsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flexoperator_recovery_sweep_suspects_total",
		Help: "Recoveries the sweep found with a leg whose call had ended (a lost leave or conference end), read from Twilio at once.",
	})

	customerWithoutAgentSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "flexoperator_recovery_customer_without_agent_seconds",
		Help:    "How long the customer was without an agent, from the disconnect to an agent taking the reconnect task (or the end of the recovery), by final phase.",
		Buckets: []float64{5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 1800},
	}, []string{"phase"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(recoveryStepsTotal, recoveryPhasesTotal, detectionToPingSeconds, customerWithoutAgentSeconds, recoveryResyncRepairsTotal,
		recoverySweepsTotal, recoverySweepSuspectsTotal)
}

// stepKind is a step's name without the leg it acts on, to keep label values few.
func stepKind(name string) string {
	if _, ok := recovery.IsCorrection(name); ok {
		return "EndConferenceOnExit"
	}
	if _, ok := recovery.IsRedial(name); ok {
		return "Redial"
	}
	return name
}

// observePhase counts a phase change and, when the recovery ends, how long the customer waited.
func observePhase(st v1alpha1.ConferenceRecoveryStatus) {
	recoveryPhasesTotal.WithLabelValues(string(st.Phase)).Inc()
	if st.Phase.Terminal() && st.Timings.CustomerWithoutAgent != nil {
		customerWithoutAgentSeconds.WithLabelValues(string(st.Phase)).Observe(st.Timings.CustomerWithoutAgent.Seconds())
	}
}
