package app

import (
	"fmt"
	"net"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// advertiseLeader sets up how activity deliveries reach the leader: the leader-only Advertiser
// when this replica has an address to advertise, and the locator followers forward with. Both
// use the Lease activity.LeaderAddressLease names, in the leader-election namespace. Without a
// namespace (outside a cluster, no --leader-election-namespace) there is neither, and a follower
// answers 503 as without forwarding.
func advertiseLeader(mgr manager.Manager, o Options) (webhookserver.LeaderLocator, error) {
	log := ctrl.Log.WithName("setup")
	ns := o.LeaderElectionNS
	if ns == "" {
		ns = activity.OperatorNamespace()
	}
	if ns == "" || o.LeaderElectionID == "" {
		log.Info("No namespace for the leader's webhook address Lease: activity deliveries reaching a follower are answered 503, not forwarded")
		return nil, nil
	}
	lease := activity.LeaderAddressLease(ns, o.LeaderElectionID)
	self, err := advertiseAddress(o)
	if err != nil {
		return nil, err
	}
	if self != "" {
		if err := mgr.Add(&activity.Advertiser{Client: mgr.GetClient(), Lease: lease, Address: self, Resync: o.AdvertiseResync}); err != nil {
			return nil, fmt.Errorf("add the leader address advertiser: %w", err)
		}
	} else {
		log.Info("No --webhook-advertise-address and no POD_IP: this replica, when it leads, cannot be forwarded to")
	}
	return &activity.LeaderLocator{Reader: mgr.GetAPIReader(), Lease: lease, Self: self}, nil
}

// advertiseAddress is --webhook-advertise-address, else http://$POD_IP:<webhook port>, else "".
func advertiseAddress(o Options) (string, error) {
	if o.WebhookAdvertiseAddress != "" {
		addr, err := activity.ParseLeaderAddress(o.WebhookAdvertiseAddress)
		if err != nil {
			return "", fmt.Errorf("--webhook-advertise-address: %w", err)
		}
		return addr, nil
	}
	ip := strings.TrimSpace(os.Getenv("POD_IP"))
	if ip == "" {
		return "", nil
	}
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("POD_IP %q is not an IP address", ip)
	}
	_, port, err := net.SplitHostPort(o.WebhookBindAddress)
	if err != nil || port == "" || port == "0" {
		return "", fmt.Errorf("--webhook-bind-address %q has no fixed port to advertise", o.WebhookBindAddress)
	}
	return "http://" + net.JoinHostPort(ip, port), nil
}
