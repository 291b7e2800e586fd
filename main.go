// Command flex-operator runs the flex-operator manager: the controllers for WorkerActivityPolicy,
// ConferenceRecoveryPolicy and ConferenceRecovery, and the Twilio webhook server.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	// The image carries no CA bundle (nothing but the binary): Twilio's certificates are checked
	// against Mozilla's roots built into the binary when the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/version"
)

func main() {
	var opts app.Options
	opts.BindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	build := version.Get()
	if *showVersion {
		fmt.Println(build)
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if err := opts.Validate(); err != nil {
		log.Error(err, "Invalid flags")
		os.Exit(2)
	}

	ctx := ctrl.SetupSignalHandler()
	mgr, err := app.NewManager(ctx, ctrl.GetConfigOrDie(), opts)
	if err != nil {
		log.Error(err, "Unable to build the manager")
		os.Exit(1)
	}
	log.Info("Starting manager", "version", build.Version, "revision", build.Revision)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}
