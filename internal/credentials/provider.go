package credentials

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// Provider hands out one Twilio client per credentials Secret and keeps it until the Secret
// changes. The webhook server and the controllers share it, so a hot path (a conference callback)
// costs no API-server read: the Secret's resourceVersion comes from the manager's metadata cache,
// and its data is read uncached only when that version changes.
type Provider struct {
	// Metadata reads PartialObjectMetadata of Secrets, normally from the manager's cache (the
	// policy controllers watch Secret metadata, so the informer exists).
	Metadata client.Reader
	// Data reads whole Secrets, normally the manager's uncached API reader.
	Data client.Reader
	// New builds clients; twilio.New when nil.
	New twilio.NewFunc
	// BaseURL, when set, sends every request there (the simulator).
	BaseURL string
	// Options are passed to New for every client.
	Options []twilio.Option

	mu      sync.Mutex
	entries map[types.NamespacedName]entry
}

type entry struct {
	resourceVersion string
	creds           Credentials
	client          twilio.Client
	// refusal, when set, is why the Secret at resourceVersion ("" for a missing one) is unusable,
	// remembered until refusedUntil so that requests naming it cost no API-server read each.
	refusal      *Error
	refusedUntil time.Time
}

// refusalTTL is how long an unusable Secret is not read again while its resourceVersion stays the
// same (a Secret created or fixed gets a new one, which is read at once): it bounds what requests
// for a policy with a broken Secret can cost, unauthenticated ones included.
const refusalTTL = 5 * time.Second

// For returns the credentials and a client for a policy's twilio block. A *Error means the
// Secret is missing or wrong (the user's to fix); any other error is transient.
func (p *Provider) For(ctx context.Context, namespace string, spec v1alpha1.TwilioSpec) (Credentials, twilio.Client, error) {
	key := types.NamespacedName{Namespace: namespace, Name: spec.CredentialsSecretRef.Name}
	var meta metav1.PartialObjectMetadata
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := p.Metadata.Get(ctx, key, &meta); err != nil && !apierrors.IsNotFound(err) {
		return Credentials{}, nil, err
	}
	rv := meta.ResourceVersion
	p.mu.Lock()
	e, ok := p.entries[key]
	p.mu.Unlock()
	if ok && e.resourceVersion == rv {
		switch {
		case e.refusal == nil && rv != "":
			return e.creds, e.client, nil
		case e.refusal != nil && time.Now().Before(e.refusedUntil):
			return Credentials{}, nil, e.refusal
		}
	}
	creds, cerr := Resolve(ctx, p.Data, namespace, spec.CredentialsSecretRef)
	if cerr != nil {
		if cerr.Err != nil {
			return Credentials{}, nil, cerr.Err
		}
		p.mu.Lock()
		if p.entries == nil {
			p.entries = map[types.NamespacedName]entry{}
		}
		p.entries[key] = entry{resourceVersion: rv, refusal: cerr, refusedUntil: time.Now().Add(refusalTTL)}
		p.mu.Unlock()
		return Credentials{}, nil, cerr
	}
	newFn := p.New
	if newFn == nil {
		newFn = twilio.New
	}
	c, err := newFn(twilio.Config{
		AccountSID: creds.AccountSID, AuthToken: creds.AuthToken,
		APIKeySID: creds.APIKeySID, APIKeySecret: creds.APIKeySecret,
		BaseURL: p.BaseURL,
	}, p.Options...)
	if err != nil {
		return Credentials{}, nil, &Error{Reason: v1alpha1.ReasonSecretInvalid, Message: err.Error()}
	}
	if rv != "" {
		p.mu.Lock()
		if p.entries == nil {
			p.entries = map[types.NamespacedName]entry{}
		}
		p.entries[key] = entry{resourceVersion: rv, creds: creds, client: c}
		p.mu.Unlock()
	}
	return creds, c, nil
}
