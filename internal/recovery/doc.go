// Package recovery holds the conference recovery step machine as pure functions: ApplyConferenceEvent
// folds a conference status callback into a ConferenceRecoveryStatus, and Decide reads that status
// with the policy and says what the next phase is and which Twilio side effects come next. Nothing
// here talks to Kubernetes or Twilio; the controller performs the Actions, records each one in
// status.Actions under its Name (Pending before the call, Done after) and calls Decide again.
package recovery
