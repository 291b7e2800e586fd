package expr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxDepth bounds parenthesis nesting. Expressions come from users and from
// Twilio, so a hostile "((((..." must fail cleanly rather than exhaust the
// stack; real expressions nest a handful of levels at most.
const maxDepth = 100

// maxIndex bounds array indexes so that an index always fits an int on any
// platform and a typo such as a[99999999999999999999] is reported, not
// silently treated as out of range.
const maxIndex = 1<<31 - 1

type tokKind uint8

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tString
	tNumber
	tKey
	tTrue
	tFalse
	tNull
	tAnd
	tOr
	tNot
	tHas
	tIn
	tContains
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
)

// keywords are recognised case-insensitively, and only as a whole first
// name: "task.in" is a key, "IN" is the operator.
var keywords = []struct {
	word string
	kind tokKind
}{
	{"AND", tAnd}, {"OR", tOr}, {"NOT", tNot}, {"HAS", tHas}, {"IN", tIn},
	{"CONTAINS", tContains}, {"TRUE", tTrue}, {"FALSE", tFalse}, {"NULL", tNull},
}

type token struct {
	kind tokKind
	pos  int // byte offset of the first byte
	end  int // byte offset just past the last byte
	str  string
	num  float64
	path []segment
}

type parser struct {
	src   string
	off   int // scan offset of the next token
	tok   token
	depth int
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// describe names the current token for error messages, quoting the source
// text so the user sees exactly what the parser saw.
func (p *parser) describe() string {
	if p.tok.kind == tEOF {
		return "end of expression"
	}
	return strconv.Quote(p.src[p.tok.pos:p.tok.end])
}

func (p *parser) parseExpr() (*node, error) {
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, p.errorf(p.tok.pos, "empty expression")
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tEOF:
		return root, nil
	case tRParen:
		return nil, p.errorf(p.tok.pos, "unmatched ')'")
	default:
		return nil, p.errorf(p.tok.pos, "expected AND, OR or end of expression, found %s", p.describe())
	}
}

func (p *parser) parseOr() (*node, error) {
	return p.parseList(tOr, nodeOr, p.parseAnd)
}

func (p *parser) parseAnd() (*node, error) {
	return p.parseList(tAnd, nodeAnd, p.parsePrimary)
}

