// Package recovery holds the conference recovery step machine as pure functions: ApplyConferenceEvent
// folds a conference status callback into a ConferenceRecoveryStatus, and Decide reads that status
// with the policy and says what the next phase is and which Twilio side effects come next. Nothing
// here talks to Kubernetes or Twilio; the controller performs the Actions, records each one in
// status.Actions under its Name (Pending before the call, Done after) and calls Decide again.
//
// The package also builds what the steps send (the Enqueue and Dial TwiML, the ping and reconnect
// task attributes, the lookups that resolve a step a crash left Pending) and the summary the
// controller writes with each phase (the CustomerConnected and AgentConnected conditions, the
// customer's time without an agent).
package recovery
