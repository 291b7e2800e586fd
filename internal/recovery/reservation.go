package recovery

import "time"

// Reservation is what PickDisconnectedReservation needs to know of a reservation of the original
// task.
type Reservation struct {
	SID        string
	WorkerSID  string
	WorkerName string
	// Status is TaskRouter's reservation status (pending, accepted, wrapping, completed, …).
	Status  string
	Updated time.Time
}

// PickDisconnectedReservation finds, among the original task's reservations, the one of the agent
// whose leg dropped: workerSID's when the leg's worker is known, else any agent's. Only
// reservations that were connected count (wrapping, then accepted, then completed: Flex moves the
// reservation of a leg that dropped to wrapping); among equals the one updated last wins, which
// after a warm transfer is the agent who left last. It reports false when none fits.
func PickDisconnectedReservation(reservations []Reservation, workerSID string) (Reservation, bool) {
	rank := map[string]int{"wrapping": 3, "accepted": 2, "completed": 1}
	var best Reservation
	found := false
	for _, r := range reservations {
		if rank[r.Status] == 0 || (workerSID != "" && r.WorkerSID != workerSID) {
			continue
		}
		if !found || rank[r.Status] > rank[best.Status] ||
			(rank[r.Status] == rank[best.Status] && r.Updated.After(best.Updated)) {
			best, found = r, true
		}
	}
	return best, found
}
