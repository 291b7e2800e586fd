// Command flex-operator runs the flex-operator manager: the controllers for WorkerActivityPolicy,
// ConferenceRecoveryPolicy and ConferenceRecovery, and the Twilio webhook server.
//
// The manager is built by internal/app, so that the end-to-end tests run exactly what this
// command runs. The kubebuilder markers below are where `kubebuilder create api` adds a new
// kind's scheme and controller; see the README's "Layout" for moving such a controller into
// internal/app.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	// The image carries no CA bundle (nothing but the binary): Twilio's certificates are checked
	// against Mozilla's roots built into the binary when the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"

	contactcenterv1alpha1 "github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/version"
	// +kubebuilder:scaffold:imports
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(contactcenterv1alpha1.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

func main() {
	opts := app.Options{Scheme: scheme}
	opts.BindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	// A parse error is one plain line (below), not the whole usage; --help prints the usage.
	flag.CommandLine.Init(os.Args[0], flag.ContinueOnError)
	flag.CommandLine.SetOutput(io.Discard)
	if err := flag.CommandLine.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			flag.CommandLine.SetOutput(os.Stdout)
			fmt.Printf("Usage of %s:\n", filepath.Base(os.Args[0]))
			flag.CommandLine.PrintDefaults()
			return
		}
		fail(2, err)
	}
	build := version.Get()
	if *showVersion {
		fmt.Println(build)
		return
	}
	// Flags first, then the kubeconfig, each reported as one plain line as kubectl does: the
	// JSON logger (with its stack traces) is for the running manager.
	if err := opts.Validate(); err != nil {
		fail(2, err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fail(1, fmt.Errorf("loading the kubeconfig (--kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config): %w", err))
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	ctx := ctrl.SetupSignalHandler()
	mgr, err := app.NewManager(ctx, cfg, opts)
	if err != nil {
		setupLog.Error(err, "Unable to build the manager")
		os.Exit(1)
	}
	// +kubebuilder:scaffold:builder

	setupLog.Info("Starting manager", "version", build.Version, "revision", build.Revision)
	if err := mgr.Start(ctx); err != nil {
		setupLog.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

// fail prints err as kubectl prints its errors, and exits with code.
func fail(code int, err error) {
	fmt.Fprintf(os.Stderr, "error: %v\nRun '%s --help' for the flags.\n", err, filepath.Base(os.Args[0]))
	os.Exit(code)
}
