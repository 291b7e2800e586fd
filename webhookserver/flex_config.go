package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// FlexConfigVersion is the version of the FlexConfig answer's shape. The plugin refuses an answer
// of a version it does not know, so a change that would make an older plugin misread the answer
// must raise it.
const FlexConfigVersion = 1

// FlexConfigMaxAge is how long the browser (and the plugin's own cache) may reuse a FlexConfig
// answer without asking again: a workflow added to a policy reaches every agent within it.
const FlexConfigMaxAge = 300

// DefaultGracefulTimeoutMs is how long the plugin may hold up a hang-up or transfer while its
// graceful mark is on the way (FlexRecoveryConfig.GracefulTimeoutMs).
const DefaultGracefulTimeoutMs = 1500

// FlexConfig is the answer of GET /flex/config?accountSid=AC…: what the Flex companion needs to
// know of the operator, read from the live policies of the token's account, so that nothing is
// configured twice.
type FlexConfig struct {
	// Version is FlexConfigVersion.
	Version int `json:"version"`
	// AccountSID is the account the token was checked with; only its policies are listed.
	AccountSID string `json:"accountSid"`
	// MaxAgeSeconds is how long the answer may be reused (also the answer's Cache-Control max-age).
	MaxAgeSeconds int `json:"maxAgeSeconds"`
	// Recovery lists the account's ConferenceRecoveryPolicies; nil when it has none.
	Recovery *FlexRecoveryConfig `json:"recovery,omitempty"`
	// Activity lists the account's WorkerActivityPolicies; nil when it has none.
	Activity *FlexActivityConfig `json:"activity,omitempty"`
}

// FlexRecoveryConfig is the conference recovery part of FlexConfig.
type FlexRecoveryConfig struct {
	// GracefulTimeoutMs bounds the wait for a graceful mark before a hang-up goes on.
	GracefulTimeoutMs int `json:"gracefulTimeoutMs"`
	// Policies are ordered by namespace, then name.
	Policies []FlexRecoveryPolicy `json:"policies"`
}

// FlexRecoveryPolicy is one ConferenceRecoveryPolicy as the plugin uses it.
type FlexRecoveryPolicy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// PublicURL is the base URL Twilio calls for the policy (its spec.publicBaseUrl, else the
	// operator's --webhook-public-url); the callback URL is built on it.
	PublicURL string `json:"publicUrl"`
	// WorkflowSIDs are the policy's spec.protectedWorkflowSids.
	WorkflowSIDs []string `json:"workflowSids"`
	// Routes are the policy's companion-facing URLs, exactly as the operator checks them.
	Routes FlexPolicyRoutes `json:"routes"`
}

// FlexPolicyRoutes are the URLs of a policy's routes the plugin calls or hands to Twilio.
type FlexPolicyRoutes struct {
	// Conference is the conference status callback URL (PatternConference).
	Conference string `json:"conference"`
	// Graceful is the graceful mark's URL (PatternGraceful).
	Graceful string `json:"graceful"`
	// Recovery is the recovery read's URL with a {conferenceSid} placeholder (PatternRecovery).
	Recovery string `json:"recovery"`
}

// FlexActivityConfig is the worker activity part of FlexConfig.
type FlexActivityConfig struct {
	// Policies are ordered by namespace, then name.
	Policies []FlexActivityPolicy `json:"policies"`
}

// FlexActivityPolicy is one WorkerActivityPolicy as the plugin uses it.
type FlexActivityPolicy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// PendingActivityAttribute and ExtendedWrapupAttribute are the policy's spec fields.
	PendingActivityAttribute string `json:"pendingActivityAttribute"`
	ExtendedWrapupAttribute  string `json:"extendedWrapupAttribute"`
	// SystemActivities are the activities the operator sets and agents may not pick: every
	// activity of spec.activities but Available.
	SystemActivities []string `json:"systemActivities"`
	// ActivityChangeWhileBusy is Defer or Allow.
	ActivityChangeWhileBusy v1alpha1.BusyChangePolicy `json:"activityChangeWhileBusy"`
}

