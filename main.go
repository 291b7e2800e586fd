// Command flex-operator runs the flex-operator manager: the controllers for WorkerActivityPolicy,
// ConferenceRecoveryPolicy and ConferenceRecovery, and the Twilio webhook server.
package main

import (
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/flexoperator/flex-operator/internal/app"
)

func main() {
	var opts app.Options
	opts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	ctx := ctrl.SetupSignalHandler()
	mgr, err := app.NewManager(ctx, ctrl.GetConfigOrDie(), opts)
	if err != nil {
		log.Error(err, "Unable to build the manager")
		os.Exit(1)
	}
	log.Info("Starting manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}
