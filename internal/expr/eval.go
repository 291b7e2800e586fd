package expr

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

type nodeKind uint8

const (
	nodeCmp nodeKind = iota
	nodeAnd
	nodeOr
)

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opContains
	opHas
	opIn
	opNotIn
)

var opNames = [...]string{
	opEq: "==", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=",
	opContains: "CONTAINS", opHas: "HAS", opIn: "IN", opNotIn: "NOT IN",
}

// node is either a comparison or an n-ary AND/OR.
type node struct {
	kind     nodeKind
	children []*node
	op       cmpOp
	lhs, rhs operand
}

// operand is a key path resolved at evaluation time, or a constant.
type operand struct {
	path []segment // nil for a constant
	val  value
}

// segment is one step of a key path: a name, or an array index.
type segment struct {
	name    string
	index   int
	isIndex bool
}

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject // a JSON object, or any Go value of a type we do not know
)

// value is a JSON value unpacked just enough to compare it, without boxing:
// building one from an attribute never allocates.
type value struct {
	kind kind
	b    bool
	num  float64
	str  string // string value; for number constants, the text CONTAINS uses
	raw  any    // for arrays: the slice ([]any, []string, ..., or []value for literals)
}

func (v value) scalar() bool { return v.kind <= kindString }

func (n *node) eval(env map[string]any) bool {
	switch n.kind {
	case nodeAnd:
		for _, c := range n.children {
			if !c.eval(env) {
				return false
			}
		}
		return true
	case nodeOr:
		for _, c := range n.children {
			if c.eval(env) {
				return true
			}
		}
		return false
	}
	return compare(n.op, n.lhs.resolve(env), n.rhs.resolve(env))
}

// compare applies TaskRouter's rules: scalar operators on arrays are false,
// array operators on two scalars are false, and values of different types
// are unequal and unordered (numbers of any Go type count as one type).
func compare(op cmpOp, l, r value) bool {
	switch op {
	case opEq:
		return equal(l, r)
	case opNe:
		// "x != null" is how TaskRouter users test that an attribute is
		// present (the seed's "disconnectedWorkerSid != null"), so it holds
		// for any present value, arrays and objects included; symmetrically a
		// missing attribute differs from every present value.
		if l.kind == kindNull || r.kind == kindNull {
			return l.kind != r.kind
		}
		return l.scalar() && l.kind == r.kind && !equal(l, r)
	case opLt, opLe, opGt, opGe:
		var c int
		switch {
		case l.kind == kindNumber && r.kind == kindNumber:
			switch {
			case l.num < r.num:
				c = -1
			case l.num > r.num:
				c = 1
			case l.num != r.num: // NaN is unordered
				return false
			}
		case l.kind == kindString && r.kind == kindString:
			c = strings.Compare(l.str, r.str)
		default:
			return false
		}
		switch op {
		case opLt:
			return c < 0
		case opLe:
			return c <= 0
		case opGt:
			return c > 0
		default:
			return c >= 0
		}
	case opContains:
		ls, ok := text(l)
		if !ok {
			return false
		}
		rs, ok := text(r)
		return ok && strings.Contains(ls, rs)
	case opHas:
		return l.kind == kindArray && r.scalar() && arrayHas(l.raw, r)
	case opIn:
		return l.scalar() && r.kind == kindArray && arrayHas(r.raw, l)
	case opNotIn:
		// Like IN, the operands must be a scalar and an array, else false:
		// "NOT IN" on a missing array does not match everything.
		return l.scalar() && r.kind == kindArray && !arrayHas(r.raw, l)
	}
	return false
}

// equal is scalar equality; arrays and objects are never equal to anything.
func equal(l, r value) bool {
	if l.kind != r.kind {
		return false
	}
	switch l.kind {
	case kindNull:
		return true
	case kindBool:
		return l.b == r.b
	case kindNumber:
		return l.num == r.num
	case kindString:
		return l.str == r.str
	}
	return false
}

// text is the string CONTAINS searches: strings as they are, numbers in
// plain decimal so that a phone number stored as a number still matches a
// prefix.
func text(v value) (string, bool) {
	switch v.kind {
	case kindString:
		return v.str, true
	case kindNumber:
		if v.str != "" { // precomputed for constants
			return v.str, true
		}
		return strconv.FormatFloat(v.num, 'f', -1, 64), true
	}
	return "", false
}

