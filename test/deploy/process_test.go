package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flexoperator/flex-operator/internal/scenario"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

// operatorBinary builds the root package (main.go) once per test run, as `make image` does (static, -trimpath, so the
// build cache `make image` filled is reused) but without the version stamp.
func operatorBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "flex-operator-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "manager")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binaryPath, ".")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build .: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// processEnvironment is the test environment for operator processes, with the binary built and
// a kubeconfig of the control plane for them.
func processEnvironment(t *testing.T) (*scenario.Env, string) {
	t.Helper()
	e := environment(t)
	operatorBinary(t)
	kubeconfig, err := e.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return e, kubeconfig
}

// operatorProcess is the operator's binary running as a process, as a Pod's container runs it.
type operatorProcess struct {
	name        string
	cmd         *exec.Cmd
	webhookAddr string
	probeAddr   string
	// metricsAddr is the --metrics-bind-address the test gave ("" when it gave none).
	metricsAddr string
	logPath     string
	exited      chan struct{}
	// exitErr is what Wait returned and exitedAt when; read them only once exited is closed.
	exitErr  error
	exitedAt time.Time
}

// startOperatorProcess runs the binary with the given flags plus its own webhook and probe
// addresses, against the API server of kubeconfig. Its output goes to a file whose tail is logged
// if the test fails. The process is killed at the end of the test if it is still running.
func startOperatorProcess(t *testing.T, name, kubeconfig string, flags ...string) *operatorProcess {
	t.Helper()
	p := &operatorProcess{
		name: name, webhookAddr: freeAddr(t), probeAddr: freeAddr(t),
		logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{}),
	}
	for _, f := range flags {
		if addr, ok := strings.CutPrefix(f, "--metrics-bind-address="); ok && addr != "0" {
			p.metricsAddr = addr
		}
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--webhook-bind-address=" + p.webhookAddr,
		"--health-probe-bind-address=" + p.probeAddr,
	}, flags...)
	p.cmd = exec.Command(operatorBinary(t), args...)
	// Nothing of the test's own environment that the operator reads (POD_IP, POD_NAMESPACE), but
	// POD_IP as the chart sets it (the Pod's IP, here loopback): a leader advertises
	// http://$POD_IP:<webhook port>, where the followers forward activity deliveries.
	p.cmd.Env = []string{"KUBECONFIG=" + kubeconfig, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "POD_IP=127.0.0.1"}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		p.exitedAt = time.Now()
		_ = logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s's log (last lines):\n%s", name, p.tail(40))
		}
	})
	return p
}

// readyz returns the status code of the process's /readyz (0 when it does not answer).
func (p *operatorProcess) readyz() int {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + p.probeAddr + "/readyz")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits until /readyz answers 200, failing early if the process exits.
func (p *operatorProcess) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	err := scenario.Poll(context.Background(), timeout, func() (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("%s exited while starting: %v", p.name, p.exitErr)
		default:
		}
		return p.readyz() == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("%s never became ready: %v", p.name, err)
	}
}

// terminate sends SIGTERM, as the kubelet does to a Pod being replaced.
func (p *operatorProcess) terminate(t *testing.T) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	return time.Now()
}

// kill sends SIGKILL, as a node that fails or the kernel's OOM killer does: nothing of the process
// runs after it, no Lease is released and no request in flight is answered.
func (p *operatorProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
}

// killedBy reports whether the process has exited because of signal sig (not by exiting itself).
func (p *operatorProcess) killedBy(sig syscall.Signal) bool {
	if p.running() {
		return false
	}
	var exit *exec.ExitError
	if !errors.As(p.exitErr, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// metrics scrapes the process's /metrics, served over plain HTTP (started with
// --metrics-bind-address and --metrics-secure=false).
func (p *operatorProcess) metrics() (map[string]*dto.MetricFamily, error) {
	if p.metricsAddr == "" {
		return nil, fmt.Errorf("%s was started without --metrics-bind-address", p.name)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", p.name, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// metricValue is the sum over the series of family name whose labels include every pair of want:
// a counter's or gauge's value, a histogram's count of observations.
func metricValue(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// running reports whether the process has not exited yet.
func (p *operatorProcess) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// tail returns the last n lines of the process's output.
func (p *operatorProcess) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errorsSince returns the error-level log lines written after the first offset bytes of output.
func (p *operatorProcess) errorsSince(offset int) []string {
	out := p.log()
	if offset > len(out) {
		offset = len(out)
	}
	var errs []string
	for _, line := range strings.Split(out[offset:], "\n") {
		if strings.Contains(line, `"level":"error"`) && !leaseReleaseNoise(line) {
			errs = append(errs, line)
		}
	}
	return errs
}

// leaseReleaseNoise says whether an error line is what the leader-election libraries log when a
// clean stop gives the Lease up (LeaderElectionReleaseOnCancel), not a fault: client-go's renew
// loop reports its cancelled context, and controller-runtime's OnStoppedLeading hands "leader
// election lost" to a manager already stopping. Both come only after the runnables have stopped;
// whether they appear depends on where the renew loop was when the stop began.
func leaseReleaseNoise(line string) bool {
	return (strings.Contains(line, "Error retrieving lease lock") && strings.Contains(line, "context canceled")) ||
		(strings.Contains(line, "error received after stop sequence was engaged") && strings.Contains(line, "leader election lost"))
}

// log returns the process's whole output.
func (p *operatorProcess) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(bytes.ToValidUTF8(b, nil))
}
