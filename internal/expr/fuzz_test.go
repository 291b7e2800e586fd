package expr

import (
	"errors"
	"testing"
)

// fuzzEnvs give the fuzzer's expressions something to find: short keys of
// every JSON shape, plus the environments of the table tests.
func fuzzEnvs() []map[string]any {
	short := map[string]any{
		"a": "x", "b": 1.0, "c": true, "d": nil,
		"e": []any{"x", 1.0, true, nil, []any{"y"}, map[string]any{"a": "x"}},
		"f": map[string]any{"a": []any{"x"}, "b": map[string]any{"c": 2.0}},
		"g": []string{"x"}, "h": []int{1}, "i": map[string]string{"a": "x"},
	}
	return []map[string]any{nil, short, workerAttrs(), taskAttrs(), targetEnv(), skipEnv(0), timeEnv(930, "Sat")}
}

// FuzzParse checks that Parse never panics and always reports a position
// inside the source, and that a parsed expression prints, re-parses to the
// same tree and evaluates identically without panicking.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"1==1", "a == 'x'", `a IN ["x", 1, true, null]`, "e HAS 1 OR e HAS null",
		"f.b.c >= 2 AND (f.a HAS 'x' OR a CONTAINS 'x')", "e[4][0] == 'y' AND e[5].a != null",
		"g[0] == 'x' AND h HAS 1 AND i.a = \"x\"", "b NOT IN [2, 3]", "a < 'y' AND b <= -1.5e3",
		`s == 'a\'b\\c"d'`, "((a == 1))", "skill-level > 1", "NOT a == 1", "a[99999999999] == 1",
	}
	for _, b := range benchExprs {
		seeds = append(seeds, b.src)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	envs := fuzzEnvs()
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) returned %T, want *SyntaxError", src, err)
			}
			if se.Pos < 0 || se.Pos > len(src) {
				t.Fatalf("Parse(%q) error position %d outside [0, %d]", src, se.Pos, len(src))
			}
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want the source %q", e.String(), src)
		}
		printed := e.canonical()
		again, err := Parse(printed)
		if err != nil {
			t.Fatalf("Parse(%q) ok but its printed form %q fails: %v", src, printed, err)
		}
		if p2 := again.canonical(); p2 != printed {
			t.Fatalf("print(parse(%q)) = %q, want %q", printed, p2, printed)
		}
		for _, env := range envs {
			if got, want := again.Eval(env), e.Eval(env); got != want {
				t.Fatalf("Eval differs after round trip: %q = %v, %q = %v", src, want, printed, got)
			}
		}
	})
}
