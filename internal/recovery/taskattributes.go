package recovery

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/flexoperator/flex-operator/internal/events"
)

// MarkerAttribute is the task attribute that says which part a task plays in a recovery. Its value
// is an object {"role": "ping"|"reconnect", "conferenceSid": "CF…", "disconnectedCallSid": "CA…"}:
// the role, the conference being recovered and the agent leg whose drop started the recovery.
//
// Why a marker keyed to the incident, and not a flag: a call can drop any number of times, and
// each recovery builds its tasks from the previous task's attributes (the ping copies the original
// task, which after one recovery is the reconnect task). A flag such as the seed's isReconnect is
// copied along with everything else, so the second ping looked like a reconnect task. The marker is
// written whole by PingTaskAttributes and ReconnectTaskAttributes, never merged, so a task the
// operator builds always carries its own; and because it names the conference and the dropped leg,
// a copy made by someone else (a Flex transfer copies attributes) still points at the incident it
// came from, where the recovery already knows its own task and ignores any other. The ping is
// also checked against the workflow it is on (the Recovery Ping workflow), which no copy inherits.
const MarkerAttribute = "flexOperatorRecovery"

// TaskRole is the part a task plays in a recovery.
type TaskRole string

// Task roles. A task without a marker is an original (customer) task.
const (
	TaskRolePing      TaskRole = "ping"
	TaskRoleReconnect TaskRole = "reconnect"
)

// Marker is the decoded MarkerAttribute.
type Marker struct {
	Role TaskRole
	// ConferenceSID is the conference the recovery is about.
	ConferenceSID string
	// DisconnectedCallSID is the agent leg whose drop started the recovery; it tells one incident
	// of a conference from a later one.
	DisconnectedCallSID string
}

// Value is the marker as a task attribute value.
func (m Marker) Value() map[string]any {
	v := map[string]any{"role": string(m.Role), "conferenceSid": m.ConferenceSID}
	if m.DisconnectedCallSID != "" {
		v["disconnectedCallSid"] = m.DisconnectedCallSID
	}
	return v
}

// Expression is the TaskRouter expression (for ListTasks' EvaluateTaskAttributes) that finds the
// tasks carrying this marker: how a create or redirect whose outcome is unknown is resolved.
func (m Marker) Expression() string {
	expr := fmt.Sprintf(`%s.role == "%s" AND %s.conferenceSid == "%s"`, MarkerAttribute, m.Role, MarkerAttribute, m.ConferenceSID)
	if m.DisconnectedCallSID != "" {
		expr += fmt.Sprintf(` AND %s.disconnectedCallSid == "%s"`, MarkerAttribute, m.DisconnectedCallSID)
	}
	return expr
}

// Matches reports whether the marker belongs to the incident of a recovery: the same conference,
// and the same dropped leg when both are known.
func (m Marker) Matches(conferenceSID, disconnectedCallSID string) bool {
	return m.Role != "" && strings.EqualFold(m.ConferenceSID, conferenceSID) &&
		(m.DisconnectedCallSID == "" || disconnectedCallSID == "" || m.DisconnectedCallSID == disconnectedCallSID)
}

// TaskAttributes is a task's attributes decoded once: the whole object (for merging and copying)
// and the fields recovery reads. It is the project's one parser of task attributes.
type TaskAttributes struct {
	// All is the attributes object; empty, never nil, when the text is empty or not an object.
	All map[string]any
	// Marker is the recovery marker; its Role is empty on an original task.
	Marker Marker
	// IsReconnect is the seed's isReconnect flag, kept on reconnect tasks for the Flex plugin.
	// It is a JSON boolean; anything else (the string "true") is not the flag. The operator
	// never decides a task's role from it (see MarkerAttribute).
	IsReconnect bool
	// Participants is Flex's conference.participants: "customer", "worker" or a worker SID (the
	// further agents of a warm transfer) → the leg's call SID.
	Participants map[string]string
	// ConferenceSID is Flex's conference.sid: the conference the task's call is in.
	ConferenceSID string
}

// ParseTaskAttributes decodes a task's attributes. It is lenient with the fields it reads: the
// attributes belong to the contact centre, and a field of an unexpected shape is left out, never
// an error. The error says only that the text is not a JSON object; the fields are then empty.
func ParseTaskAttributes(raw string) (TaskAttributes, error) {
	out := TaskAttributes{All: map[string]any{}}
	if strings.TrimSpace(raw) == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(raw), &out.All); err != nil || out.All == nil {
		out.All = map[string]any{}
		if err == nil {
			err = fmt.Errorf("null")
		}
		return out, fmt.Errorf("task attributes are not a JSON object: %w", err)
	}
	return AttributesOf(out.All), nil
}

// AttributesOf reads the fields recovery uses from decoded attributes (all is kept, not copied).
func AttributesOf(all map[string]any) TaskAttributes {
	out := TaskAttributes{All: all}
	if out.All == nil {
		out.All = map[string]any{}
	}
	if m, ok := all[MarkerAttribute].(map[string]any); ok {
		role, _ := m["role"].(string)
		conference, _ := m["conferenceSid"].(string)
		leg, _ := m["disconnectedCallSid"].(string)
		if (role == string(TaskRolePing) || role == string(TaskRoleReconnect)) && events.ValidSID(conference, "CF") &&
			(leg == "" || events.ValidSID(leg, "CA")) {
			out.Marker = Marker{Role: TaskRole(role), ConferenceSID: conference, DisconnectedCallSID: leg}
		}
	}
	out.IsReconnect, _ = all["isReconnect"].(bool)
	if conference, ok := all["conference"].(map[string]any); ok {
		if sid, _ := conference["sid"].(string); events.ValidSID(sid, "CF") {
			out.ConferenceSID = sid
		}
		if parts, ok := conference["participants"].(map[string]any); ok {
			for key, value := range parts {
				if callSID, ok := value.(string); ok && events.ValidSID(callSID, "CA") {
					if out.Participants == nil {
						out.Participants = map[string]string{}
					}
					out.Participants[key] = callSID
				}
			}
		}
	}
	return out
}
