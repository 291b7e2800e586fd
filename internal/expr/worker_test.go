package expr

import "testing"

func TestWorkerEnv(t *testing.T) {
	attrs := map[string]any{"skills": []any{"voice"}, "sid": "attribute", "level": 3.0}
	env := WorkerEnv(attrs, "WK1", "alice", "WA1", "Available")
	for src, want := range map[string]bool{
		"sid == 'WK1'": true,
		"friendly_name == 'alice' AND skills HAS 'voice'":        true,
		"activity_name == 'Available' AND activity_sid == 'WA1'": true,
		"level > 2":          true,
		"sid == 'attribute'": false,
	} {
		if got := MustParse(src).Eval(env); got != want {
			t.Errorf("%s = %v, want %v", src, got, want)
		}
	}
	if attrs["sid"] != "attribute" || len(attrs) != 3 {
		t.Errorf("the attributes were changed: %v", attrs)
	}
	if _, ok := WorkerEnv(nil, "WK2", "bob", "", "")["activity_name"]; ok {
		t.Error("a worker without an activity has an activity_name")
	}
}
