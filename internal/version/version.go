// Package version stamps the operator's build: `--version`, the start-up log line and the
// flexoperator_build_info metric all read it. The Makefile and the Dockerfile set Version and
// Revision with -ldflags "-X"; a plain `go build` falls back to what the Go toolchain recorded.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Set at link time: go build -ldflags "-X github.com/flexoperator/flex-operator/internal/version.Version=v0.1.0".
var (
	// Version is the release (a tag such as v0.1.0, or `git describe` output).
	Version = ""
	// Revision is the commit the binary was built from.
	Revision = ""
)

// Info is the build's identity.
type Info struct {
	Version   string
	Revision  string
	GoVersion string
}

// Get returns the build's identity, filling what the linker did not set from the module and VCS
// information the Go toolchain embeds.
func Get() Info {
	info := Info{Version: Version, Revision: Revision, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Revision == "" {
				info.Revision = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Revision == "" {
		info.Revision = "unknown"
	}
	return info
}

// String is the line `flex-operator --version` prints.
func (i Info) String() string {
	return fmt.Sprintf("flex-operator %s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}

var buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "flexoperator_build_info",
	Help: "Always 1; the labels name the running build's version, commit and Go version.",
}, []string{"version", "revision", "goversion"})

func init() {
	i := Get()
	buildInfo.WithLabelValues(i.Version, i.Revision, i.GoVersion).Set(1)
	ctrlmetrics.Registry.MustRegister(buildInfo)
}
