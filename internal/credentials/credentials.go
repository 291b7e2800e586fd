package credentials

import (
	"context"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// Credentials are the Twilio credentials read from a policy's Secret.
type Credentials struct {
	AccountSID   string
	AuthToken    string
	APIKeySID    string
	APIKeySecret string
}

// Error says why a policy's credentials could not be resolved, in the words of a
// condition: Reason is one of the v1alpha1.ReasonSecret* constants and Message names what to fix.
type Error struct {
	Reason  string
	Message string
	// Err is set for failures that are not the user's to fix (the API server could not be reached).
	Err error
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	apiKeySIDPattern  = regexp.MustCompile(`^SK[0-9a-f]{32}$`)
	// twilio-go refuses credentials with anything but letters and digits before sending a request.
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// Resolve reads and checks the Secret a policy names. The reader should be uncached (the
// manager's API reader): the operator watches only Secret metadata, so that it never holds every
// Secret of the cluster in memory.
func Resolve(ctx context.Context, r client.Reader, namespace string, ref v1alpha1.SecretReference) (Credentials, *Error) {
	var secret corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return Credentials{}, &Error{
				Reason:  v1alpha1.ReasonSecretNotFound,
				Message: fmt.Sprintf("Secret %q not found in namespace %q: create it with the keys %s and %s", ref.Name, namespace, v1alpha1.SecretKeyAccountSID, v1alpha1.SecretKeyAuthToken),
			}
		}
		return Credentials{}, &Error{Reason: "SecretUnreadable", Message: fmt.Sprintf("Read Secret %q: %v", ref.Name, err), Err: err}
	}
	get := func(key string) string { return string(secret.Data[key]) }
	for _, key := range []string{v1alpha1.SecretKeyAccountSID, v1alpha1.SecretKeyAuthToken} {
		if get(key) == "" {
			return Credentials{}, missingKey(ref.Name, key)
		}
	}
	creds := Credentials{
		AccountSID:   get(v1alpha1.SecretKeyAccountSID),
		AuthToken:    get(v1alpha1.SecretKeyAuthToken),
		APIKeySID:    get(v1alpha1.SecretKeyAPIKeySID),
		APIKeySecret: get(v1alpha1.SecretKeyAPIKeySecret),
	}
	if creds.APIKeySID != "" && creds.APIKeySecret == "" {
		return Credentials{}, missingKey(ref.Name, v1alpha1.SecretKeyAPIKeySecret)
	}
	if creds.APIKeySecret != "" && creds.APIKeySID == "" {
		return Credentials{}, missingKey(ref.Name, v1alpha1.SecretKeyAPIKeySID)
	}
	switch {
	case !accountSIDPattern.MatchString(creds.AccountSID):
		return Credentials{}, invalidKey(ref.Name, v1alpha1.SecretKeyAccountSID, "an account SID (AC followed by 32 hex digits)")
	case !tokenPattern.MatchString(creds.AuthToken):
		return Credentials{}, invalidKey(ref.Name, v1alpha1.SecretKeyAuthToken, "letters and digits only (check for a trailing newline)")
	case creds.APIKeySID != "" && !apiKeySIDPattern.MatchString(creds.APIKeySID):
		return Credentials{}, invalidKey(ref.Name, v1alpha1.SecretKeyAPIKeySID, "an API key SID (SK followed by 32 hex digits)")
	case creds.APIKeySecret != "" && !tokenPattern.MatchString(creds.APIKeySecret):
		return Credentials{}, invalidKey(ref.Name, v1alpha1.SecretKeyAPIKeySecret, "letters and digits only (check for a trailing newline)")
	}
	return creds, nil
}

func missingKey(secret, key string) *Error {
	return &Error{
		Reason:  v1alpha1.ReasonSecretKeyMissing,
		Message: fmt.Sprintf("Secret %q has no key %q", secret, key),
	}
}

func invalidKey(secret, key, want string) *Error {
	return &Error{
		Reason:  v1alpha1.ReasonSecretInvalid,
		Message: fmt.Sprintf("Secret %q key %q must be %s", secret, key, want),
	}
}
