package deploy

import (
	"encoding/json"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// The operator's packages, as main.go links them: their init functions register the
	// collectors whose names the alerts and the dashboard may use.
	_ "github.com/flexoperator/flex-operator/internal/app"
	_ "github.com/flexoperator/flex-operator/internal/version"
)

// registered reads every metric the operator registers on controller-runtime's registry (its own
// and controller-runtime's), with each one's label names, from the collectors' descriptors.
func registered(t *testing.T) map[string]map[string]bool {
	t.Helper()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	constLabels := regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	varLabels := regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
	ch := make(chan *prometheus.Desc)
	go func() {
		ctrlmetrics.Registry.(*prometheus.Registry).Describe(ch)
		close(ch)
	}()
	out := map[string]map[string]bool{}
	for d := range ch {
		s := d.String()
		m := fqName.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("unreadable descriptor %s", s)
		}
		labels := map[string]bool{}
		if l := varLabels.FindStringSubmatch(s); l != nil && l[1] != "" {
			for _, name := range strings.Split(l[1], ",") {
				labels[strings.TrimSuffix(strings.TrimPrefix(name, "c("), ")")] = true
			}
		}
		if l := constLabels.FindStringSubmatch(s); l != nil && l[1] != "" {
			for _, pair := range strings.Split(l[1], ",") {
				name, _, _ := strings.Cut(pair, "=")
				labels[name] = true
			}
		}
		out[m[1]] = labels
	}
	if len(out) < 10 {
		t.Fatalf("only %d metrics registered; the operator's packages did not register theirs", len(out))
	}
	return out
}

// operatorMetrics is what the alerts and the dashboard may use: the registered metrics, and for
// the labels whose values the code fixes, those values, read from where the code defines them
// (the CRD enums generated from api/v1alpha1, the webhook server's constants, net/http's codes).
func operatorMetrics(t *testing.T) metricSet {
	t.Helper()
	phases := crdEnum(t, "contactcenter.flexoperator.io_conferencerecoveries.yaml", "status", "phase")
	states := crdEnum(t, "contactcenter.flexoperator.io_conferencerecoveries.yaml", "status", "actions", "state")
	routes := constValues(t, "webhookserver", "route")
	outcomes := constValues(t, "webhookserver", "outcome")
	codes := httpCodes()
	exported := registered(t)
	// up is written by Prometheus itself for every target it scrapes; the chart's ServiceMonitor
	// names the job after the metrics Service's app.kubernetes.io/part-of label.
	exported["up"] = map[string]bool{"job": true}
	ms := metricSet{
		labels: exported,
		values: map[string]map[string][]string{
			"flexoperator_recovery_phase_transitions_total":        {"phase": phases},
			"flexoperator_recovery_customer_without_agent_seconds": {"phase": phases},
			"flexoperator_recovery_steps_total":                    {"state": states},
			"flexoperator_webhook_requests_total":                  {"route": routes, "code": codes},
			"flexoperator_webhook_events_total":                    {"route": routes, "outcome": outcomes},
			"flexoperator_webhook_signature_failures_total":        {"route": routes},
			"flexoperator_webhook_duplicates_total":                {"route": routes},
			"flexoperator_webhook_handling_seconds":                {"route": routes},
			"flexoperator_graceful_marks_total":                    {"outcome": constValues(t, "webhookserver", "markOutcome")},
			// A status code, or "error" when no response came back.
			"flexoperator_twilio_requests_total": {"status": append(slices.Clone(codes), "error")},
			"up":                                 {"job": {operatorJob}},
		},
	}
	// A metric or label renamed in the code must not turn its value check off unnoticed.
	for metric, byLabel := range ms.values {
		for label := range byLabel {
			if !ms.labels[metric][label] {
				t.Fatalf("the value check of %s{%s} names a label the operator does not register", metric, label)
			}
		}
	}
	return ms
}

// crdEnum reads the enum of a field of a CRD's schema in config/crd/bases (generated from the
// kubebuilder markers of api/v1alpha1), descending through arrays' items.
func crdEnum(t *testing.T, file string, path ...string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(configDir, "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	s := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, p := range path {
		if s.Items != nil && s.Items.Schema != nil {
			s = s.Items.Schema
		}
		next, ok := s.Properties[p]
		if !ok {
			t.Fatalf("%s has no field %s", file, strings.Join(path, "."))
		}
		s = &next
	}
	var out []string
	for _, v := range s.Enum {
		var str string
		if err := json.Unmarshal(v.Raw, &str); err != nil {
			t.Fatalf("%s %s: enum value %s: %v", file, strings.Join(path, "."), v.Raw, err)
		}
		out = append(out, str)
	}
	if len(out) == 0 {
		t.Fatalf("%s %s has no enum", file, strings.Join(path, "."))
	}
	return out
}

