package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// The operator's packages, as cmd/main.go links them: their init functions register the
	// collectors whose names the alerts and the dashboard may use.
	_ "github.com/flexoperator/flex-operator/internal/app"
	_ "github.com/flexoperator/flex-operator/internal/version"
)

// registered reads every metric the operator registers on controller-runtime's registry (its own
// and controller-runtime's), with each one's label names, from the collectors' descriptors.
func registered(t *testing.T) map[string]map[string]bool {
	t.Helper()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
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
		out[m[1]] = labels
	}
	if len(out) < 10 {
		t.Fatalf("only %d metrics registered; the operator's packages did not register theirs", len(out))
	}
	return out
}

// targetLabels are added by Prometheus to every series it scrapes (a ServiceMonitor's target).
var targetLabels = map[string]bool{"namespace": true, "pod": true, "instance": true, "job": true, "service": true, "endpoint": true, "container": true}

// selectorRE finds a metric name and its label matchers in PromQL; metricRE the names alone.
var (
	metricRE   = regexp.MustCompile(`\b((?:flexoperator|controller_runtime|workqueue|leader_election|rest_client)_[a-z0-9_]+)\b`)
	selectorRE = regexp.MustCompile(`\b([a-z][a-z0-9_]*)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// lookup finds the registered metric a series name belongs to (a histogram's _bucket, _sum and
// _count series belong to the histogram).
func lookup(reg map[string]map[string]bool, series string) (string, bool) {
	if _, ok := reg[series]; ok {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if _, ok := reg[base]; ok {
				return base, true
			}
		}
	}
	return "", false
}

// checkExpressions fails for any metric an expression uses that the operator does not register,
// and for any label matcher naming a label the metric does not have.
func checkExpressions(t *testing.T, where string, exprs []string) {
	t.Helper()
	reg := registered(t)
	used := 0
	for _, expr := range exprs {
		for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
			used++
			if _, ok := lookup(reg, m[1]); !ok {
				t.Errorf("%s uses %s, which the operator does not export:\n%s", where, m[1], expr)
			}
		}
		for _, sel := range selectorRE.FindAllStringSubmatch(expr, -1) {
			base, ok := lookup(reg, sel[1])
			if !ok {
				continue
			}
			for _, lm := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
				if label := lm[1]; !reg[base][label] && !targetLabels[label] && label != "le" {
					t.Errorf("%s matches label %q of %s, which has only %v:\n%s", where, label, base, reg[base], expr)
				}
			}
		}
	}
	if used == 0 {
		t.Fatalf("%s uses no operator metric", where)
	}
}

func TestAlertsUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
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
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 8 {
		t.Fatalf("%d alerts, want the recovery, signature, event flow, Twilio 429/5xx and reconcile ones", len(exprs))
	}
	checkExpressions(t, "prometheus-rules.yaml", exprs)
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("%d dashboard queries", len(exprs))
	}
	checkExpressions(t, "dashboard.json", exprs)
}