// arrayHas reports whether the array holds an element equal to target.
func arrayHas(raw any, target value) bool {
	switch a := raw.(type) {
	case []value:
		for _, v := range a {
			if equal(v, target) {
				return true
			}
		}
	case []any:
		for _, x := range a {
			if equal(fromAny(x), target) {
				return true
			}
		}
	case []string:
		return target.kind == kindString && slices.Contains(a, target.str)
	case []float64:
		return target.kind == kindNumber && slices.Contains(a, target.num)
	case []int:
		if target.kind == kindNumber {
			for _, x := range a {
				if float64(x) == target.num {
					return true
				}
			}
		}
	case []int64:
		if target.kind == kindNumber {
			for _, x := range a {
				if float64(x) == target.num {
					return true
				}
			}
		}
	case []bool:
		return target.kind == kindBool && slices.Contains(a, target.b)
	}
	return false
}

// resolve looks up a key path; anything missing along the way is null, as in
// TaskRouter.
func (o *operand) resolve(env map[string]any) value {
	if o.path == nil {
		return o.val
	}
	cur, ok := env[o.path[0].name]
	if !ok {
		return value{}
	}
	rest := o.path[1:]
	for i, seg := range rest {
		last := i == len(rest)-1
		if seg.isIndex {
			if a, ok := cur.([]any); ok {
				if seg.index >= len(a) {
					return value{}
				}
				cur = a[seg.index]
				continue
			}
			// Typed slices hold scalars, which have no children; returning
			// the element directly avoids boxing it back into an any.
			if !last {
				return value{}
			}
			return indexTyped(cur, seg.index)
		}
		switch m := cur.(type) {
		case map[string]any:
			if cur, ok = m[seg.name]; !ok {
				return value{}
			}
		case map[string]string:
			s, ok := m[seg.name]
			if !ok || !last {
				return value{}
			}
			return value{kind: kindString, str: s}
		default:
			return value{}
		}
	}
	return fromAny(cur)
}

func indexTyped(raw any, i int) value {
	switch a := raw.(type) {
	case []string:
		if i < len(a) {
			return value{kind: kindString, str: a[i]}
		}
	case []float64:
		if i < len(a) {
			return value{kind: kindNumber, num: a[i]}
		}
	case []int:
		if i < len(a) {
			return value{kind: kindNumber, num: float64(a[i])}
		}
	case []int64:
		if i < len(a) {
			return value{kind: kindNumber, num: float64(a[i])}
		}
	case []bool:
		if i < len(a) {
			return value{kind: kindBool, b: a[i]}
		}
	}
	return value{}
}

// fromAny unpacks a decoded attribute. Integers lose precision beyond 2^53,
// as they do in JSON decoding and in TaskRouter's own JavaScript-like
// numbers.
func fromAny(x any) value {
	switch v := x.(type) {
	case nil:
		return value{}
	case string:
		return value{kind: kindString, str: v}
	case bool:
		return value{kind: kindBool, b: v}
	case float64:
		return value{kind: kindNumber, num: v}
	case int:
		return value{kind: kindNumber, num: float64(v)}
	case int64:
		return value{kind: kindNumber, num: float64(v)}
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			// Not a number after all (json.Number does not validate when
			// built by hand); compare it as the text it is.
			return value{kind: kindString, str: string(v)}
		}
		return value{kind: kindNumber, num: f}
	case float32:
		return value{kind: kindNumber, num: float64(v)}
	case int32:
		return value{kind: kindNumber, num: float64(v)}
	case int16:
		return value{kind: kindNumber, num: float64(v)}
	case int8:
		return value{kind: kindNumber, num: float64(v)}
	case uint:
		return value{kind: kindNumber, num: float64(v)}
	case uint64:
		return value{kind: kindNumber, num: float64(v)}
	case uint32:
		return value{kind: kindNumber, num: float64(v)}
	case uint16:
		return value{kind: kindNumber, num: float64(v)}
	case uint8:
		return value{kind: kindNumber, num: float64(v)}
	case []any, []string, []float64, []int, []int64, []bool:
		return value{kind: kindArray, raw: v}
	}
	return value{kind: kindObject}
}
