package deploy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// promQL parses with Prometheus' own parser, default options: no experimental functions, as a
// Prometheus server that was not asked for them.
var promQL = parser.NewParser(parser.Options{})

// metricSet is what the operator exports, as the checker sees it: each metric's label names, and
// for some labels the only values the code writes.
type metricSet struct {
	labels map[string]map[string]bool
	// values[metric][label] lists the values the code gives that label; a label not here is free.
	values map[string]map[string][]string
}

// targetLabels are added by Prometheus to every series it scrapes (a ServiceMonitor's target).
var targetLabels = []string{"namespace", "pod", "instance", "job", "service", "endpoint", "container"}

// labelSet is the label names an expression's result can carry; nil when that is unknown because a
// problem was already reported below it, so that one mistake is reported once.
type labelSet map[string]bool

func (s labelSet) has(name string) bool { return s == nil || s[name] }

func (s labelSet) names() []string { return slices.Sorted(maps.Keys(s)) }

func setOf(names ...string) labelSet {
	s := labelSet{}
	for _, n := range names {
		s[n] = true
	}
	return s
}

func union(a, b labelSet) labelSet {
	if a == nil || b == nil {
		return nil
	}
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func without(a labelSet, names ...string) labelSet {
	if a == nil {
		return nil
	}
	out := maps.Clone(a)
	for _, n := range names {
		delete(out, n)
	}
	return out
}

// checker checks parsed PromQL against the metrics the operator exports.
type checker struct {
	metrics  metricSet
	problems []string
	// selectors counts the series selectors seen, so a check that saw none can say so.
	selectors int
}

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// check parses one expression and checks every selector, matcher, grouping and matching label in
// it. It returns the label names of the expression's result (nil when it could not tell).
func (c *checker) check(expr string) labelSet {
	e, err := promQL.ParseExpr(expr)
	if err != nil {
		c.fail("does not parse: %v", err)
		return nil
	}
	return c.labels(e)
}

// series finds the metric a series name belongs to: a histogram's _bucket, _sum and _count series
// belong to the histogram, and only _bucket series carry "le".
func (c *checker) series(name string) (metric string, extra []string, ok bool) {
	if _, ok := c.metrics.labels[name]; ok {
		return name, nil, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, found := strings.CutSuffix(name, suffix); found {
			if _, ok := c.metrics.labels[base]; ok {
				if suffix == "_bucket" {
					extra = []string{"le"}
				}
				return base, extra, true
			}
		}
	}
	return "", nil, false
}

// selector checks a series selector: the metric is exported, every matcher names one of its
// labels, and a matcher on a label whose values the code fixes can match one of them.
func (c *checker) selector(vs *parser.VectorSelector) labelSet {
	c.selectors++
	name := vs.Name
	if name == "" {
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
	}
	if name == "" {
		c.fail("selects %s without a metric name", vs)
		return nil
	}
	metric, extra, ok := c.series(name)
	if !ok {
		c.fail("uses %s, which the operator does not export", name)
		return nil
	}
	have := union(setOf(targetLabels...), setOf(extra...))
	for l := range c.metrics.labels[metric] {
		have[l] = true
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			continue
		}
		if !have.has(m.Name) {
			c.fail("matches label %q of %s, which has only %v", m.Name, name, have.names())
			continue
		}
		if values, fixed := c.metrics.values[metric][m.Name]; fixed {
			c.values(name, m, values)
		}
	}
	return have
}

// values checks a matcher against the values the code gives its label: an equality must name one
// of them, and each alternative of a regular expression must match at least one.
func (c *checker) values(series string, m *labels.Matcher, values []string) {
	alternatives := []string{m.Value}
	if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
		alternatives = topLevelAlternatives(m.Value)
	}
	for _, alt := range alternatives {
		probe := m
		if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
			var err error
			if probe, err = labels.NewMatcher(labels.MatchRegexp, m.Name, alt); err != nil {
				c.fail("%s: bad regular expression %q: %v", series, m.Value, err)
				return
			}
		} else {
			probe = labels.MustNewMatcher(labels.MatchEqual, m.Name, alt)
		}
		if !slices.ContainsFunc(values, probe.Matches) {
			c.fail("matches %s %s %q, but the operator only writes %v", series, m.Name, alt, values)
		}
	}
}

// topLevelAlternatives splits a regular expression at the | that are not inside a group or a
// character class, so that "failed|rejected" is checked value by value.
func topLevelAlternatives(re string) []string {
	var out []string
	depth, class, start := 0, false, 0
	for i := 0; i < len(re); i++ {
		switch ch := re[i]; {
		case ch == '\\':
			i++
		case class:
			class = ch != ']'
		case ch == '[':
			class = true
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		case ch == '|' && depth == 0:
			out = append(out, re[start:i])
			start = i + 1
		}
	}
	return append(out, re[start:])
}

