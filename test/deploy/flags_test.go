package deploy

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagErrorsArePlain runs the built binary as a person would, with a mistake in its flags and
// no cluster: each mistake is named in one plain line (as kubectl prints its errors, not a JSON log
// record with a stack trace), before any kubeconfig is looked for, and the exit code says which.
func TestFlagErrorsArePlain(t *testing.T) {
	bin := operatorBinary(t)
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"public URL not http(s)":       {[]string{"--webhook-public-url=ftp://flex.example.com"}, 2, `--webhook-public-url: public URL "ftp://flex.example.com" must be an absolute http or https URL`},
		"public URL with a query":      {[]string{"--webhook-public-url=https://flex.example.com/?a=1"}, 2, "--webhook-public-url: "},
		"Twilio base URL":              {[]string{"--twilio-base-url=https://example.com"}, 2, "--twilio-base-url"},
		"drain beyond shutdown":        {[]string{"--webhook-drain-delay=30s", "--graceful-shutdown-timeout=30s"}, 2, "--graceful-shutdown-timeout (30s) must exceed"},
		"advertise address":            {[]string{"--webhook-advertise-address=10.0.3.7:9443"}, 2, "--webhook-advertise-address"},
		"unknown flag":                 {[]string{"--webhook-public-uri=https://flex.example.com"}, 2, "flag provided but not defined: -webhook-public-uri"},
		"mistyped value":               {[]string{"--twilio-rate=fast"}, 2, `invalid value "fast" for flag -twilio-rate`},
		"negative sweep interval":      {[]string{"--recovery-sweep-interval=-1s"}, 2, "--recovery-sweep-interval must not be negative"},
		"valid flags, no cluster":      {[]string{"--webhook-public-url=https://flex.example.com"}, 1, "loading the kubeconfig"},
		"kubeconfig that is not there": {[]string{"--kubeconfig=" + filepath.Join(t.TempDir(), "missing"), "--webhook-public-url=https://flex.example.com"}, 1, "loading the kubeconfig"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			// No cluster anywhere: no KUBECONFIG, an empty home, not in a Pod.
			cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != c.code {
				t.Fatalf("exit %v, want code %d\nstderr:\n%s", err, c.code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "error: ") || !strings.Contains(lines[0], c.want) ||
				!strings.Contains(lines[1], "--help") {
				t.Errorf("stderr:\n%s\nwant one line `error: ...%s...` and a pointer to --help", stderr.String(), c.want)
			}
			if strings.ContainsAny(stderr.String(), "{}") || strings.Contains(stderr.String(), ".go:") {
				t.Errorf("stderr is a log record or carries a stack trace:\n%s", stderr.String())
			}
			if c.code == 2 && strings.Contains(stderr.String(), "kubeconfig") {
				t.Errorf("a flag mistake reported after looking for a kubeconfig:\n%s", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
		})
	}
}
