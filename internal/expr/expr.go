// Package expr parses and evaluates Twilio TaskRouter's expression language:
// the language of task queue target_workers, workflow filter expressions,
// workflow target expressions and skip_if
// (https://www.twilio.com/docs/taskrouter/expression-syntax).
//
// An expression is parsed once with Parse and then evaluated many times with
// Eval against an environment of JSON-decoded attributes. Evaluation never
// fails: following TaskRouter, an operator applied to values of the wrong
// shape (an array where a scalar is expected, a string compared with a
// number) is simply false, and a missing key is null.
//
// Grammar (keywords are case-insensitive):
//
//	expr       = and { "OR" and }
//	and        = primary { "AND" primary }
//	primary    = "(" expr ")" | operand op operand
//	op         = "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
//	           | "CONTAINS" | "HAS" | "IN" | "NOT" "IN"
//	operand    = string | number | "true" | "false" | "null" | key | array
//	key        = name { "." name | "[" digits "]" }
//	array      = "[" [ constant { "," constant } ] "]"
//
// AND binds tighter than OR. NOT exists only as part of NOT IN, as in
// TaskRouter. A lone "=" is accepted as "==" because Twilio's own
// time-of-day examples use it.
package expr

import (
	"fmt"
)

// Expr is a compiled TaskRouter expression. It is immutable after Parse and
// safe for concurrent use by many goroutines.
type Expr struct {
	src  string
	root *node
}

// SyntaxError reports why and where an expression failed to parse.
type SyntaxError struct {
	// Pos is the byte offset into the source at which the problem was found.
	Pos int
	// Msg describes the problem for a person editing the expression.
	Msg string
}

// Error implements error, naming the byte position so a user can find the
// fault in a long expression.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("expression syntax error at position %d: %s", e.Pos, e.Msg)
}

// Parse compiles src. Errors are always of type *SyntaxError.
func Parse(src string) (*Expr, error) {
	p := &parser{src: src}
	root, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	return &Expr{src: src, root: root}, nil
}

// MustParse is like Parse but panics on error. It is meant for expressions
// that are constants in the program, such as the default "1==1".
func MustParse(src string) *Expr {
	e, err := Parse(src)
	if err != nil {
		panic(fmt.Sprintf("expr.MustParse(%q): %v", src, err))
	}
	return e
}

// String returns the source the expression was parsed from, unchanged, so it
// can be written back to Twilio or shown to a user exactly as they wrote it.
func (e *Expr) String() string {
	if e == nil {
		return ""
	}
	return e.src
}

// Eval reports whether the expression is true for env.
//
// env maps top-level names to values as decoded by encoding/json
// (map[string]any, []any, string, float64, bool, nil); int, int64, other Go
// integer and float types, json.Number, []string, []float64, []int and
// map[string]string are accepted too, for environments built in Go. Which
// names are at the top level depends on where the expression is used: a
// worker's attributes for a queue's target_workers, a task's attributes for a
// workflow filter, {"task": ..., "worker": ...} for a target expression and
// {"workers": {"available": n, ...}} for skip_if.
//
// A nil *Expr is false.
func (e *Expr) Eval(env map[string]any) bool {
	if e == nil || e.root == nil {
		return false
	}
	return e.root.eval(env)
}
