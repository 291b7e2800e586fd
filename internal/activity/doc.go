// Package activity is the worker activity engine behind WorkerActivityPolicy: the pure decision of
// which TaskRouter Activity a worker should be in given the work they hold, and the per-worker state
// that decision reads. The WorkerActivityPolicy controller resolves activities and sets up Event
// Streams; the engine (governance, state, decisions, writes) owns everything per worker and reports
// per-policy aggregates through StatsSource, which the controller writes to status every few seconds.
package activity
