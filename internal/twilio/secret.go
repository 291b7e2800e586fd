package twilio

import (
	"fmt"
	"strings"
)

// Keys of the credentials Secret named by a policy's credentialsSecretRef.
const (
	SecretKeyAccountSID   = "accountSid"
	SecretKeyAuthToken    = "authToken"
	SecretKeyAPIKeySID    = "apiKeySid"
	SecretKeyAPIKeySecret = "apiKeySecret"
)

// NewFunc builds a Client; controllers take one so tests can point them at
// the simulator or a fake (New is the production value).
type NewFunc func(cfg Config, opts ...Option) (Client, error)

var _ NewFunc = New

// ConfigFromSecret reads a credentials Secret's data into a Config and
// validates it. The auth token is required even with an API key, because
// webhook signatures can only be checked with it. Surrounding whitespace (a
// trailing newline from `kubectl create secret --from-file`) is dropped.
func ConfigFromSecret(data map[string][]byte) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(string(data[k])) }
	cfg := Config{
		AccountSID:   get(SecretKeyAccountSID),
		AuthToken:    get(SecretKeyAuthToken),
		APIKeySID:    get(SecretKeyAPIKeySID),
		APIKeySecret: get(SecretKeyAPIKeySecret),
	}
	if cfg.AuthToken == "" {
		return Config{}, fmt.Errorf("twilio credentials secret: key %q is required (it checks webhook signatures)", SecretKeyAuthToken)
	}
	if (cfg.APIKeySID == "") != (cfg.APIKeySecret == "") {
		return Config{}, fmt.Errorf("twilio credentials secret: %q and %q go together", SecretKeyAPIKeySID, SecretKeyAPIKeySecret)
	}
	if err := validateConfig(cfg); err != nil {
		return Config{}, fmt.Errorf("twilio credentials secret: %w", err)
	}
	return cfg, nil
}
