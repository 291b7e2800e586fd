package activity

import "testing"

func TestSetStringAttribute(t *testing.T) {
	cases := []struct {
		in, value string
		remove    bool
		want      string
	}{
		{`{"a":1}`, "Break", false, `{"a":1,"pendingActivity":"Break"}`},
		{`{}`, "Break", false, `{"pendingActivity":"Break"}`},
		{``, "Break", false, `{"pendingActivity":"Break"}`},
		{`{ "a" : 1.50 ,  "b":[1, 2] }`, "Break", false, `{ "a" : 1.50 ,  "b":[1, 2],"pendingActivity":"Break" }`},
		{`{"a":1,"pendingActivity":"Offline","b":{"x":"y"}}`, "Break", false, `{"a":1,"b":{"x":"y"},"pendingActivity":"Break"}`},
		{`{"a":1,"pendingActivity":"Offline","b":{"x":"y"}}`, "", true, `{"a":1,"b":{"x":"y"}}`},
		{`{"pendingActivity":"Offline", "b":2}`, "", true, `{"b":2}`},
		{`{"pendingActivity":"Offline"}`, "", true, `{}`},
		{`{"a":"\u00e9\"}"}`, "Br\"eak", false, `{"a":"\u00e9\"}","pendingActivity":"Br\"eak"}`},
		{`{"a":1}`, "", true, `{"a":1}`},
	}
	for _, tc := range cases {
		got, err := SetStringAttribute(tc.in, DefaultPendingActivityAttribute, tc.value, tc.remove)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("SetStringAttribute(%s, %q, %v) = %s, want %s", tc.in, tc.value, tc.remove, got, tc.want)
		}
		if !tc.remove && PendingFromAttributes(got, DefaultPendingActivityAttribute) != tc.value {
			t.Errorf("%s: the value does not read back", got)
		}
	}
	for _, bad := range []string{`[]`, `{"a":`, `"x"`, `{"a":1}}`} {
		if _, err := SetStringAttribute(bad, "k", "v", false); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestHasTrue(t *testing.T) {
	if !HasTrue(`{"extendedWrapup": true}`, "extendedWrapup") || HasTrue(`{"extendedWrapup":"true"}`, "extendedWrapup") ||
		HasTrue(`{}`, "extendedWrapup") || HasTrue(`nope`, "extendedWrapup") {
		t.Fatal("HasTrue")
	}
}
