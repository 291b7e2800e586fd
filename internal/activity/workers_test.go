package activity

import (
	"strings"
	"testing"
)

func TestWorkersExpression(t *testing.T) {
	for _, src := range []string{"", "1==1", `routing.skills HAS "voice"`, `sid IN ['WK1'] OR friendly_name == 'alice'`,
		`routing.activity_name == 'x'`, `team == 'activity_name'`} {
		if _, err := WorkersExpression(src); err != nil {
			t.Errorf("%q refused: %v", src, err)
		}
	}
	for src, field := range map[string]string{
		`activity_name == 'Available'`:                      "activity_name",
		`skills HAS 'voice' AND activity_sid != 'WA1'`:      "activity_sid",
		`activity_sid == 'WA1' OR activity_name == 'Lunch'`: "activity_name and activity_sid",
		`skills HAS`: "not a valid TaskRouter expression",
	} {
		_, err := WorkersExpression(src)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: error %v, want one naming %s", src, err, field)
		}
	}
}