// handleFlexConfig answers GET /flex/config?accountSid=AC… for the Flex token of the
// Authorization header: 200 with the account's FlexConfig; 400 without a well-formed accountSid;
// 401 without a token; 403 when Twilio refuses the token for that account, or when the account has
// no policy here (the same answer, so that a caller cannot learn which accounts the operator
// serves); 429 and 503 as authenticateFlex.
func (r *Routes) handleFlexConfig(w http.ResponseWriter, req *http.Request) {
	allowCORS(w)
	accountSID := req.URL.Query().Get("accountSid")
	if !events.ValidSID(accountSID, "AC") {
		http.Error(w, "accountSid must be the Flex account's SID (AC and 32 lower-case hex digits)", http.StatusBadRequest)
		return
	}
	token := bearerToken(req)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flex-operator"`)
		http.Error(w, "a Flex token is required (Authorization: Bearer <token>)", http.StatusUnauthorized)
		return
	}
	found, err := r.accountPolicies(req.Context(), accountSID)
	if err != nil {
		r.log.Error(err, "Read the policies for the Flex companion's configuration")
		unavailable(w, "cannot read the policies")
		return
	}
	if found.checker == nil {
		r.refuse(w, req, http.StatusForbidden, "the Flex token is not valid")
		return
	}
	if _, ok := r.checkFlexToken(w, req, found.checkerName, accountSID, found.checker, token); !ok {
		return
	}
	// The answer is the account's, not the user's: every agent of the account gets the same one.
	w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(FlexConfigMaxAge))
	w.Header().Set("Vary", "Authorization")
	writeJSON(w, r.flexConfig(accountSID, found))
}

// accountPolicySet is what accountPolicies found for one account.
type accountPolicySet struct {
	recovery []v1alpha1.ConferenceRecoveryPolicy
	activity []v1alpha1.WorkerActivityPolicy
	// checker is a Twilio client of the account (of its first policy), to check the token with;
	// nil when the account has no policy.
	checker     twilio.Client
	checkerName string
}

