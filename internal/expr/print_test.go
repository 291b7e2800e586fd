package expr

import (
	"strconv"
	"strings"
)

// canonical prints the parsed tree back as source. The fuzz target uses it
// to check that the parser and the tree agree: printing, parsing and printing
// again must give the same text. Every nested AND/OR is parenthesised so the
// text reproduces the tree's exact shape.
func (n *node) canonical(b *strings.Builder) {
	switch n.kind {
	case nodeAnd, nodeOr:
		sep := " AND "
		if n.kind == nodeOr {
			sep = " OR "
		}
		for i, c := range n.children {
			if i > 0 {
				b.WriteString(sep)
			}
			if c.kind == nodeCmp {
				c.canonical(b)
				continue
			}
			b.WriteByte('(')
			c.canonical(b)
			b.WriteByte(')')
		}
		return
	}
	n.lhs.canonical(b)
	b.WriteByte(' ')
	b.WriteString(opNames[n.op])
	b.WriteByte(' ')
	n.rhs.canonical(b)
}

func (o operand) canonical(b *strings.Builder) {
	if o.path == nil {
		o.val.canonical(b)
		return
	}
	for i, s := range o.path {
		switch {
		case s.isIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		case i > 0:
			b.WriteByte('.')
			b.WriteString(s.name)
		default:
			b.WriteString(s.name)
		}
	}
}

func (v value) canonical(b *strings.Builder) {
	switch v.kind {
	case kindNull:
		b.WriteString("null")
	case kindBool:
		b.WriteString(strconv.FormatBool(v.b))
	case kindNumber:
		b.WriteString(strconv.FormatFloat(v.num, 'g', -1, 64))
	case kindString:
		b.WriteByte('"')
		for i := 0; i < len(v.str); i++ {
			if c := v.str[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v.str[i])
		}
		b.WriteByte('"')
	case kindArray:
		b.WriteByte('[')
		for i, e := range v.raw.([]value) {
			if i > 0 {
				b.WriteString(", ")
			}
			e.canonical(b)
		}
		b.WriteByte(']')
	}
}

func (e *Expr) canonical() string {
	var b strings.Builder
	e.root.canonical(&b)
	return b.String()
}