// labels walks an expression bottom up and returns the label names its result carries, checking
// on the way that every grouping and matching label exists where it is used.
func (c *checker) labels(e parser.Expr) labelSet {
	switch e := e.(type) {
	case *parser.VectorSelector:
		return c.selector(e)
	case *parser.MatrixSelector:
		return c.labels(e.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(e.Expr)
	case *parser.ParenExpr:
		return c.labels(e.Expr)
	case *parser.UnaryExpr:
		return c.labels(e.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(e.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral, *parser.DurationExpr:
		return labelSet{}
	case *parser.Call:
		return c.call(e)
	case *parser.AggregateExpr:
		return c.aggregate(e)
	case *parser.BinaryExpr:
		return c.binary(e)
	}
	c.fail("uses %T, which this check does not know", e)
	return nil
}

func (c *checker) call(e *parser.Call) labelSet {
	args := make([]labelSet, len(e.Args))
	for i, a := range e.Args {
		args[i] = c.labels(a)
	}
	switch e.Func.Name {
	case "histogram_quantile", "histogram_fraction":
		in := args[len(args)-1]
		if !in.has("le") {
			c.fail("%s over series without le (%v): not a histogram's buckets", e.Func.Name, in.names())
		}
		return without(in, "le")
	case "label_replace", "label_join":
		if dst, ok := e.Args[1].(*parser.StringLiteral); ok {
			return union(args[0], setOf(dst.Val))
		}
		return nil
	}
	if e.Func.ReturnType != parser.ValueTypeVector {
		return labelSet{}
	}
	out := labelSet{}
	for i, a := range e.Args {
		if t := a.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
			out = union(out, args[i])
		}
	}
	return out
}

func (c *checker) aggregate(e *parser.AggregateExpr) labelSet {
	in := c.labels(e.Expr)
	if e.Param != nil {
		c.labels(e.Param)
	}
	for _, g := range e.Grouping {
		if !in.has(g) {
			c.fail("%s groups by %q, which %s does not have (only %v)", e.Op, g, e.Expr, in.names())
		}
	}
	switch {
	case e.Op == parser.TOPK || e.Op == parser.BOTTOMK || e.Op == parser.LIMITK || e.Op == parser.LIMIT_RATIO:
		return in
	case e.Without:
		return without(in, e.Grouping...)
	case e.Op == parser.COUNT_VALUES:
		if dst, ok := e.Param.(*parser.StringLiteral); ok {
			return union(setOf(e.Grouping...), setOf(dst.Val))
		}
		return nil
	}
	return setOf(e.Grouping...)
}

func (c *checker) binary(e *parser.BinaryExpr) labelSet {
	lhs, rhs := c.labels(e.LHS), c.labels(e.RHS)
	if e.LHS.Type() != parser.ValueTypeVector || e.RHS.Type() != parser.ValueTypeVector {
		if e.LHS.Type() == parser.ValueTypeVector {
			return lhs
		}
		return rhs
	}
	vm := e.VectorMatching
	if vm != nil && vm.On {
		for _, l := range vm.MatchingLabels {
			if !lhs.has(l) || !rhs.has(l) {
				c.fail("%s on (%s): %q is not on both sides (left %v, right %v)", e.Op, strings.Join(vm.MatchingLabels, ", "), l, lhs.names(), rhs.names())
			}
		}
	}
	if vm != nil {
		one := rhs
		if vm.Card == parser.CardOneToMany {
			one = lhs
		}
		for _, l := range vm.Include {
			if !one.has(l) {
				c.fail("%s group_%s (%s): %q is not on the side it is copied from (%v)", e.Op, map[bool]string{true: "right", false: "left"}[vm.Card == parser.CardOneToMany], strings.Join(vm.Include, ", "), l, one.names())
			}
		}
	}
	switch {
	case e.Op == parser.LOR:
		return union(lhs, rhs)
	case e.Op == parser.LAND || e.Op == parser.LUNLESS:
		return lhs
	case vm == nil:
		return lhs
	case vm.Card == parser.CardOneToMany:
		return union(rhs, setOf(vm.Include...))
	case vm.Card == parser.CardManyToOne:
		return union(lhs, setOf(vm.Include...))
	case vm.On:
		// One-to-one, comparisons included: the engine keeps only the matching labels.
		return setOf(vm.MatchingLabels...)
	}
	return without(lhs, vm.MatchingLabels...)
}
