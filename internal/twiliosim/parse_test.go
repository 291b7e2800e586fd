package twiliosim

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const queueA = "WQaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func knownQueue(sid string) bool { return sid == queueA }

func TestParseRoutingConfig(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"documented example", `{"task_routing":{"filters":[{"filter_friendly_name":"Support","expression":"type==\"Support\"",
			"targets":[{"queue":"` + queueA + `","timeout":15,"expression":"worker.id IN task.preferred_agents"},{"timeout":"15"}]}],
			"default_filter":{"queue":"` + queueA + `"}}}`, ""},
		{"string priority", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","priority":"10"}]}]}}`, ""},
		{"known worker", `{"task_routing":{"filters":[{"expression":"a != null","targets":[{"queue":"` + queueA + `","known_worker_sid":"task.a"}]}]}}`, ""},
		{"no task_routing", `{"filters":[]}`, "task_routing"},
		{"not JSON", `{`, "not valid JSON"},
		{"trailing data", `{"task_routing":{}} {}`, "after the JSON"},
		{"first target without queue", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"timeout":5}]}]}}`, "queue is required"},
		{"unknown queue", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"WQnope"}]}]}}`, "not a TaskQueue"},
		{"bad expression", `{"task_routing":{"filters":[{"expression":"a ==","targets":[{"queue":"` + queueA + `"}]}]}}`, "filters[0]: expression"},
		{"zero timeout", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","timeout":0}]}]}}`, "positive"},
		{"fractional timeout", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","timeout":1.5}]}]}}`, "not an integer"},
		{"both known worker keys", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","known_worker_sid":"task.a","known_worker_friendly_name":"task.b"}]}]}}`, "cannot both"},
		{"known worker not a task reference", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","known_worker_sid":"agent"}]}]}}`, "task attribute"},
		{"bad order_by", `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","order_by":"level SIDEWAYS"}]}]}}`, "order_by"},
		{"filter without targets", `{"task_routing":{"filters":[{"expression":"1==1","targets":[]}]}}`, "at least one target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRoutingConfig(tc.src, knownQueue)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseRoutingConfigInheritsQueue(t *testing.T) {
	cfg, err := parseRoutingConfig(`{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"`+queueA+`","priority":5,"timeout":10},{"timeout":20}]}]}}`, knownQueue)
	if err != nil {
		t.Fatal(err)
	}
	second := cfg.filters[0].targets[1]
	if second.queueSID != queueA || second.timeout != 20 || second.priority != nil {
		t.Errorf("second target %+v: want the first's queue, its own timeout and no priority", second)
	}
}

func TestParseTwiML(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		want    []string
		wantErr string
	}{
		{"enqueue", `<?xml version="1.0"?><Response><Say>hi</Say><Enqueue workflowSid="WW1"><Task priority="1000" timeout="30">{"a":1}</Task></Enqueue></Response>`, []string{"Say", "Enqueue"}, ""},
		{"dial conference", `<Response><Dial><Conference participantLabel="customer" endConferenceOnExit="true">room</Conference></Dial></Response>`, []string{"Dial"}, ""},
		{"empty response", `<Response/>`, nil, ""},
		{"wrong root", `<Reply/>`, nil, "not <Response>"},
		{"two roots", `<Response/><Response/>`, nil, "more than one root"},
		{"unmodelled verb", `<Response><Gather/></Response>`, nil, "not modelled"},
		{"plain queue", `<Response><Enqueue>support</Enqueue></Response>`, nil, "workflowSid"},
		{"task array", `<Response><Enqueue workflowSid="WW1"><Task>[1]</Task></Enqueue></Response>`, nil, "JSON object"},
		{"bad priority", `<Response><Enqueue workflowSid="WW1"><Task priority="high">{}</Task></Enqueue></Response>`, nil, "priority"},
		{"dial number", `<Response><Dial>+1555</Dial></Response>`, nil, "number"},
		{"conference without name", `<Response><Dial><Conference/></Dial></Response>`, nil, "needs a name"},
		{"bad boolean", `<Response><Dial><Conference muted="yes">r</Conference></Dial></Response>`, nil, "true or false"},
		{"not XML", `<Response>`, nil, "well-formed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verbs, err := parseTwiML(tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, v := range verbs {
				names = append(names, v.name)
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Errorf("verbs (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseRoutingConfig(f *testing.F) {
	f.Add(`{"task_routing":{"filters":[{"expression":"a == 1","targets":[{"queue":"` + queueA + `","timeout":"15","priority":2},{"expression":"worker.x IN task.y","skip_if":"workers.available == 0"}]}],"default_filter":{"queue":"` + queueA + `"}}}`)
	f.Add(`{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + queueA + `","known_worker_friendly_name":"task.n","order_by":"worker.level DESC, worker.age ASC"}]}]}}`)
	f.Add(`{"task_routing":null}`)
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := parseRoutingConfig(src, knownQueue)
		if err != nil {
			return
		}
		check := func(rt *resolvedTarget) {
			if rt.queueSID != queueA {
				t.Fatalf("accepted a target with queue %q", rt.queueSID)
			}
			if rt.timeout < 0 || (rt.priority != nil && *rt.priority < 0) {
				t.Fatalf("accepted a negative timeout or priority: %+v", rt)
			}
		}
		for _, f := range cfg.filters {
			if f.expr == nil || len(f.targets) == 0 {
				t.Fatalf("accepted a filter without expression or targets: %+v", f)
			}
			for _, rt := range f.targets {
				check(rt)
			}
		}
		if cfg.def != nil {
			check(cfg.def)
		}
	})
}

func FuzzParseTwiML(f *testing.F) {
	f.Add(`<Response><Say>x</Say><Enqueue workflowSid="WW1"><Task priority="1000">{"targetWorkerSid":"WK1"}</Task></Enqueue></Response>`)
	f.Add(`<Response><Dial><Conference participantLabel="c" startConferenceOnEnter="false">CF</Conference></Dial><Hangup/></Response>`)
	f.Add(`<Response><!-- c --><Pause length="2"/></Response>`)
	f.Fuzz(func(t *testing.T, src string) {
		verbs, err := parseTwiML(src)
		if err != nil {
			return
		}
		for _, v := range verbs {
			switch v.name {
			case "Enqueue":
				if v.workflowSID == "" || v.taskAttrs == nil {
					t.Fatalf("accepted an Enqueue without workflow or attributes: %+v", v)
				}
			case "Dial":
				if v.confName == "" {
					t.Fatalf("accepted a Dial without a conference name")
				}
			case "Say", "Play", "Pause", "Hangup", "Reject", "Leave":
			default:
				t.Fatalf("accepted verb %q", v.name)
			}
		}
	})
}

func FuzzParseSinkConfiguration(f *testing.F) {
	f.Add(`{"destination":"https://example.com/events","method":"POST","batch_events":true}`)
	f.Add(`"{\"destination\":\"http://127.0.0.1:8080/x\"}"`)
	f.Add(`{"destination":"ftp://x"}`)
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := parseSinkConfiguration(src)
		if err != nil {
			return
		}
		if dest, _ := cfg["destination"].(string); checkURL(dest) != nil {
			t.Fatalf("accepted destination %q", dest)
		}
	})
}

func FuzzParseTypes(f *testing.F) {
	f.Add(`{"type":"com.twilio.taskrouter.reservation.accepted","schema_version":1}`)
	f.Add(`com.twilio.taskrouter.task.canceled`)
	f.Add(`{"type":"x","schema_version":-1}`)
	f.Fuzz(func(t *testing.T, entry string) {
		types, err := (&Sim{}).parseTypes([]string{entry})
		if err != nil {
			return
		}
		for typ, v := range types {
			if !knownEventTypes[typ] || v < 1 {
				t.Fatalf("accepted type %q version %d", typ, v)
			}
		}
	})
}
