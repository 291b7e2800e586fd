package expr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Attributes as TaskRouter would hold them, decoded by encoding/json.
func workerAttrs() map[string]any {
	return map[string]any{
		"skills":           []any{"support", "sales"},
		"languages":        []any{"english", "spanish"},
		"spoken_languages": []any{"en", "fr"},
		"level":            5.0,
		"name":             "Alice Smith",
		"id":               "alice",
		"agent_id":         "A1",
		"phone":            15551234567.0,
		"available":        true,
		"nickname":         nil,
		"routing": map[string]any{
			"skills": []any{"voice", "chat"},
			"levels": map[string]any{"voice": 3.0},
		},
		"queues": []any{
			map[string]any{"name": "billing", "prio": 2.0},
			"plain",
			[]any{"nested"},
		},
	}
}

func taskAttrs() map[string]any {
	return map[string]any{
		"type":              "Support",
		"customer_value":    "Gold",
		"required_language": "en",
		"preferred_agents":  []any{"alice", "bob"},
		"requested_agent":   "A1",
		"priority":          3.0,
		"language":          "es",
		"tags":              []any{1.0, "vip", true, nil},
	}
}

func targetEnv() map[string]any {
	w := workerAttrs()
	// Worker built-ins TaskRouter adds for target expressions.
	w["sid"] = "WK0123"
	w["friendly_name"] = "alice"
	w["activity_name"] = "Available"
	return map[string]any{"task": taskAttrs(), "worker": w}
}

func timeEnv(hhmm float64, day string) map[string]any {
	return map[string]any{"taskrouter": map[string]any{
		"currentTime": hhmm, "currentHour": float64(int(hhmm) / 100),
		"currentMin": float64(int(hhmm) % 100), "dayOfWeek": day,
	}}
}

func skipEnv(available float64) map[string]any {
	return map[string]any{"workers": map[string]any{"available": available, "unavailable": 3.0, "WA1": 1.0, "WA2": 5.0}}
}

