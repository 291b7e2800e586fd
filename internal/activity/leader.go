package activity

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The leader's webhook address. Event Streams reaches any replica through the Service; the engine
// runs on the leader alone, so a follower that receives a delivery forwards it to the leader. The
// leader says where it can be reached in a Lease of its own (not the leader-election Lease, whose
// elector rewrites it every few seconds): spec.holderIdentity is the base URL of its webhook
// server inside the cluster, e.g. http://10.0.3.7:9443, written each time a replica becomes leader.

// LeaderAddressLeaseSuffix is appended to the leader-election ID to name the address Lease.
const LeaderAddressLeaseSuffix = "-webhook-leader"

// DefaultAdvertiseResync is how often the leader checks its address Lease is still its own (a
// person or a stale replica may have changed it).
const DefaultAdvertiseResync = 30 * time.Second

// LeaderAddressLease names the address Lease of a leader-election ID.
func LeaderAddressLease(namespace, electionID string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: electionID + LeaderAddressLeaseSuffix}
}

// OperatorNamespace is the namespace the operator runs in: POD_NAMESPACE, else the service
// account's namespace file; empty outside a cluster.
func OperatorNamespace() string {
	if ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ParseLeaderAddress checks an advertised address: an http or https base URL with a host and
// nothing after it. The Lease is outside input: anything else is refused.
func ParseLeaderAddress(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("leader address %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("leader address %q is not an http(s) base URL", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Advertiser writes the leader's webhook address into the address Lease. It is a leader-only
// manager Runnable, started with the engine when this replica becomes leader.
type Advertiser struct {
	// Client writes the Lease (uncached reads are fine: it is read once per resync).
	Client client.Client
	// Lease is the address Lease (LeaderAddressLease).
	Lease types.NamespacedName
	// Address is this replica's webhook base URL inside the cluster.
	Address string
	// Resync; zero means DefaultAdvertiseResync.
	Resync time.Duration
}

// NeedLeaderElection makes the advertisement run on the leader only.
func (a *Advertiser) NeedLeaderElection() bool { return true }

// Start writes the Lease now and keeps it pointing here until ctx ends; then, on a clean stop, it
// deletes the Lease if it still points here, so followers do not forward to a replica that left.
func (a *Advertiser) Start(ctx context.Context) error {
	addr, err := ParseLeaderAddress(a.Address)
	if err != nil {
		return err
	}
	resync := a.Resync
	if resync <= 0 {
		resync = DefaultAdvertiseResync
	}
	log := ctrl.Log.WithName("activity").WithValues("lease", a.Lease.String(), "address", addr)
	retry := 200 * time.Millisecond
	for {
		wait := resync
		if err := a.write(ctx, addr); err != nil {
			log.Error(err, "Advertise the leader's webhook address; followers answer 503 meanwhile")
			wait, retry = retry, min(2*retry, resync)
		} else {
			retry = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			a.withdraw(log, addr)
			return nil
		case <-time.After(wait):
		}
	}
}

// write makes the Lease say addr, creating it when missing.
func (a *Advertiser) write(ctx context.Context, addr string) error {
	now := metav1.NewMicroTime(time.Now())
	var l coordinationv1.Lease
	err := a.Client.Get(ctx, a.Lease, &l)
	if apierrors.IsNotFound(err) {
		l = coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.Lease.Namespace, Name: a.Lease.Name},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &addr, AcquireTime: &now, RenewTime: &now},
		}
		if err := a.Client.Create(ctx, &l); err != nil {
			return err
		}
		ctrl.Log.WithName("activity").Info("Advertised the leader's webhook address", "lease", a.Lease.String(), "address", addr)
		return nil
	}
	if err != nil {
		return err
	}
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == addr {
		return nil
	}
	l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime = &addr, &now, &now
	if err := a.Client.Update(ctx, &l); err != nil {
		return err
	}
	ctrl.Log.WithName("activity").Info("Advertised the leader's webhook address", "lease", a.Lease.String(), "address", addr)
	return nil
}

// withdraw deletes the Lease if it still points here (best effort: a new leader overwrites it).
func (a *Advertiser) withdraw(log logr.Logger, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var l coordinationv1.Lease
	if err := a.Client.Get(ctx, a.Lease, &l); err != nil {
		return
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != addr {
		return
	}
	if err := a.Client.Delete(ctx, &l, client.Preconditions{ResourceVersion: &l.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
		log.Info("Could not withdraw the leader's webhook address", "error", err.Error())
	}
}

// ErrNoLeaderAddress: no leader has advertised a usable address (none elected yet, or the leader
// has no --webhook-advertise-address).
var ErrNoLeaderAddress = errors.New("no leader webhook address is advertised")

// LeaderLocator reads the leader's address on a follower, remembering it for TTL.
type LeaderLocator struct {
	// Reader reads the Lease, normally the manager's APIReader (Leases are not cached).
	Reader client.Reader
	Lease  types.NamespacedName
	// Self is this replica's own address, never forwarded to (a Lease left by this replica when
	// it led before).
	Self string
	// TTL of a read address; zero means 2 s. A failed forward forgets it at once.
	TTL time.Duration

	mu      sync.Mutex
	addr    string
	fetched time.Time
}

// Address returns the leader's webhook base URL.
func (l *LeaderLocator) Address(ctx context.Context) (string, error) {
	ttl := l.TTL
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	l.mu.Lock()
	if l.addr != "" && time.Since(l.fetched) < ttl {
		a := l.addr
		l.mu.Unlock()
		return a, nil
	}
	l.mu.Unlock()
	var lease coordinationv1.Lease
	if err := l.Reader.Get(ctx, l.Lease, &lease); err != nil {
		if apierrors.IsNotFound(err) {
			return "", ErrNoLeaderAddress
		}
		return "", fmt.Errorf("read the leader's address Lease %s: %w", l.Lease, err)
	}
	if lease.Spec.HolderIdentity == nil {
		return "", ErrNoLeaderAddress
	}
	addr, err := ParseLeaderAddress(*lease.Spec.HolderIdentity)
	if err != nil {
		return "", err
	}
	if self, err := ParseLeaderAddress(l.Self); err == nil && self == addr {
		return "", fmt.Errorf("%w: the Lease names this replica, which is not the leader", ErrNoLeaderAddress)
	}
	l.mu.Lock()
	l.addr, l.fetched = addr, time.Now()
	l.mu.Unlock()
	return addr, nil
}

// Forget drops the remembered address (after a failed forward).
func (l *LeaderLocator) Forget() {
	l.mu.Lock()
	l.addr = ""
	l.mu.Unlock()
}
