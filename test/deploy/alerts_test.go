package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// operatorJob is the job label of the operator's scrape target: the chart's ServiceMonitor takes it
// from the metrics Service's app.kubernetes.io/part-of label.
const operatorJob = "flex-operator"

// TestChartServiceMonitorNamesTheAlertsJob: the availability alerts select job="flex-operator"; the
// ServiceMonitor must give the target that job, from a label the metrics Service carries.
func TestChartServiceMonitorNamesTheAlertsJob(t *testing.T) {
	objs := template(t, everything...)
	sm := find(objs, "ServiceMonitor")
	if len(sm) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sm))
	}
	label, _, _ := unstructured.NestedString(sm[0].Object, "spec", "jobLabel")
	svc := named(objs, "Service", releaseName+"-metrics")
	if svc == nil {
		t.Fatal("no metrics Service")
	}
	if got := svc.GetLabels()[label]; label == "" || got != operatorJob {
		t.Errorf("ServiceMonitor jobLabel %q gives job %q, want %q (the alerts select it)", label, got, operatorJob)
	}
}

// TestAlertsFireWhenTheOperatorIsDown evaluates the chart's availability alerts with Prometheus' own
// engine over series as Prometheus would hold them: nothing scraped at all (the operator deleted,
// or its Pods never ready), targets down, one release of two down, a running operator without a
// leader, and a healthy one. An alert fires when its expression returns a sample at every
// evaluation across its `for` window.
func TestAlertsFireWhenTheOperatorIsDown(t *testing.T) {
	exprs := map[string]string{}
	forOf := map[string]time.Duration{}
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec alertRules
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatal(err)
	}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = r.Expr
			d, err := time.ParseDuration(r.For)
			if err != nil {
				t.Fatalf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
			forOf[r.Alert] = d
		}
	}
	for _, name := range []string{"FlexOperatorDown", "FlexOperatorNoLeader"} {
		if exprs[name] == "" {
			t.Fatalf("no alert %s in the chart's rules", name)
		}
	}

	// Series hold 20 minutes of samples at a 30s interval (the ServiceMonitor's); each alert is
	// evaluated every 30s over the last `for` of them.
	const healthyPod = `up{job="flex-operator", namespace="flex-system", pod="flex-operator-a"} 1x40
up{job="flex-operator", namespace="flex-system", pod="flex-operator-b"} 1x40
flexoperator_build_info{job="flex-operator", namespace="flex-system", pod="flex-operator-a", version="v0.1.0"} 1x40
flexoperator_build_info{job="flex-operator", namespace="flex-system", pod="flex-operator-b", version="v0.1.0"} 1x40
`
	for name, c := range map[string]struct {
		series string
		firing []string
	}{
		"nothing scraped": {"", []string{"FlexOperatorDown", "FlexOperatorNoLeader"}},
		"every target down": {`up{job="flex-operator", namespace="flex-system", pod="flex-operator-a"} 0x40
up{job="flex-operator", namespace="flex-system", pod="flex-operator-b"} 0x40
`, []string{"FlexOperatorDown", "FlexOperatorNoLeader"}},
		"one release of two down": {healthyPod + `leader_election_master_status{job="flex-operator", namespace="flex-system", pod="flex-operator-a", name="flex-operator"} 1x40
up{job="flex-operator", namespace="team-b", pod="flex-operator-c"} 0x40
`, []string{"FlexOperatorDown"}},
		"running without a leader": {healthyPod + `leader_election_master_status{job="flex-operator", namespace="flex-system", pod="flex-operator-a", name="flex-operator"} 0x40
leader_election_master_status{job="flex-operator", namespace="flex-system", pod="flex-operator-b", name="flex-operator"} 0x40
`, []string{"FlexOperatorNoLeader"}},
		"healthy": {healthyPod + `leader_election_master_status{job="flex-operator", namespace="flex-system", pod="flex-operator-a", name="flex-operator"} 1x40
leader_election_master_status{job="flex-operator", namespace="flex-system", pod="flex-operator-b", name="flex-operator"} 0x40
`, nil},
		// Another program's leader does not stand in for the operator's.
		"only another program leads": {healthyPod + `leader_election_master_status{job="other", namespace="other", pod="other-a", name="other"} 1x40
`, []string{"FlexOperatorNoLeader"}},
	} {
		t.Run(name, func(t *testing.T) {
			storage := seriesStorage(t, c.series, 30*time.Second)
			engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, Parser: promQL})
			end := time.Unix(0, 0).Add(20 * time.Minute)
			for _, alert := range []string{"FlexOperatorDown", "FlexOperatorNoLeader"} {
				fires := true
				for at := end.Add(-forOf[alert]); !at.After(end); at = at.Add(30 * time.Second) {
					q, err := engine.NewInstantQuery(context.Background(), storage, nil, exprs[alert], at)
					if err != nil {
						t.Fatalf("%s: %v", alert, err)
					}
					res := q.Exec(context.Background())
					if res.Err != nil {
						t.Fatalf("%s at %s: %v", alert, at, res.Err)
					}
					vec, err := res.Vector()
					if err != nil {
						t.Fatalf("%s: %v", alert, err)
					}
					if len(vec) == 0 {
						fires = false
					}
					q.Close()
				}
				if want := slices.Contains(c.firing, alert); fires != want {
					t.Errorf("%s fires: %v, want %v", alert, fires, want)
				}
			}
		})
	}
}

// seriesStorage holds series written in the notation of Prometheus' own rule tests, one a line
// ("up{job="x"} 1x40": 41 samples of 1), sampled every interval from time 0: a storage the engine
// queries as it queries its TSDB.
func seriesStorage(t *testing.T, text string, interval time.Duration) storage.Queryable {
	t.Helper()
	var series []storage.Series
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		lset, values, err := promQL.ParseSeriesDesc(line)
		if err != nil {
			t.Fatalf("series %q: %v", line, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if !v.Omitted {
				samples = append(samples, floatSample{t: int64(i) * interval.Milliseconds(), f: v.Value})
			}
		}
		series = append(series, storage.NewListSeries(lset, samples))
	}
	slices.SortFunc(series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range series {
				if matchesAll(s.Labels(), ms) {
					out = append(out, s)
				}
			}
			return &seriesList{series: out, i: -1}
		},
	}}
}

func matchesAll(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

// seriesList is a storage.SeriesSet over a slice.
type seriesList struct {
	series []storage.Series
	i      int
}

func (s *seriesList) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesList) At() storage.Series                { return s.series[s.i] }
func (s *seriesList) Err() error                        { return nil }
func (s *seriesList) Warnings() annotations.Annotations { return nil }

// floatSample is one float sample, as chunks.Sample.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }
