package deploy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaDashboard is the part of a Grafana dashboard model that holds queries.
type grafanaDashboard struct {
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string          `json:"name"`
			Expr       string          `json:"expr"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID        string          `json:"refId"`
		Expr         string          `json:"expr"`
		LegendFormat string          `json:"legendFormat"`
		Datasource   json.RawMessage `json:"datasource"`
	} `json:"targets"`
	// A collapsed row holds its panels.
	Panels []grafanaPanel `json:"panels"`
}

type grafanaVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// grafanaBuiltins are the global variables Grafana fills in for a Prometheus query, with values of
// the kind it uses (a duration where it writes one).
var grafanaBuiltins = map[string]string{
	"__interval": "30s", "__interval_ms": "30000",
	"__rate_interval": "2m", "__rate_interval_ms": "120000",
	"__range": "6h", "__range_s": "21600", "__range_ms": "21600000",
	"__auto": "30s", "__from": "1700000000000", "__to": "1700021600000",
}

// grafanaVarRef finds the three ways Grafana lets a query name a variable: ${name} (with an
// optional :format), [[name]] and $name.
var grafanaVarRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]|\$([A-Za-z0-9_]+)`)

// grafanaVars maps the dashboard's variables to a value as Grafana would substitute it: a
// multi-value or All variable becomes a regular-expression alternation, as the Prometheus data
// source formats it.
func grafanaVars(dash grafanaDashboard) map[string]string {
	vars := map[string]string{}
	for k, v := range grafanaBuiltins {
		vars[k] = v
	}
	for _, v := range dash.Templating.List {
		switch {
		case v.Type == "datasource":
			vars[v.Name] = "prometheus"
		case v.Type == "interval":
			vars[v.Name] = "5m"
		case v.Multi || v.IncludeAll:
			vars[v.Name] = "(flex-system|team-a)"
		default:
			vars[v.Name] = "flex-system"
		}
	}
	return vars
}

// substitute replaces variables as Grafana does before it sends a query; a variable the dashboard
// does not define is a problem (Grafana would send the text as it is).
func substitute(vars map[string]string, s string) (string, []string) {
	var unknown []string
	out := grafanaVarRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := grafanaVarRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, fmt.Sprintf("uses $%s, which the dashboard does not define", name))
			return ref
		}
		return v
	})
	return out, unknown
}

// legendRef finds {{label}} in a legend format.
var legendRef = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// labelValuesQuery is Grafana's Prometheus variable query label_values([series,] label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((?:(.+),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// checkDashboard substitutes Grafana's variables in every query of the dashboard (panels, rows'
// panels, annotations, template variables), parses and checks each, and checks that legends print
// labels the query's series carry.
func checkDashboard(ms metricSet, raw []byte) (problems []string, queries, selectors int) {
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		return []string{fmt.Sprintf("dashboard.json: %v", err)}, 0, 0
	}
	vars := grafanaVars(dash)
	query := func(where, expr, legend string, datasource json.RawMessage) {
		queries++
		c := &checker{metrics: ms}
		_, unknownDS := substitute(vars, string(datasource))
		c.problems = append(c.problems, unknownDS...)
		sub, unknown := substitute(vars, expr)
		c.problems = append(c.problems, unknown...)
		var out labelSet
		if len(unknown) == 0 {
			// Left in, an unknown variable would also fail to parse: report it once.
			out = c.check(sub)
		}
		for _, ref := range legendRef.FindAllStringSubmatch(legend, -1) {
			if !out.has(ref[1]) {
				c.fail("legend prints {{%s}}, but the query's series carry only %v", ref[1], out.names())
			}
		}
		for _, p := range c.problems {
			problems = append(problems, where+": "+p+"\n"+expr)
		}
		selectors += c.selectors
	}
	var walk func(panels []grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			for _, tg := range p.Targets {
				ds := tg.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				query(fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr, tg.LegendFormat, ds)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, a := range dash.Annotations.List {
		if a.Expr != "" {
			query(fmt.Sprintf("annotation %q", a.Name), a.Expr, "", a.Datasource)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("variable %q", v.Name)
		text := ""
		if json.Unmarshal(v.Query, &text) != nil {
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				problems = append(problems, fmt.Sprintf("%s: unreadable query %s", where, v.Query))
				continue
			}
			text = q.Query
		}
		queries++
		c := &checker{metrics: ms}
		sub, unknown := substitute(vars, strings.TrimSpace(text))
		c.problems = append(c.problems, unknown...)
		switch m := labelValuesQuery.FindStringSubmatch(sub); {
		case m != nil && m[1] != "":
			matchers, err := promQL.ParseMetricSelector(strings.TrimSpace(m[1]))
			if err != nil {
				c.fail("label_values series %s does not parse: %v", m[1], err)
				break
			}
			have := c.selector(&parser.VectorSelector{LabelMatchers: matchers})
			if !have.has(m[2]) {
				c.fail("label_values of %s by %q, which it does not have (only %v)", m[1], m[2], have.names())
			}
		case strings.HasPrefix(sub, "query_result(") && strings.HasSuffix(sub, ")"):
			c.check(strings.TrimSuffix(strings.TrimPrefix(sub, "query_result("), ")"))
		default:
			c.fail("query %q is not one this check reads (label_values(series, label) or query_result(expr))", text)
		}
		for _, p := range c.problems {
			problems = append(problems, where+": "+p)
		}
		selectors += c.selectors
	}
	return problems, queries, selectors
}
