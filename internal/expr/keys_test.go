package expr

import (
	"slices"
	"testing"
)

func TestKeys(t *testing.T) {
	for src, want := range map[string][]string{
		"1==1": {},
		`routing.skills HAS "voice" AND (activity_name == 'Lunch' OR sid IN ['WK1'])`: {"activity_name", "routing", "sid"},
		`team == 'a' OR team == 'b'`:                 {"team"},
		`'activity_sid' == x`:                        {"x"},
		`worker.activity_sid != null AND n.x[0] > 1`: {"n", "worker"},
	} {
		got := MustParse(src).Keys()
		if !slices.Equal(got, want) {
			t.Errorf("%s: keys %v, want %v", src, got, want)
		}
	}
}
