package deploy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestMakeHelpReads: `make help` lists every documented target with its description in one
// column, and prints no make variable unexpanded.
func TestMakeHelpReads(t *testing.T) {
	cmd := exec.Command("make", "-s", "help")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "$(") {
		t.Errorf("make help prints an unexpanded variable:\n%s", out)
	}
	column, targets := -1, 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "  ") {
			continue // a section heading or a blank line
		}
		name := strings.Fields(line)[0]
		at := len(line) - len(strings.TrimLeft(line[2+len(name):], " "))
		if column == -1 {
			column = at
		}
		if at != column || at <= 2+len(name) {
			t.Errorf("the description of %q starts at column %d, the first one's at %d:\n%s", name, at, column, line)
		}
		targets++
	}
	if targets < 20 {
		t.Errorf("make help lists %d targets:\n%s", targets, out)
	}
}

// TestMakeImageTagsWhatTheChartInstalls: by default `make image` tags and stamps the image with the
// version the chart installs when image.tag is empty (its appVersion), and VERSION overrides both
// the tag and the stamp.
func TestMakeImageTagsWhatTheChartInstalls(t *testing.T) {
	deploy := named(template(t, "webhook.publicURL="+publicURL), "Deployment", releaseName)
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	chartImage := containers[0].(map[string]any)["image"].(string)
	for _, c := range []struct {
		vars         []string
		tag, version string
	}{
		{nil, chartImage, chartImage[strings.LastIndex(chartImage, ":")+1:]},
		{[]string{"VERSION=v9.9.9"}, "ghcr.io/flexoperator/flex-operator:v9.9.9", "v9.9.9"},
	} {
		cmd := exec.Command("make", append([]string{"-n", "image"}, c.vars...)...)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n image: %v\n%s", err, out)
		}
		words := strings.Fields(string(out))
		flag := func(name string) string {
			for i, w := range words {
				if w == name && i+1 < len(words) {
					return words[i+1]
				}
			}
			return ""
		}
		if got := flag("-tag"); got != c.tag {
			t.Errorf("make image %v tags %q, want %q", c.vars, got, c.tag)
		}
		if got := flag("-version"); got != c.version {
			t.Errorf("make image %v stamps version %q, want %q", c.vars, got, c.version)
		}
	}
}
