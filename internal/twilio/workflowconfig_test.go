package twilio

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const directFilter = `{"filter_friendly_name":"Direct to an Agent","expression":"targetWorkerSid != null","targets":[{"queue":"WQ1","known_worker_sid":"task.targetWorkerSid"}]}`

func TestWorkflowFiltersPrependRemove(t *testing.T) {
	cases := []struct {
		name, in, want string
		// back is what Remove(0) gives when it differs from in.
		back string
	}{
		{
			name: "compact",
			in:   `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"WQ2"}]}],"default_filter":{"queue":"WQ2"}}}`,
			want: `{"task_routing":{"filters":[` + directFilter + `,{"expression":"1==1","targets":[{"queue":"WQ2"}]}],"default_filter":{"queue":"WQ2"}}}`,
		},
		{
			name: "pretty printed, odd numbers and unknown keys kept",
			in:   "{\n  \"task_routing\": {\n    \"filters\": [\n      {\"expression\": \"a == 1.50\", \"targets\": [{\"queue\": \"WQ2\", \"priority\": \"10\"}], \"x_custom\": [1, 2]}\n    ],\n    \"default_filter\": {\"queue\": \"WQ2\"}\n  },\n  \"zz\": null\n}",
			want: "{\n  \"task_routing\": {\n    \"filters\": [\n      " + directFilter + ",\n      {\"expression\": \"a == 1.50\", \"targets\": [{\"queue\": \"WQ2\", \"priority\": \"10\"}], \"x_custom\": [1, 2]}\n    ],\n    \"default_filter\": {\"queue\": \"WQ2\"}\n  },\n  \"zz\": null\n}",
		},
		{
			name: "empty filters",
			in:   `{"task_routing":{"filters":[ ],"default_filter":{"queue":"WQ2"}}}`,
			want: `{"task_routing":{"filters":[` + directFilter + ` ],"default_filter":{"queue":"WQ2"}}}`,
		},
		{
			name: "no filters member",
			in:   `{"task_routing": {"default_filter":{"queue":"WQ2"}}}`,
			want: `{"task_routing": {"filters":[` + directFilter + `],"default_filter":{"queue":"WQ2"}}}`,
			back: `{"task_routing": {"filters":[],"default_filter":{"queue":"WQ2"}}}`,
		},
		{
			name: "empty task_routing",
			in:   `{"task_routing":{}}`,
			want: `{"task_routing":{"filters":[` + directFilter + `]}}`,
			back: `{"task_routing":{"filters":[]}}`,
		},
		{
			name: "strings with brackets and escapes",
			in:   `{"a":"}]\"{[","task_routing":{"filters":[{"expression":"x == \"]}\\\"\"","targets":[{"queue":"WQ2"}]}]}}`,
			want: `{"a":"}]\"{[","task_routing":{"filters":[` + directFilter + `,{"expression":"x == \"]}\\\"\"","targets":[{"queue":"WQ2"}]}]}}`,
		},
		{
			name: "duplicate task_routing: the last counts",
			in:   `{"task_routing":{"filters":[]},"task_routing":{"filters":[{"expression":"1==1"}]}}`,
			want: `{"task_routing":{"filters":[]},"task_routing":{"filters":[` + directFilter + `,{"expression":"1==1"}]}}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wf, err := ParseWorkflowFilters(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := wf.Prepend(directFilter)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Prepend:\n got %s\nwant %s", got, tc.want)
			}
			after, err := ParseWorkflowFilters(got)
			if err != nil {
				t.Fatalf("parse the result: %v", err)
			}
			if after.Filter(0) != directFilter {
				t.Fatalf("first filter is %s", after.Filter(0))
			}
			back, err := after.Remove(0)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.in
			if tc.back != "" {
				want = tc.back
			}
			if back != want {
				t.Fatalf("Remove(0):\n got %s\nwant %s", back, want)
			}
		})
	}
}

func TestWorkflowFiltersRemoveAndReplace(t *testing.T) {
	in := `{"task_routing":{"filters":[ {"expression":"a==1"}, {"expression":"b==1"},{"expression":"c==1"} ]}}`
	wf, err := ParseWorkflowFilters(in)
	if err != nil {
		t.Fatal(err)
	}
	if wf.Len() != 3 || wf.Filter(1) != `{"expression":"b==1"}` {
		t.Fatalf("filters: %d, [1] = %s", wf.Len(), wf.Filter(1))
	}
	for i, want := range []string{
		`{"task_routing":{"filters":[ {"expression":"b==1"},{"expression":"c==1"} ]}}`,
		`{"task_routing":{"filters":[ {"expression":"a==1"}, {"expression":"c==1"} ]}}`,
		`{"task_routing":{"filters":[ {"expression":"a==1"}, {"expression":"b==1"} ]}}`,
	} {
		got, err := wf.Remove(i)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Remove(%d):\n got %s\nwant %s", i, got, want)
		}
	}
	got, err := wf.Replace(1, `{"expression":"z==1"}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"task_routing":{"filters":[ {"expression":"a==1"}, {"expression":"z==1"},{"expression":"c==1"} ]}}`; got != want {
		t.Errorf("Replace:\n got %s\nwant %s", got, want)
	}
	if _, err := wf.Remove(3); err == nil {
		t.Error("Remove(3) of 3 filters succeeded")
	}
	if _, err := wf.Replace(0, `[1]`); err == nil {
		t.Error("Replace with a non-object succeeded")
	}
	if _, err := wf.Prepend(`{"a":`); err == nil {
		t.Error("Prepend of invalid JSON succeeded")
	}
}

func TestParseWorkflowFiltersRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"not JSON":                 `{"task_routing":`,
		"not an object":            `[1]`,
		"no task_routing":          `{"routing":{}}`,
		"task_routing not object":  `{"task_routing":[]}`,
		"filters not array":        `{"task_routing":{"filters":{}}}`,
		"filter not object":        `{"task_routing":{"filters":[1]}}`,
		"trailing data":            `{"task_routing":{}} {}`,
		"too big":                  `{"task_routing":{},"x":"` + strings.Repeat("a", maxWorkflowConfigBytes) + `"}`,
		"filters null":             `{"task_routing":{"filters":null}}`,
		"task_routing null":        `{"task_routing":null}`,
		"filter object then array": `{"task_routing":{"filters":[{},[]]}}`,
	} {
		if _, err := ParseWorkflowFilters(in); err == nil {
			t.Errorf("%s: accepted %.80s", name, in)
		}
	}
}

// FuzzWorkflowFilters checks, for any configuration the parser accepts, that
// Prepend yields valid JSON whose filters are the new one followed by the
// old ones unchanged, and that removing it gives back the input exactly.
func FuzzWorkflowFilters(f *testing.F) {
	for _, seed := range []string{
		`{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"WQ2"}]}],"default_filter":{"queue":"WQ2"}}}`,
		`{"task_routing":{}}`,
		`{"task_routing":{"filters":[]}}`,
		`{"task_routing":{"default_filter":{"queue":"Q"}}}`,
		"{\n \"task_routing\" : { \"filters\" : [ ] } }",
		`{"x":"\"}","task_routing":{"filters":[{"a":"]"},{"b":[{"c":"}"}]}]}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		wf, err := ParseWorkflowFilters(in)
		if err != nil {
			return
		}
		before := make([]string, wf.Len())
		for i := range before {
			before[i] = wf.Filter(i)
			if !json.Valid([]byte(before[i])) {
				t.Fatalf("filter %d is not JSON: %q", i, before[i])
			}
		}
		out, err := wf.Prepend(directFilter)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(out)) {
			t.Fatalf("Prepend made invalid JSON: %q", out)
		}
		after, err := ParseWorkflowFilters(out)
		if err != nil {
			t.Fatalf("parse after Prepend: %v (%q)", err, out)
		}
		got := make([]string, after.Len())
		for i := range got {
			got[i] = after.Filter(i)
		}
		if want := append([]string{directFilter}, before...); !reflect.DeepEqual(got, want) {
			t.Fatalf("filters after Prepend %q, want %q", got, want)
		}
		back, err := after.Remove(0)
		if err != nil {
			t.Fatal(err)
		}
		if wf.hasFilters && back != in {
			t.Fatalf("Remove(0) gave %q, want %q", back, in)
		}
		if again, err := ParseWorkflowFilters(back); err != nil || again.Len() != len(before) {
			t.Fatalf("Remove(0) gave %q (%v)", back, err)
		}
	})
}