// constValues reads the string constants of a package (its directory from the repository's root)
// whose names start with prefix: the webhook server names its label values routeX and outcomeX.
func constValues(t *testing.T, pkg, prefix string) []string {
	t.Helper()
	dir := filepath.Join("..", "..", pkg)
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := goparser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						out = append(out, v)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no %s* string constants", pkg, prefix)
	}
	slices.Sort(out)
	return out
}

// httpCodes are the status codes net/http knows, as strconv.Itoa writes them into the labels.
func httpCodes() []string {
	var out []string
	for code := 100; code < 600; code++ {
		if http.StatusText(code) != "" {
			out = append(out, strconv.Itoa(code))
		}
	}
	return out
}

// alertRules reads the PrometheusRule spec the chart ships.
type alertRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// labelRef finds $labels.name in alert templates.
var labelRef = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

// checkAlerts parses every alert's expression and checks it, and that the labels its text
// templates print are on the alert's series.
func checkAlerts(ms metricSet, spec alertRules) (problems []string, alerts, selectors int) {
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			alerts++
			c := &checker{metrics: ms}
			out := c.check(r.Expr)
			for _, text := range append(slices.Collect(maps.Values(r.Annotations)), slices.Collect(maps.Values(r.Labels))...) {
				for _, ref := range labelRef.FindAllStringSubmatch(text, -1) {
					if !out.has(ref[1]) {
						c.fail("prints $labels.%s, but the expression's series carry only %v", ref[1], out.names())
					}
				}
			}
			for _, p := range c.problems {
				problems = append(problems, "alert "+r.Alert+": "+p+"\n"+r.Expr)
			}
			selectors += c.selectors
		}
	}
	return problems, alerts, selectors
}

func TestAlertsUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec alertRules
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatal(err)
	}
	problems, alerts, selectors := checkAlerts(operatorMetrics(t), spec)
	for _, p := range problems {
		t.Error(p)
	}
	if alerts < 8 {
		t.Errorf("%d alerts, want the recovery, signature, event flow, Twilio 429/5xx and reconcile ones", alerts)
	}
	t.Logf("%d alerts, %d series selectors checked", alerts, selectors)
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	problems, queries, selectors := checkDashboard(operatorMetrics(t), b)
	for _, p := range problems {
		t.Error(p)
	}
	if queries < 10 {
		t.Errorf("%d dashboard queries", queries)
	}
	t.Logf("%d dashboard queries, %d series selectors checked", queries, selectors)
}