func TestEval(t *testing.T) {
	worker, task, target := workerAttrs(), taskAttrs(), targetEnv()
	tests := []struct {
		name string
		src  string
		env  map[string]any
		want bool
	}{
		// Catch-alls, as used for the default queue and skip_if.
		{"one equals one", "1==1", nil, true},
		{"one equals one spaced", "1 == 1", worker, true},
		{"one equals two", "1==2", worker, false},
		{"true constant", "true == true", nil, true},

		// Queue target_workers against worker attributes (docs examples).
		{"skills HAS", "skills HAS 'support'", worker, true},
		{"skills HAS double quotes", `skills HAS "sales"`, worker, true},
		{"skills HAS missing skill", "skills HAS 'billing'", worker, false},
		{"docs two HAS in parens", "(skills HAS 'support') AND (languages HAS 'english')", worker, true},
		{"docs two HAS one false", "(skills HAS 'support') AND (languages HAS 'french')", worker, false},
		{"has lower case", "skills has 'support'", worker, true},
		{"HAS on missing key", "certs HAS 'x'", worker, false},
		{"level compare", "level >= 5", worker, true},
		{"level compare strict", "level > 5", worker, false},
		{"level less", "level < 10 AND level <= 5", worker, true},

		// Workflow filters against task attributes.
		{"filter docs", "customer_value == 'Gold' AND type == 'ticket'", task, false},
		{"filter docs match", "customer_value == 'Gold' AND type == 'Support'", task, true},
		{"seed filter escaped quotes", `type=="Support"`, task, true},
		{"language IN literal", `language IN ["en","es"]`, task, true},
		{"language IN literal no space", `language IN["en","es"]`, task, true},
		{"language NOT IN literal", `language NOT IN ["en","es"]`, task, false},
		{"language not in lower", `language not in ['fr']`, task, true},
		{"IN empty array", `language IN []`, task, false},
		{"NOT IN empty array", `language NOT IN []`, task, true},
		{"missing NOT IN literal is null not in", `nothing NOT IN ["a"]`, task, true},
		{"null IN array holding null", `nothing IN [null]`, task, true},
		{"present != null", "requested_agent != null", task, true},
		{"missing != null", "disconnectedWorkerSid != null", task, false},
		{"missing == null", "disconnectedWorkerSid == null", task, true},
		{"null == null", "null == null", nil, true},
		{"array present != null", "preferred_agents != null", task, true},
		{"array == null", "preferred_agents == null", task, false},
		{"seed ping filter", "disconnectedWorkerSid != null AND recoveryAttemptFailed == false",
			map[string]any{"disconnectedWorkerSid": "WK1", "recoveryAttemptFailed": false}, true},
		{"HAS on mixed array", "tags HAS 1", task, true},
		{"HAS bool in mixed array", "tags HAS true", task, true},
		{"HAS null in mixed array", "tags HAS null", task, true},
		{"HAS string number mismatch", "tags HAS '1'", task, false},

		// Target expressions with task. and worker. prefixes.
		{"requested agent", "task.requested_agent==worker.agent_id", target, true},
		{"language IN worker array", "task.required_language IN worker.spoken_languages", target, true},
		{"worker id IN task array", "worker.id IN task.preferred_agents", target, true},
		{"worker id NOT IN task array", "worker.id NOT IN task.preferred_agents", target, false},
		{"worker built-in sid", "worker.sid == 'WK0123' AND worker.activity_name == 'Available'", target, true},
		{"unprefixed key in target is missing", "requested_agent == 'A1'", target, false},

		// Time of day (UTC built-ins), including the docs' lenient "=".
		{"business hours in", "taskrouter.currentTime > 800 AND taskrouter.currentTime < 1700", timeEnv(930, "Mon"), true},
		{"business hours out", "taskrouter.currentTime > 800 AND taskrouter.currentTime < 1700", timeEnv(1830, "Mon"), false},
		{"weekend single equals", "taskrouter.dayOfWeek = 'Sat' OR taskrouter.dayOfWeek = 'Sun'", timeEnv(930, "Sat"), true},
		{"weekday single equals", "taskrouter.dayOfWeek = 'Sat' OR taskrouter.dayOfWeek = 'Sun'", timeEnv(930, "Tue"), false},
		{"hour", "taskrouter.currentHour >= 9", timeEnv(930, "Tue"), true},

		// skip_if.
		{"skip when none available", "workers.available == 0", skipEnv(0), true},
		{"no skip when available", "workers.available == 0", skipEnv(2), false},
		{"skip activity counts", "workers.WA1 < 2 OR workers.WA2 < 2", skipEnv(2), true},

		// Nested keys and indexes.
		{"nested map", "routing.levels.voice == 3", worker, true},
		{"nested array HAS", "routing.skills HAS 'chat'", worker, true},
		{"index", "skills[0] == 'support'", worker, true},
		{"index second", "skills[1] == 'sales'", worker, true},
		{"index out of range is null", "skills[9] == null", worker, true},
		{"index then key", "queues[0].name == 'billing'", worker, true},
		{"index into scalar is null", "queues[1].name == null", worker, true},
		{"index of index", "queues[2][0] == 'nested'", worker, true},
		{"key of scalar is null", "name.first == null", worker, true},
		{"index of map is null", "routing[0] == null", worker, true},
		{"deep missing", "a.b.c.d == null", worker, true},
		{"keyword-named nested key", "routing.in == null AND routing.and == null", worker, true},
		{"missing != value", "missing != 1", worker, true},
		{"value != missing", "'a' != missing", worker, true},
		{"nil attribute is null", "nickname == null", worker, true},
		{"nil attribute != null", "nickname != null", worker, false},

		// Precedence and parentheses.
		{"AND over OR", "1==1 OR 1==2 AND 1==2", nil, true},
		{"AND over OR left", "1==2 AND 1==2 OR 1==1", nil, true},
		{"parens change it", "(1==1 OR 1==2) AND 1==2", nil, false},
		{"nested parens", "((1==1) AND ((1==2) OR (2==2)))", nil, true},
		{"keywords any case", "1==1 and 1==1 Or 1==2", nil, true},

		// CONTAINS.
		{"contains substring", "name CONTAINS 'Smith'", worker, true},
		{"contains case sensitive", "name CONTAINS 'smith'", worker, false},
		{"contains number text", "phone CONTAINS 555", worker, true},
		{"contains number in string", "phone CONTAINS '1555'", worker, true},
		{"contains on array is false", "skills CONTAINS 'support'", worker, false},
		{"contains bool false", "available CONTAINS 'true'", worker, false},
		{"contains missing false", "missing CONTAINS ''", worker, false},

		// Mismatched types and wrong shapes are false.
		{"string vs number", "level == '5'", worker, false},
		{"string != number is false", "level != '5'", worker, false},
		{"bool vs string", "available == 'true'", worker, false},
		{"bool equal", "available == true", worker, true},
		{"bool order false", "available > false", worker, false},
		{"scalar op on array", "skills == 'support'", worker, false},
		{"scalar != on array", "skills != 'support'", worker, false},
		{"array op on two scalars HAS", "name HAS 'Alice Smith'", worker, false},
		{"array op on two scalars IN", "name IN 'Alice Smith'", worker, false},
		{"array op on two scalars NOT IN", "name NOT IN 'x'", worker, false},
		{"array IN array", "skills IN ['support']", worker, false},
		{"HAS array literal on right", "skills HAS ['support']", worker, false},
		{"NOT IN missing array", "id NOT IN missing", worker, false},
		{"object equals", "routing == routing", worker, false},
		{"object != null", "routing != null", worker, true},
		{"nested array element not equal", "queues HAS 'nested'", worker, false},
		{"string order", "name > 'Aaron' AND name < 'Bob'", worker, true},
		{"number vs string order", "level < 'z'", worker, false},
		{"null order", "missing < 1 OR missing >= 1", worker, false},
		{"numbers float int", "1.0 == 1 AND 3.141529 > 3", nil, true},
		{"negative and exponent", "-1.5e2 == -150 AND 1E3 == 1000", nil, true},
		{"missing top-level with nil env", "a == 1", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			if got := e.Eval(tt.env); got != tt.want {
				t.Errorf("Parse(%q).Eval() = %v, want %v", tt.src, got, tt.want)
			}
			if got := e.String(); got != tt.src {
				t.Errorf("String() = %q, want %q", got, tt.src)
			}
		})
	}
}