// accountPolicies lists the policies, in the watched namespaces, whose credentials are the
// account's. A policy whose Secret is unusable is left out (its own Ready condition says why); a
// transient failure to read one is an error, since leaving its policy out would tell the plugin a
// protected workflow is not.
func (r *Routes) accountPolicies(ctx context.Context, accountSID string) (accountPolicySet, error) {
	var set accountPolicySet
	recoveryPolicies, activityPolicies, err := r.listPolicies(ctx)
	if err != nil {
		return set, err
	}
	ofAccount := func(namespace, name string, spec v1alpha1.TwilioSpec) (bool, error) {
		creds, tw, err := r.opts.Credentials.For(ctx, namespace, spec)
		if err != nil {
			var unusable *credentials.Error
			if errors.As(err, &unusable) {
				return false, nil
			}
			return false, fmt.Errorf("read the credentials of %s/%s: %w", namespace, name, err)
		}
		if creds.AccountSID != accountSID {
			return false, nil
		}
		if set.checker == nil {
			set.checker, set.checkerName = tw, namespace+"/"+name
		}
		return true, nil
	}
	slices.SortFunc(recoveryPolicies, func(a, b v1alpha1.ConferenceRecoveryPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	slices.SortFunc(activityPolicies, func(a, b v1alpha1.WorkerActivityPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for _, p := range recoveryPolicies {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		ok, err := ofAccount(p.Namespace, p.Name, p.Spec.Twilio)
		if err != nil {
			return set, err
		}
		if ok {
			set.recovery = append(set.recovery, p)
		}
	}
	for _, p := range activityPolicies {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		ok, err := ofAccount(p.Namespace, p.Name, p.Spec.Twilio)
		if err != nil {
			return set, err
		}
		if ok {
			set.activity = append(set.activity, p)
		}
	}
	return set, nil
}

// watchedNamespaces are the namespaces to list policies in: the watched ones, or "" (all) when the
// operator watches all. A list per namespace, since a cluster-wide list would read namespaces the
// operator was told to leave alone.
func (r *Routes) watchedNamespaces() []string {
	if len(r.opts.Namespaces) == 0 {
		return []string{""}
	}
	return r.opts.Namespaces
}

// listPolicies lists the ConferenceRecoveryPolicies and WorkerActivityPolicies of the watched
// namespaces from the cache.
func (r *Routes) listPolicies(ctx context.Context) ([]v1alpha1.ConferenceRecoveryPolicy, []v1alpha1.WorkerActivityPolicy, error) {
	var recoveryPolicies []v1alpha1.ConferenceRecoveryPolicy
	var activityPolicies []v1alpha1.WorkerActivityPolicy
	for _, ns := range r.watchedNamespaces() {
		var rl v1alpha1.ConferenceRecoveryPolicyList
		if err := r.opts.Client.List(ctx, &rl, client.InNamespace(ns)); err != nil {
			return nil, nil, fmt.Errorf("list ConferenceRecoveryPolicies: %w", err)
		}
		recoveryPolicies = append(recoveryPolicies, rl.Items...)
		var al v1alpha1.WorkerActivityPolicyList
		if err := r.opts.Client.List(ctx, &al, client.InNamespace(ns)); err != nil {
			return nil, nil, fmt.Errorf("list WorkerActivityPolicies: %w", err)
		}
		activityPolicies = append(activityPolicies, al.Items...)
	}
	return recoveryPolicies, activityPolicies, nil
}

// flexConfig builds the answer from the account's policies.
func (r *Routes) flexConfig(accountSID string, set accountPolicySet) FlexConfig {
	cfg := FlexConfig{Version: FlexConfigVersion, AccountSID: accountSID, MaxAgeSeconds: FlexConfigMaxAge}
	if len(set.recovery) > 0 {
		cfg.Recovery = &FlexRecoveryConfig{GracefulTimeoutMs: DefaultGracefulTimeoutMs, Policies: []FlexRecoveryPolicy{}}
		for i := range set.recovery {
			p := &set.recovery[i]
			base := r.publicURL(p)
			cfg.Recovery.Policies = append(cfg.Recovery.Policies, FlexRecoveryPolicy{
				Namespace: p.Namespace, Name: p.Name, PublicURL: base,
				WorkflowSIDs: slices.Clone(p.Spec.ProtectedWorkflowSIDs),
				Routes: FlexPolicyRoutes{
					Conference: base + "/twilio/" + p.Namespace + "/" + p.Name + "/conference",
					Graceful:   base + "/flex/" + p.Namespace + "/" + p.Name + "/graceful",
					Recovery:   base + "/flex/" + p.Namespace + "/" + p.Name + "/recoveries/{conferenceSid}",
				},
			})
		}
	}
	if len(set.activity) > 0 {
		cfg.Activity = &FlexActivityConfig{Policies: []FlexActivityPolicy{}}
		for _, p := range set.activity {
			names := p.Spec.Activities
			cfg.Activity.Policies = append(cfg.Activity.Policies, FlexActivityPolicy{
				Namespace: p.Namespace, Name: p.Name,
				PendingActivityAttribute: p.Spec.PendingActivityAttribute,
				ExtendedWrapupAttribute:  p.Spec.ExtendedWrapupAttribute,
				SystemActivities: slices.DeleteFunc(
					[]string{names.OnATask, names.OnATaskNoAcd, names.Wrapup, names.WrapupNoAcd, names.ExtendedWrapup},
					func(s string) bool { return s == "" }),
				ActivityChangeWhileBusy: p.Spec.ActivityChangeWhileBusy,
			})
		}
	}
	return cfg
}
