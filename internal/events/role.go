package events

import "strings"

// Role is what a conference participant is to the recovery: whom to keep on
// the line, whom to ping, whom to dial back.
type Role string

// Participant roles.
const (
	// RoleCustomer is the caller, the leg recovery exists to keep.
	RoleCustomer Role = "Customer"
	// RoleAgent is the worker handling the task, whose non-graceful leave
	// starts a recovery.
	RoleAgent Role = "Agent"
	// RoleSupervisor is a coaching participant: never counted as the agent
	// and never dialled back.
	RoleSupervisor Role = "Supervisor"
	// RoleThirdParty is any other leg (an external transfer, a consultant);
	// it is dialled into the new conference.
	RoleThirdParty Role = "ThirdParty"
	// RoleUnknown is a leg without a label; the caller must look further
	// (the task's conference.participants, the call's "to").
	RoleUnknown Role = "Unknown"
)

// ParticipantRole derives a role from a participant's label and Coaching
// flag. Flex labels the customer leg "customer" and the agent leg "worker"
// (the keys of the task's conference.participants attribute); a second agent
// in the same conference (a warm transfer) gets a numbered label such as
// "worker-2", which is still an agent; coaching marks a supervisor whatever
// the label; Flex's "external…" labels and any other label are third parties.
func ParticipantRole(label string, coaching bool) Role {
	if coaching {
		return RoleSupervisor
	}
	switch l := strings.ToLower(strings.TrimSpace(label)); {
	case l == "":
		return RoleUnknown
	case l == "customer":
		return RoleCustomer
	case l == "worker" || isNumberedLabel(l, "worker"):
		return RoleAgent
	default:
		return RoleThirdParty
	}
}

// isNumberedLabel reports whether label is base followed by "-" and a number
// ("worker-2"), the way a conference disambiguates a repeated label.
func isNumberedLabel(label, base string) bool {
	n, ok := strings.CutPrefix(label, base+"-")
	if !ok || n == "" || len(n) > 4 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
