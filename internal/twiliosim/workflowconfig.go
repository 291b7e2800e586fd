package twiliosim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/flexoperator/flex-operator/internal/expr"
)

// maxConfigBytes caps a workflow configuration; Twilio's own limit is not
// published, this one only keeps a hostile document from costing much.
const maxConfigBytes = 256 << 10

var errNotObject = errors.New("must be a JSON object")

// routingConfig is a parsed workflow configuration.
type routingConfig struct {
	filters []*routingFilter
	// def is default_filter; nil when the workflow has none.
	def *resolvedTarget
}

type routingFilter struct {
	name    string
	exprSrc string
	expr    *expr.Expr
	targets []*resolvedTarget
}

// resolvedTarget is one routing step with the queue inherited from the step
// before it when it names none.
type resolvedTarget struct {
	queueSID  string
	exprSrc   string
	expr      *expr.Expr
	priority  *int
	timeout   int
	orderBy   []orderClause
	orderSrc  string
	skipIfSrc string
	skipIf    *expr.Expr
	// knownSID and knownName are task attribute paths (task.agent_sid).
	knownSID  string
	knownName string
}

type orderClause struct {
	path []string
	desc bool
}

// rawTarget is the JSON of a target. Priority and timeout are raw because
// Twilio's own examples write them both as numbers and as strings.
type rawTarget struct {
	Queue                   string          `json:"queue"`
	Expression              string          `json:"expression"`
	Priority                json.RawMessage `json:"priority"`
	Timeout                 json.RawMessage `json:"timeout"`
	OrderBy                 string          `json:"order_by"`
	SkipIf                  string          `json:"skip_if"`
	KnownWorkerSID          string          `json:"known_worker_sid"`
	KnownWorkerFriendlyName string          `json:"known_worker_friendly_name"`
}

type rawFilter struct {
	FriendlyName string      `json:"filter_friendly_name"`
	Expression   string      `json:"expression"`
	Targets      []rawTarget `json:"targets"`
}

type rawConfig struct {
	TaskRouting *struct {
		Filters       []rawFilter `json:"filters"`
		DefaultFilter *rawTarget  `json:"default_filter"`
	} `json:"task_routing"`
}