// parseList parses sub { sep sub } into one n-ary node, so that a long chain
// of ANDs or ORs evaluates in a loop instead of deep recursion.
func (p *parser) parseList(sep tokKind, kind nodeKind, sub func() (*node, error)) (*node, error) {
	first, err := sub()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != sep {
		return first, nil
	}
	n := &node{kind: kind, children: []*node{first}}
	for p.tok.kind == sep {
		if err := p.next(); err != nil {
			return nil, err
		}
		c, err := sub()
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
	return n, nil
}

func (p *parser) parsePrimary() (*node, error) {
	if p.tok.kind == tLParen {
		open := p.tok.pos
		if p.depth >= maxDepth {
			return nil, p.errorf(open, "parentheses nested more than %d deep", maxDepth)
		}
		p.depth++
		if err := p.next(); err != nil {
			return nil, err
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errorf(p.tok.pos, "expected ')' to close '(' at position %d, found %s", open, p.describe())
		}
		p.depth--
		if err := p.next(); err != nil {
			return nil, err
		}
		return n, nil
	}
	lhs, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	op, err := p.parseOp()
	if err != nil {
		return nil, err
	}
	rhs, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	return &node{kind: nodeCmp, op: op, lhs: lhs, rhs: rhs}, nil
}

func (p *parser) parseOp() (cmpOp, error) {
	var op cmpOp
	switch p.tok.kind {
	case tEq:
		op = opEq
	case tNe:
		op = opNe
	case tLt:
		op = opLt
	case tLe:
		op = opLe
	case tGt:
		op = opGt
	case tGe:
		op = opGe
	case tContains:
		op = opContains
	case tHas:
		op = opHas
	case tIn:
		op = opIn
	case tNot:
		notPos := p.tok.pos
		if err := p.next(); err != nil {
			return 0, err
		}
		if p.tok.kind != tIn {
			// TaskRouter has no general negation; say so rather than
			// "unexpected token", since users often try NOT x HAS y.
			return 0, p.errorf(notPos, "NOT is only allowed as part of NOT IN")
		}
		op = opNotIn
	default:
		return 0, p.errorf(p.tok.pos, "expected an operator (==, !=, <, <=, >, >=, CONTAINS, HAS, IN, NOT IN), found %s", p.describe())
	}
	return op, p.next()
}

func (p *parser) parseOperand() (operand, error) {
	if p.tok.kind == tKey {
		o := operand{path: p.tok.path}
		return o, p.next()
	}
	if p.tok.kind == tLBrack {
		return p.parseArray()
	}
	v, ok := p.constant()
	if !ok {
		if p.tok.kind == tNot {
			return operand{}, p.errorf(p.tok.pos, "NOT is only allowed as part of NOT IN")
		}
		return operand{}, p.errorf(p.tok.pos, "expected a key, string, number, true, false, null or array, found %s", p.describe())
	}
	return operand{val: v}, p.next()
}

// constant converts the current token to a value if it is a scalar literal.
func (p *parser) constant() (value, bool) {
	switch p.tok.kind {
	case tString:
		return value{kind: kindString, str: p.tok.str}, true
	case tNumber:
		return numberValue(p.tok.num), true
	case tTrue:
		return value{kind: kindBool, b: true}, true
	case tFalse:
		return value{kind: kindBool}, true
	case tNull:
		return value{}, true
	}
	return value{}, false
}

// numberValue makes a number constant whose text form, used by CONTAINS, is
// computed once here instead of on every evaluation.
func numberValue(f float64) value {
	return value{kind: kindNumber, num: f, str: strconv.FormatFloat(f, 'f', -1, 64)}
}

func (p *parser) parseArray() (operand, error) {
	open := p.tok.pos
	if err := p.next(); err != nil {
		return operand{}, err
	}
	elems := []value{}
	if p.tok.kind != tRBrack {
		for {
			v, ok := p.constant()
			if !ok {
				return operand{}, p.errorf(p.tok.pos, "array elements must be strings, numbers, true, false or null, found %s", p.describe())
			}
			elems = append(elems, v)
			if err := p.next(); err != nil {
				return operand{}, err
			}
			if p.tok.kind == tRBrack {
				break
			}
			if p.tok.kind != tComma {
				return operand{}, p.errorf(p.tok.pos, "expected ',' or ']' in array starting at position %d, found %s", open, p.describe())
			}
			if err := p.next(); err != nil {
				return operand{}, err
			}
		}
	}
	return operand{val: value{kind: kindArray, raw: elems}}, p.next()
}

// next scans the token that starts at p.off into p.tok.
func (p *parser) next() error {
	src := p.src
	i := p.off
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	p.tok = token{pos: i, end: i}
	if i >= len(src) {
		p.tok.kind = tEOF
		p.off = i
		return nil
	}
	end, err := p.scan(i)
	if err != nil {
		return err
	}
	p.tok.end = end
	p.off = end
	return nil
}

// scan recognises the token starting at i and returns its end offset.
func (p *parser) scan(i int) (int, error) {
	src := p.src
	two := func(k1, k2 tokKind) int {
		if i+1 < len(src) && src[i+1] == '=' {
			p.tok.kind = k2
			return i + 2
		}
		p.tok.kind = k1
		return i + 1
	}
	switch c := src[i]; {
	case c == '(':
		p.tok.kind = tLParen
		return i + 1, nil
	case c == ')':
		p.tok.kind = tRParen
		return i + 1, nil
	case c == '[':
		p.tok.kind = tLBrack
		return i + 1, nil
	case c == ']':
		p.tok.kind = tRBrack
		return i + 1, nil
	case c == ',':
		p.tok.kind = tComma
		return i + 1, nil
	case c == '=':
		// "=" alone is lenient "==": Twilio's time-of-day docs use it.
		return two(tEq, tEq), nil
	case c == '<':
		return two(tLt, tLe), nil
	case c == '>':
		return two(tGt, tGe), nil
	case c == '!':
		if i+1 < len(src) && src[i+1] == '=' {
			p.tok.kind = tNe
			return i + 2, nil
		}
		return 0, p.errorf(i, "unexpected '!': use != or NOT IN")
	case c == '"' || c == '\'':
		return p.scanString(i)
	case c == '-' || isDigit(c):
		return p.scanNumber(i)
	}
	if r, _ := utf8.DecodeRuneInString(src[i:]); isNameStart(r) {
		return p.scanKey(i)
	}
	r, _ := utf8.DecodeRuneInString(src[i:])
	return 0, p.errorf(i, "unexpected character %q", r)
}

// scanString reads a string in single or double quotes. A backslash escapes
// a quote or another backslash; before any other character it is kept, so a
// regular expression or Windows path pasted into a string stays intact.
func (p *parser) scanString(start int) (int, error) {
	src := p.src
	q := src[start]
	i := start + 1
	var b *strings.Builder
	from := i
	for i < len(src) {
		c := src[i]
		if c == q {
			if b == nil {
				p.tok.str = src[from:i]
			} else {
				b.WriteString(src[from:i])
				p.tok.str = b.String()
			}
			p.tok.kind = tString
			return i + 1, nil
		}
		if c == '\\' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\'' || src[i+1] == '\\') {
			if b == nil {
				b = &strings.Builder{}
			}
			b.WriteString(src[from:i])
			b.WriteByte(src[i+1])
			i += 2
			from = i
			continue
		}
		i++
	}
	return 0, p.errorf(start, "unterminated string")
}

