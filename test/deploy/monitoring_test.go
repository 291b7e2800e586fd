package deploy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	klabels "k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The test control plane has no Prometheus Operator CRDs, so its objects are checked here instead
// of by the API server: decoded strictly into the Prometheus Operator's own Go types (a field they
// do not have is an error, as the CRDs' structural schemas make it), with the checks their
// schemas' markers make (scheme enum, duration pattern) and the types' own Validate methods; the
// rules as Prometheus loads the rule file the Prometheus Operator writes from them (rulefmt: PromQL,
// label names, annotation templates) and against the metrics the operator exports.

// strict decodes a rendered object into a Prometheus Operator type, refusing unknown fields and
// naming each by its path, as the API server's strict field validation does.
func strict(o *unstructured.Unstructured, into any) error {
	raw, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(raw, into)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// checkMonitoring checks the ServiceMonitors and PrometheusRules among objs; the Services a
// ServiceMonitor may select are those in objs and services. It returns the problems and how many
// objects it checked.
func checkMonitoring(ms metricSet, objs []*unstructured.Unstructured, services ...*unstructured.Unstructured) (problems []string, checked int) {
	services = append(find(objs, "Service"), services...)
	for _, o := range objs {
		where := fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
		var p []string
		switch o.GetKind() {
		case "ServiceMonitor":
			var sm monitoringv1.ServiceMonitor
			if err := strict(o, &sm); err != nil {
				p = []string{err.Error()}
				break
			}
			p = checkServiceMonitor(&sm, services)
		case "PrometheusRule":
			var pr monitoringv1.PrometheusRule
			if err := strict(o, &pr); err != nil {
				p = []string{err.Error()}
				break
			}
			p = checkPrometheusRule(ms, &pr)
		default:
			continue
		}
		checked++
		for _, s := range p {
			problems = append(problems, where+": "+s)
		}
	}
	return problems, checked
}

// checkServiceMonitor: every endpoint is well-formed, scrapes a named port of a Service the
// selector picks in the monitor's namespace, and brings a token when the port is HTTPS (the
// metrics filter refuses a scrape without one).
func checkServiceMonitor(sm *monitoringv1.ServiceMonitor, services []*unstructured.Unstructured) []string {
	var problems []string
	if len(sm.Spec.Endpoints) == 0 {
		problems = append(problems, "no endpoints")
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		return append(problems, fmt.Sprintf("selector %v: %v (an empty one selects every Service)", sm.Spec.Selector, err))
	}
	var selected []*unstructured.Unstructured
	for _, svc := range services {
		if svc.GetNamespace() == sm.Namespace && sel.Matches(klabels.Set(svc.GetLabels())) {
			selected = append(selected, svc)
		}
	}
	if len(selected) != 1 {
		problems = append(problems, fmt.Sprintf("selector %s picks %d Services in %s, want the metrics Service", sel, len(selected), sm.Namespace))
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Scheme != nil && !slices.Contains([]string{"http", "https", "HTTP", "HTTPS"}, string(*ep.Scheme)) {
			problems = append(problems, fmt.Sprintf("endpoint %d: scheme %q is not http or https", i, *ep.Scheme))
		}
		for field, d := range map[string]monitoringv1.Duration{"interval": ep.Interval, "scrapeTimeout": ep.ScrapeTimeout} {
			if _, err := model.ParseDuration(string(d)); d != "" && err != nil {
				problems = append(problems, fmt.Sprintf("endpoint %d: %s: %v", i, field, err))
			}
		}
		if err := ep.HTTPConfigWithProxyAndTLSFiles.Validate(); err != nil {
			problems = append(problems, fmt.Sprintf("endpoint %d: %v", i, err))
		}
		if strings.EqualFold(ep.Scheme.String(), "https") && ep.BearerTokenFile == "" && ep.Authorization == nil {
			problems = append(problems, fmt.Sprintf("endpoint %d scrapes HTTPS without a token: the metrics filter would refuse it", i))
		}
		for _, svc := range selected {
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if !slices.ContainsFunc(ports, func(p any) bool { return p.(map[string]any)["name"] == ep.Port }) {
				problems = append(problems, fmt.Sprintf("endpoint %d: Service %s has no port named %q", i, svc.GetName(), ep.Port))
			}
		}
	}
	return problems
}

// checkPrometheusRule loads the rule groups as Prometheus loads a rule file, then checks them
// against the metrics the operator exports.
func checkPrometheusRule(ms metricSet, pr *monitoringv1.PrometheusRule) []string {
	var problems []string
	content, err := yaml.Marshal(pr.Spec)
	if err != nil {
		return []string{err.Error()}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, errs := rulefmt.Parse(content, false, model.UTF8Validation, promQL, logger); len(errs) > 0 {
		for _, err := range errs {
			problems = append(problems, "rulefmt: "+err.Error())
		}
		return problems
	}
	var spec alertRules
	if err := yaml.UnmarshalStrict(content, &spec); err != nil {
		return []string{err.Error()}
	}
	p, alerts, _ := checkAlerts(ms, spec)
	if alerts == 0 {
		p = append(p, "no alerting rules")
	}
	for _, r := range pr.Spec.Groups {
		for _, rule := range r.Rules {
			if rule.Alert != "" && (rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" || rule.Annotations["description"] == "") {
				p = append(p, fmt.Sprintf("alert %s lacks a severity, a summary or a description", rule.Alert))
			}
		}
	}
	return append(problems, p...)
}

// TestMonitoringChecksCatchMistakes renders the chart's ServiceMonitor and PrometheusRule and
// breaks them one way at a time: each must be found, and the unbroken ones pass.
func TestMonitoringChecksCatchMistakes(t *testing.T) {
	ms := operatorMetrics(t)
	objs := template(t, everything...)
	if problems, checked := checkMonitoring(ms, objs); len(problems) != 0 || checked != 2 {
		t.Fatalf("the chart's own objects: %d checked, problems %v", checked, problems)
	}
	endpoint := func(o *unstructured.Unstructured) map[string]any {
		eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		return eps[0].(map[string]any)
	}
	setEndpoint := func(o *unstructured.Unstructured, ep map[string]any) {
		if err := unstructured.SetNestedSlice(o.Object, []any{ep}, "spec", "endpoints"); err != nil {
			t.Fatal(err)
		}
	}
	rule := func(o *unstructured.Unstructured) (groups []any, r map[string]any) {
		groups, _, _ = unstructured.NestedSlice(o.Object, "spec", "groups")
		return groups, groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	}
	setGroups := func(o *unstructured.Unstructured, groups []any) {
		if err := unstructured.SetNestedSlice(o.Object, groups, "spec", "groups"); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]struct {
		kind  string
		spoil func(o *unstructured.Unstructured)
		want  string
	}{
		"misspelt endpoint field": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			ep := endpoint(o)
			ep["bearerTokenFiel"] = ep["bearerTokenFile"]
			delete(ep, "bearerTokenFile")
			setEndpoint(o, ep)
		}, `unknown field "spec.endpoints[0].bearerTokenFiel"`},
		"misspelt spec field": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			must(t, unstructured.SetNestedField(o.Object, "flex", "spec", "jobLabl"))
		}, `unknown field "spec.jobLabl"`},
		"scheme": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			ep := endpoint(o)
			ep["scheme"] = "htps"
			setEndpoint(o, ep)
		}, `scheme "htps"`},
		"interval": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			ep := endpoint(o)
			ep["interval"] = "30 s"
			setEndpoint(o, ep)
		}, "interval"},
		"port name": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			ep := endpoint(o)
			ep["port"] = "metrics-https"
			setEndpoint(o, ep)
		}, `no port named "metrics-https"`},
		"selector": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			must(t, unstructured.SetNestedStringMap(o.Object, map[string]string{"app.kubernetes.io/component": "metrcs"}, "spec", "selector", "matchLabels"))
		}, "picks 0 Services"},
		"HTTPS without a token": {"ServiceMonitor", func(o *unstructured.Unstructured) {
			ep := endpoint(o)
			delete(ep, "bearerTokenFile")
			setEndpoint(o, ep)
		}, "without a token"},
		"misspelt rule field": {"PrometheusRule", func(o *unstructured.Unstructured) {
			groups, r := rule(o)
			r["expresion"] = r["expr"]
			setGroups(o, groups)
		}, `unknown field "spec.groups[0].rules[0].expresion"`},
		"broken annotation template": {"PrometheusRule", func(o *unstructured.Unstructured) {
			groups, r := rule(o)
			r["annotations"].(map[string]any)["summary"] = "{{ $value | humanize }"
			setGroups(o, groups)
		}, "rulefmt"},
		"bad PromQL": {"PrometheusRule", func(o *unstructured.Unstructured) {
			groups, r := rule(o)
			r["expr"] = "sum(rate(flexoperator_recovery_phase_transitions_total[15m]) > 0"
			setGroups(o, groups)
		}, "rulefmt"},
		"misspelt metric": {"PrometheusRule", func(o *unstructured.Unstructured) {
			groups, r := rule(o)
			r["expr"] = "sum(rate(flexoperator_recovery_phase_transition_total[15m])) > 0"
			setGroups(o, groups)
		}, "does not export"},
	} {
		t.Run(name, func(t *testing.T) {
			var broken []*unstructured.Unstructured
			for _, o := range objs {
				o = o.DeepCopy()
				if o.GetKind() == c.kind {
					c.spoil(o)
				}
				broken = append(broken, o)
			}
			problems, _ := checkMonitoring(ms, broken)
			if len(problems) != 1 || !strings.Contains(problems[0], c.want) {
				t.Errorf("got %q, want one problem containing %q", problems, c.want)
			}
		})
	}
}
