package deploy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