// scanNumber reads -?digits[.digits][(e|E)[+-]digits].
func (p *parser) scanNumber(start int) (int, error) {
	src := p.src
	i := start
	if src[i] == '-' {
		i++
		if i >= len(src) || !isDigit(src[i]) {
			// Hyphens appear in users' keys (skill-level) more often than as
			// a stray minus; TaskRouter rejects both.
			return 0, p.errorf(start, "unexpected '-': hyphens are not allowed in keys and '-' must be followed by a digit in a number")
		}
	}
	digits := func() {
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	digits()
	if i < len(src) && src[i] == '.' {
		i++
		if i >= len(src) || !isDigit(src[i]) {
			return 0, p.errorf(start, "malformed number: '.' must be followed by a digit")
		}
		digits()
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			i = j
			digits()
		}
	}
	if i < len(src) {
		if r, _ := utf8.DecodeRuneInString(src[i:]); src[i] == '.' || isNamePart(r) {
			return 0, p.errorf(start, "malformed number %q", src[start:i+utf8.RuneLen(r)])
		}
	}
	f, err := strconv.ParseFloat(src[start:i], 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, p.errorf(start, "number %s is out of range", src[start:i])
		}
		return 0, p.errorf(start, "malformed number %q", src[start:i])
	}
	p.tok.kind = tNumber
	p.tok.num = f
	return i, nil
}

// scanKey reads a keyword or a key path such as a.b[2].c.
func (p *parser) scanKey(start int) (int, error) {
	src := p.src
	i := scanName(src, start)
	first := src[start:i]
	for _, kw := range keywords {
		if strings.EqualFold(first, kw.word) {
			p.tok.kind = kw.kind
			return i, nil
		}
	}
	path := []segment{{name: first}}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '.':
			if i+1 < len(src) {
				if r, _ := utf8.DecodeRuneInString(src[i+1:]); isNameStart(r) {
					j := scanName(src, i+1)
					path = append(path, segment{name: src[i+1 : j]})
					i = j
					continue
				}
			}
			return 0, p.errorf(i, "expected a name after '.' in key %q", src[start:i])
		case c == '[' && i+1 < len(src) && isDigit(src[i+1]):
			j := i + 1
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j >= len(src) || src[j] != ']' {
				return 0, p.errorf(i, "array index must be a non-negative integer followed by ']'")
			}
			idx, err := strconv.Atoi(src[i+1 : j])
			if err != nil || idx > maxIndex {
				return 0, p.errorf(i+1, "array index %s is too large", src[i+1:j])
			}
			path = append(path, segment{index: idx, isIndex: true})
			i = j + 1
			continue
		case c == '-' && i+1 < len(src):
			if r, _ := utf8.DecodeRuneInString(src[i+1:]); isNamePart(r) {
				return 0, p.errorf(i, "hyphens are not allowed in keys (TaskRouter does not support them)")
			}
		}
		break
	}
	p.tok.kind = tKey
	p.tok.path = path
	return i, nil
}

// scanName returns the end of the name starting at i, whose first rune is
// known to be a valid start.
func scanName(src string, i int) int {
	for i < len(src) {
		r, size := utf8.DecodeRuneInString(src[i:])
		if !isNamePart(r) {
			break
		}
		i += size
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Names may use any Unicode letter because attribute names are arbitrary JSON
// keys; punctuation other than '_' is left out so that operators need no
// surrounding spaces (a==1).
func isNameStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }

func isNamePart(r rune) bool { return isNameStart(r) || unicode.IsDigit(r) }