// parseRoutingConfig validates a workflow configuration as Twilio would:
// JSON shape, expressions, queue SIDs (queueExists), timeouts and
// priorities. Errors say where the problem is.
func parseRoutingConfig(raw string, queueExists func(string) bool) (*routingConfig, error) {
	if len(raw) > maxConfigBytes {
		return nil, fmt.Errorf("configuration is %d bytes, more than %d", len(raw), maxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	var rc rawConfig
	if err := dec.Decode(&rc); err != nil {
		return nil, fmt.Errorf("configuration is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("configuration has data after the JSON object")
	}
	if rc.TaskRouting == nil {
		return nil, errors.New("configuration needs a task_routing object")
	}
	cfg := &routingConfig{}
	for i, f := range rc.TaskRouting.Filters {
		where := fmt.Sprintf("filters[%d]", i)
		if f.FriendlyName != "" {
			where += fmt.Sprintf(" (%q)", f.FriendlyName)
		}
		if strings.TrimSpace(f.Expression) == "" {
			return nil, fmt.Errorf("%s: expression is required", where)
		}
		e, err := expr.Parse(f.Expression)
		if err != nil {
			return nil, fmt.Errorf("%s: expression: %w", where, err)
		}
		if len(f.Targets) == 0 {
			return nil, fmt.Errorf("%s: at least one target is required", where)
		}
		rf := &routingFilter{name: f.FriendlyName, exprSrc: f.Expression, expr: e}
		prevQueue := ""
		for j, t := range f.Targets {
			rt, err := parseTarget(t, prevQueue, queueExists, true)
			if err != nil {
				return nil, fmt.Errorf("%s.targets[%d]: %w", where, j, err)
			}
			prevQueue = rt.queueSID
			rf.targets = append(rf.targets, rt)
		}
		cfg.filters = append(cfg.filters, rf)
	}
	if d := rc.TaskRouting.DefaultFilter; d != nil {
		rt, err := parseTarget(*d, "", queueExists, false)
		if err != nil {
			return nil, fmt.Errorf("default_filter: %w", err)
		}
		cfg.def = rt
	}
	return cfg, nil
}

func parseTarget(t rawTarget, inherited string, queueExists func(string) bool, allowTimeout bool) (*resolvedTarget, error) {
	rt := &resolvedTarget{queueSID: t.Queue, exprSrc: t.Expression, orderSrc: t.OrderBy, skipIfSrc: t.SkipIf}
	if rt.queueSID == "" {
		rt.queueSID = inherited
	}
	if rt.queueSID == "" {
		return nil, errors.New("queue is required (the first target of a filter must name one)")
	}
	if !queueExists(rt.queueSID) {
		return nil, fmt.Errorf("queue %q is not a TaskQueue of this workspace", rt.queueSID)
	}
	if strings.TrimSpace(t.Expression) != "" {
		e, err := expr.Parse(t.Expression)
		if err != nil {
			return nil, fmt.Errorf("expression: %w", err)
		}
		rt.expr = e
	}
	if strings.TrimSpace(t.SkipIf) != "" {
		e, err := expr.Parse(t.SkipIf)
		if err != nil {
			return nil, fmt.Errorf("skip_if: %w", err)
		}
		rt.skipIf = e
	}
	if p, ok, err := flexInt(t.Priority); err != nil {
		return nil, fmt.Errorf("priority: %w", err)
	} else if ok {
		if p < 0 {
			return nil, fmt.Errorf("priority %d is negative", p)
		}
		rt.priority = &p
	}
	if v, ok, err := flexInt(t.Timeout); err != nil {
		return nil, fmt.Errorf("timeout: %w", err)
	} else if ok {
		if v <= 0 {
			return nil, fmt.Errorf("timeout %d must be a positive number of seconds", v)
		}
		// The default filter has no timeout in Twilio; one given is ignored.
		if allowTimeout {
			rt.timeout = v
		}
	}
	if t.KnownWorkerSID != "" && t.KnownWorkerFriendlyName != "" {
		return nil, errors.New("known_worker_sid and known_worker_friendly_name cannot both be set")
	}
	for _, k := range []struct{ src, name string }{{t.KnownWorkerSID, "known_worker_sid"}, {t.KnownWorkerFriendlyName, "known_worker_friendly_name"}} {
		if k.src == "" {
			continue
		}
		if !strings.HasPrefix(k.src, "task.") || len(k.src) == len("task.") {
			return nil, fmt.Errorf("%s %q must reference a task attribute (task.…)", k.name, k.src)
		}
	}
	rt.knownSID, rt.knownName = t.KnownWorkerSID, t.KnownWorkerFriendlyName
	if t.OrderBy != "" {
		ob, err := parseOrderBy(t.OrderBy)
		if err != nil {
			return nil, fmt.Errorf("order_by: %w", err)
		}
		rt.orderBy = ob
	}
	return rt, nil
}

// flexInt reads a JSON number or numeric string; ok is false when absent.
func flexInt(raw json.RawMessage) (v int, ok bool, err error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, false, nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, false, fmt.Errorf("not a number: %s", s)
		}
		s = strings.TrimSpace(str)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, false, fmt.Errorf("not an integer: %s", s)
	}
	return int(f), true, nil
}

// parseOrderBy reads "worker.level DESC, worker.seniority ASC".
func parseOrderBy(src string) ([]orderClause, error) {
	var out []orderClause
	for _, part := range strings.Split(src, ",") {
		fields := strings.Fields(part)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("clause %q must be worker.<attribute> [ASC|DESC]", strings.TrimSpace(part))
		}
		if !strings.HasPrefix(fields[0], "worker.") || len(fields[0]) == len("worker.") {
			return nil, fmt.Errorf("clause %q must order by a worker attribute (worker.…)", strings.TrimSpace(part))
		}
		c := orderClause{path: strings.Split(strings.TrimPrefix(fields[0], "worker."), ".")}
		if len(fields) == 2 {
			switch strings.ToUpper(fields[1]) {
			case "ASC":
			case "DESC":
				c.desc = true
			default:
				return nil, fmt.Errorf("clause %q: direction must be ASC or DESC", strings.TrimSpace(part))
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// lookupPath follows a dotted path through decoded JSON.
func lookupPath(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = obj[p]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// taskAttrRef resolves "task.a.b" against the task's attributes, as
// known-worker routing does; it returns "" when missing or not a string.
func taskAttrRef(attrs map[string]any, ref string) string {
	v, ok := lookupPath(attrs, strings.Split(strings.TrimPrefix(ref, "task."), "."))
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}