// TestMetricChecksCatchMistakes feeds the alert and dashboard checks the mistakes they exist for,
// each next to its corrected form, so that a check that stopped finding anything fails here.
func TestMetricChecksCatchMistakes(t *testing.T) {
	ms := operatorMetrics(t)
	for name, c := range map[string]struct{ bad, good, want string }{
		"misspelt metric": {
			`sum(rate(flexoperator_webhook_request_total[5m]))`,
			`sum(rate(flexoperator_webhook_requests_total[5m]))`, "does not export"},
		"bad label": {
			`sum(rate(flexoperator_webhook_requests_total{rout="conference"}[5m]))`,
			`sum(rate(flexoperator_webhook_requests_total{route="conference"}[5m]))`, `matches label "rout"`},
		"value the code never writes": {
			`sum(rate(flexoperator_recovery_phase_transitions_total{phase="Faild"}[5m]))`,
			`sum(rate(flexoperator_recovery_phase_transitions_total{phase="Failed"}[5m]))`, `phase "Faild"`},
		"one bad alternative": {
			`sum(rate(flexoperator_webhook_events_total{outcome=~"failed|rejeted"}[5m]))`,
			`sum(rate(flexoperator_webhook_events_total{outcome=~"failed|rejected"}[5m]))`, `outcome "rejeted"`},
		"status regex matching no code": {
			`sum(rate(flexoperator_twilio_requests_total{status=~"6.."}[5m]))`,
			`sum(rate(flexoperator_twilio_requests_total{status=~"5.."}[5m]))`, `status "6.."`},
		"bad PromQL": {
			`sum(rate(flexoperator_webhook_requests_total[5m])`,
			`sum(rate(flexoperator_webhook_requests_total[5m]))`, "does not parse"},
		"grouping by a missing label": {
			`sum by (step) (rate(flexoperator_webhook_requests_total[5m]))`,
			`sum by (route) (rate(flexoperator_webhook_requests_total[5m]))`, `groups by "step"`},
		"quantile of a counter": {
			`histogram_quantile(0.9, rate(flexoperator_webhook_handling_seconds_count[5m]))`,
			`histogram_quantile(0.9, rate(flexoperator_webhook_handling_seconds_bucket[5m]))`, "without le"},
		"matching on a missing label": {
			`rate(controller_runtime_reconcile_errors_total[5m]) and on (pod, route) flexoperator_build_info`,
			`rate(controller_runtime_reconcile_errors_total[5m]) and on (pod, namespace) flexoperator_build_info`, `"route" is not on both sides`},
	} {
		t.Run(name, func(t *testing.T) {
			alerts := func(expr string) []string {
				var spec alertRules
				if err := yaml.Unmarshal([]byte("groups: [{name: g, rules: [{alert: A, expr: 'EXPR'}]}]"), &spec); err != nil {
					t.Fatal(err)
				}
				spec.Groups[0].Rules[0].Expr = expr
				p, _, _ := checkAlerts(ms, spec)
				return p
			}
			dashboard := func(expr string) []string {
				raw, err := json.Marshal(map[string]any{"panels": []any{map[string]any{"title": "P",
					"targets": []any{map[string]any{"refId": "A", "expr": expr}}}}})
				if err != nil {
					t.Fatal(err)
				}
				p, _, _ := checkDashboard(ms, raw)
				return p
			}
			for check, run := range map[string]func(string) []string{"alerts": alerts, "dashboard": dashboard} {
				if p := run(c.good); len(p) != 0 {
					t.Errorf("%s check refuses the corrected query: %v", check, p)
				}
				if p := run(c.bad); len(p) != 1 || !strings.Contains(p[0], c.want) {
					t.Errorf("%s check says %q, want one problem containing %q", check, p, c.want)
				}
			}
		})
	}

	t.Run("alert text printing a label the series lack", func(t *testing.T) {
		var spec alertRules
		if err := yaml.Unmarshal([]byte(`groups: [{name: g, rules: [{alert: A,
  expr: 'sum by (route) (rate(flexoperator_webhook_requests_total[5m])) > 0',
  annotations: {summary: 'product {{ $labels.product }} on {{ $labels.route }}'}}]}]`), &spec); err != nil {
			t.Fatal(err)
		}
		if p, _, _ := checkAlerts(ms, spec); len(p) != 1 || !strings.Contains(p[0], "$labels.product") {
			t.Errorf("got %q, want one problem about $labels.product", p)
		}
	})

	t.Run("dashboard variables and legends", func(t *testing.T) {
		dash := func(variableQuery, expr, legend string) []string {
			raw, err := json.Marshal(map[string]any{
				"templating": map[string]any{"list": []any{
					map[string]any{"name": "datasource", "type": "datasource"},
					map[string]any{"name": "namespace", "type": "query", "multi": true, "includeAll": true,
						"query": map[string]any{"query": variableQuery}},
				}},
				"panels": []any{map[string]any{"type": "row", "title": "R", "panels": []any{map[string]any{"title": "P",
					"datasource": map[string]any{"uid": "${datasource}"},
					"targets":    []any{map[string]any{"refId": "A", "expr": expr, "legendFormat": legend}}}}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			p, _, _ := checkDashboard(ms, raw)
			return p
		}
		const (
			variable = `label_values(flexoperator_build_info, namespace)`
			expr     = `sum by (route) (rate(flexoperator_webhook_requests_total{namespace=~"$namespace"}[$__rate_interval]))`
		)
		if p := dash(variable, expr, "{{route}}"); len(p) != 0 {
			t.Errorf("a correct dashboard is refused: %v", p)
		}
		for name, c := range map[string]struct{ variable, expr, legend, want string }{
			"unknown variable":             {variable, strings.Replace(expr, "$namespace", "$nmespace", 1), "{{route}}", "$nmespace"},
			"${} form":                     {variable, strings.Replace(expr, "$__rate_interval", "${__rate_intervall}", 1), "{{route}}", "$__rate_intervall"},
			"legend label missing":         {variable, expr, "{{code}}", "{{code}}"},
			"variable of a missing label":  {`label_values(flexoperator_build_info, namspace)`, expr, "{{route}}", `by "namspace"`},
			"variable of a missing metric": {`label_values(flexoperator_buildinfo, namespace)`, expr, "{{route}}", "does not export"},
			"unread variable query":        {`metrics(flexoperator_.*)`, expr, "{{route}}", "not one this check reads"},
		} {
			if p := dash(c.variable, c.expr, c.legend); len(p) != 1 || !strings.Contains(p[0], c.want) {
				t.Errorf("%s: got %q, want one problem containing %q", name, p, c.want)
			}
		}
	})
}