// TestEvalGoTypes checks environments built in Go rather than by
// encoding/json, which other packages use in tests and the simulator.
func TestEvalGoTypes(t *testing.T) {
	env := map[string]any{
		"i":      7,
		"i64":    int64(7),
		"u8":     uint8(7),
		"f32":    float32(0.5),
		"num":    json.Number("7"),
		"badnum": json.Number("seven"),
		"strs":   []string{"a", "b"},
		"floats": []float64{1, 2},
		"ints":   []int{1, 2},
		"int64s": []int64{3},
		"bools":  []bool{true},
		"labels": map[string]string{"team": "blue"},
		"obj":    struct{}{},
	}
	tests := []struct {
		src  string
		want bool
	}{
		{"i == 7 AND i64 == 7 AND u8 == 7 AND num == 7 AND i == num", true},
		{"f32 == 0.5", true},
		{"badnum == 'seven'", true},
		{"strs HAS 'b' AND 'a' IN strs AND strs[1] == 'b'", true},
		{"strs HAS 1", false},
		{"strs[5] == null AND strs[0].x == null", true},
		{"floats HAS 2 AND 1 IN floats AND floats[0] == 1", true},
		{"ints HAS 2 AND ints[1] == 2 AND int64s HAS 3 AND int64s[0] == 3", true},
		{"ints HAS '2'", false},
		{"bools HAS true AND bools[0] == true", true},
		{"labels.team == 'blue' AND labels.other == null AND labels.team.x == null", true},
		{"obj != null AND obj == obj", false},
		{"obj != null", true},
		{"i CONTAINS 7", true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			if got := MustParse(tt.src).Eval(env); got != tt.want {
				t.Errorf("Eval(%q) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestEvalNaN(t *testing.T) {
	nan := 0.0
	nan /= nan
	env := map[string]any{"x": nan}
	for _, src := range []string{"x == x", "x < 1", "x >= 1", "x <= x"} {
		if MustParse(src).Eval(env) {
			t.Errorf("Eval(%q) with NaN = true, want false", src)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	deep := strings.Repeat("(", maxDepth+1) + "a==1" + strings.Repeat(")", maxDepth+1)
	tests := []struct {
		src     string
		pos     int
		msgPart string
	}{
		{"", 0, "empty expression"},
		{"   ", 3, "empty expression"},
		{"a ==", 4, "expected a key, string"},
		{"a = = 1", 4, "expected a key, string"},
		{"skill-level > 3", 5, "hyphens are not allowed"},
		{"worker.skill-level > 3", 12, "hyphens are not allowed"},
		{"a == -", 5, "hyphens are not allowed"},
		{"a == 'x", 5, "unterminated string"},
		{`a == "x\"`, 5, "unterminated string"},
		{"a == 'x''", 8, "unterminated string"},
		{"a == 1 AND", 10, "found end of expression"},
		{"a == 1 AND AND b", 11, `found "AND"`},
		{"(a == 1", 7, "expected ')' to close '(' at position 0"},
		{"a == 1)", 6, "unmatched ')'"},
		{"NOT a == 1", 0, "NOT is only allowed as part of NOT IN"},
		{"a NOT HAS 'x'", 2, "NOT is only allowed as part of NOT IN"},
		{"a b", 2, `expected an operator`},
		{"a", 1, "found end of expression"},
		{"(a) == 1", 2, "expected an operator"},
		{"a == 1 b == 2", 7, `expected AND, OR or end of expression, found "b"`},
		{"a == 1 == 2", 7, "expected AND, OR"},
		{"a ! b", 2, "use != or NOT IN"},
		{"a == 1.2.3", 5, "malformed number"},
		{"a == 1.x", 5, "'.' must be followed by a digit"},
		{"a == 12abc", 5, `malformed number "12a"`},
		{"a == 1e", 5, "malformed number"},
		{"a.  == 1", 1, "expected a name after '.'"},
		{"a.1 == 1", 1, "expected a name after '.'"},
		{"a[x] == 1", 1, `found "["`},
		{"a[1 == 1", 1, "array index"},
		{"a[99999999999] == 1", 2, "too large"},
		{"a IN [b]", 6, "array elements must be"},
		{"a IN [[1]]", 6, "array elements must be"},
		{"a IN [1 2]", 8, "expected ',' or ']' in array starting at position 5"},
		{"a IN [1,", 8, "found end of expression"},
		{"a IN [1,]", 8, `found "]"`},
		{"a == 1e999", 5, "out of range"},
		{"a == #", 5, "unexpected character '#'"},
		{"a == 1 && b == 2", 7, "unexpected character '&'"},
		{"a == 1 || b == 2", 7, "unexpected character '|'"},
		{"a === 1", 4, "expected a key"},
		{"a HAS", 5, "found end of expression"},
		{"AND == 1", 0, `found "AND"`},
		{"true.x == 1", 4, "unexpected character '.'"},
		{deep, maxDepth, "nested more than"},
		{"a == 'ok' AND é == \x00", 20, "unexpected character"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.src, e.canonical())
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T %v, want *SyntaxError", tt.src, err, err)
			}
			if se.Pos != tt.pos || !strings.Contains(se.Msg, tt.msgPart) {
				t.Errorf("Parse(%q) error = {Pos: %d, Msg: %q}, want Pos %d and Msg containing %q", tt.src, se.Pos, se.Msg, tt.pos, tt.msgPart)
			}
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Parse("a == 'x")
	want := "expression syntax error at position 5: unterminated string"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse of an invalid expression did not panic")
		}
	}()
	MustParse("a ==")
}

func TestNilExpr(t *testing.T) {
	var e *Expr
	if e.Eval(map[string]any{}) || e.String() != "" {
		t.Error("nil *Expr should be false with empty source")
	}
}

func TestStringEscapes(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{`s == "a\"b"`, `a"b`},
		{`s == 'a\'b'`, `a'b`},
		{`s == 'a"b'`, `a"b`},
		{`s == "a\\b"`, `a\b`},
		{`s == "a\nb"`, `a\nb`}, // unknown escapes keep the backslash
		{`s == ""`, ``},
		{`s == 'héllo'`, `héllo`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			if !MustParse(tt.src).Eval(map[string]any{"s": tt.want}) {
				t.Errorf("%s did not match %q", tt.src, tt.want)
			}
		})
	}
}

// TestCanonical checks the tree the parser builds, through its printed form.
func TestCanonical(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"1==1", "1 == 1"},
		{"a = 'x'", `a == "x"`},
		{"a OR b==1 AND c==2", ""}, // invalid: a has no operator
		{"a==1 OR b==1 AND c==2", "a == 1 OR (b == 1 AND c == 2)"},
		{"(a==1 OR b==1) AND c==2", "(a == 1 OR b == 1) AND c == 2"},
		{"a==1 AND b==1 AND c==1 OR d==1", "(a == 1 AND b == 1 AND c == 1) OR d == 1"},
		{"x not IN [1, 'a', true, null]", `x NOT IN [1, "a", true, null]`},
		{"a.b[2].c contains 'q\"'", `a.b[2].c CONTAINS "q\""`},
		{"n > 1e21", "n > 1e+21"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			e, err := Parse(tt.src)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Parse(%q) succeeded, want error", tt.src)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.canonical(); got != tt.want {
				t.Errorf("canonical(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

// TestEvalDoesNotAllocate guards the hot path: the simulator evaluates every
// queue expression against every worker on each change.
func TestEvalDoesNotAllocate(t *testing.T) {
	for _, src := range benchExprs {
		e := MustParse(src.src)
		env := src.env()
		if n := testing.AllocsPerRun(100, func() { e.Eval(env) }); n != 0 {
			t.Errorf("Eval(%q) allocates %v times per run, want 0", src.src, n)
		}
	}
}

var benchExprs = []struct {
	name string
	src  string
	env  func() map[string]any
}{
	{"queue", "(skills HAS 'support') AND (languages HAS 'english') AND level >= 3", workerAttrs},
	{"filter", `customer_value == 'Gold' AND type == "Support" AND language IN ["en","es","fr"]`, taskAttrs},
	{"target", "task.required_language IN worker.spoken_languages AND worker.id IN task.preferred_agents AND worker.routing.levels.voice > 2", targetEnv},
	{"skip_if", "workers.available == 0 OR workers.WA1 < 2", func() map[string]any { return skipEnv(1) }},
	{"catchall", "1==1", func() map[string]any { return nil }},
}

func BenchmarkEval(b *testing.B) {
	for _, bb := range benchExprs {
		b.Run(bb.name, func(b *testing.B) {
			e := MustParse(bb.src)
			env := bb.env()
			b.ReportAllocs()
			for b.Loop() {
				e.Eval(env)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	src := benchExprs[2].src
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
