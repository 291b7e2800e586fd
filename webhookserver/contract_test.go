package webhookserver_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// pluginContract is flex-plugin/contract/operator-routes.json: the requests the Flex companion
// plugin makes of the operator. The plugin's Jest suite checks that the plugin builds exactly
// these; the tests here check that the operator's real routes accept them.
type pluginContract struct {
	FlexConfig struct {
		Route           string            `json:"route"`
		Query           map[string]string `json:"query"`
		Headers         map[string]string `json:"headers"`
		OKStatus        int               `json:"okStatus"`
		RefusedStatuses []int             `json:"refusedStatuses"`
		CacheControl    string            `json:"cacheControl"`
		// Answer is the FlexConfig for one recovery and one activity policy, with {placeholders}.
		Answer json.RawMessage `json:"answer"`
	} `json:"flexConfig"`
	ConferenceCallback struct {
		Route             string            `json:"route"`
		ConferenceOptions map[string]string `json:"conferenceOptions"`
		Events            []string          `json:"events"`
		EventSeparator    string            `json:"eventSeparator"`
		Examples          []struct {
			PublicURL string `json:"publicUrl"`
			Namespace string `json:"namespace"`
			Policy    string `json:"policy"`
			URL       string `json:"url"`
		} `json:"examples"`
	} `json:"conferenceCallback"`
	Graceful struct {
		Route    string            `json:"route"`
		Headers  map[string]string `json:"headers"`
		Body     map[string]string `json:"body"`
		OKStatus int               `json:"okStatus"`
	} `json:"graceful"`
	Check struct {
		Route    string            `json:"route"`
		Headers  map[string]string `json:"headers"`
		OKStatus int               `json:"okStatus"`
	} `json:"check"`
	TaskMarkers struct {
		Attribute string `json:"attribute"`
		// Built are the SIDs of the incident the ping and reconnect examples come from.
		Built struct {
			ConferenceSID         string `json:"conferenceSid"`
			DisconnectedCallSID   string `json:"disconnectedCallSid"`
			OriginalTaskSID       string `json:"originalTaskSid"`
			DisconnectedWorkerSID string `json:"disconnectedWorkerSid"`
		} `json:"built"`
		Examples []struct {
			Role       string         `json:"role"`
			Attributes map[string]any `json:"attributes"`
		} `json:"examples"`
	} `json:"taskMarkers"`
}

func readPluginContract(t *testing.T) pluginContract {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "flex-plugin", "contract", "operator-routes.json"))
	if err != nil {
		t.Fatalf("read the plugin contract: %v", err)
	}
	var c pluginContract
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("parse the plugin contract: %v", err)
	}
	return c
}

var placeholder = regexp.MustCompile(`\{(\w+)\}`)

// fill replaces the contract's {name} placeholders; a placeholder without a value fails the test.
func fill(t *testing.T, template string, values map[string]string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(template, func(m string) string {
		v, ok := values[m[1:len(m)-1]]
		if !ok {
			t.Fatalf("no value for %s in %q", m, template)
		}
		return v
	})
}

// routePath splits "METHOD /path" and checks the method.
func routePath(t *testing.T, route, method string) string {
	t.Helper()
	m, path, ok := strings.Cut(route, " ")
	if !ok || m != method {
		t.Fatalf("route %q is not a %s route", route, method)
	}
	return path
}

// TestPluginContractShapes checks the contract against the operator's own definitions: the route
// patterns, how a public URL becomes the URL signatures are checked against, and the graceful
// body's fields.
func TestPluginContractShapes(t *testing.T) {
	c := readPluginContract(t)
	// The contract names the operator's routes by their (parameterised) patterns.
	for got, want := range map[string]string{
		c.ConferenceCallback.Route: webhookserver.PatternConference,
		c.Graceful.Route:           webhookserver.PatternGraceful,
		c.FlexConfig.Route:         webhookserver.PatternFlexConfig,
		c.Check.Route:              webhookserver.PatternCheck,
	} {
		if got != want {
			t.Errorf("contract route %q, the operator serves %q", got, want)
		}
	}
	// The operator checks a callback's signature against its public URL (as ParsePublicURL keeps
	// it) followed by the request's path: that must be the URL the plugin gives Flex.
	path := routePath(t, c.ConferenceCallback.Route, http.MethodPost)
	if len(c.ConferenceCallback.Examples) == 0 {
		t.Fatal("the contract has no callback URL examples")
	}
	for _, ex := range c.ConferenceCallback.Examples {
		base, err := webhookserver.ParsePublicURL(ex.PublicURL)
		if err != nil {
			t.Errorf("example public URL %q: %v", ex.PublicURL, err)
			continue
		}
		if got := base + fill(t, path, map[string]string{"namespace": ex.Namespace, "policy": ex.Policy}); got != ex.URL {
			t.Errorf("public URL %q: the operator checks signatures against %q, the plugin gives Flex %q", ex.PublicURL, got, ex.URL)
		}
	}
	// Every body field of the contract is a field of GracefulRequest, and nothing else is.
	body, err := json.Marshal(c.Graceful.Body)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var gr webhookserver.GracefulRequest
	if err := dec.Decode(&gr); err != nil {
		t.Errorf("the plugin's graceful body is not a GracefulRequest: %v", err)
	}
	// The configuration answer the plugin reads is a FlexConfig of the version the operator
	// writes, with nothing the operator does not write.
	dec = json.NewDecoder(strings.NewReader(string(c.FlexConfig.Answer)))
	dec.DisallowUnknownFields()
	var cfg webhookserver.FlexConfig
	if err := dec.Decode(&cfg); err != nil {
		t.Errorf("the contract's configuration answer is not a FlexConfig: %v", err)
	}
	if cfg.Version != webhookserver.FlexConfigVersion || cfg.MaxAgeSeconds != webhookserver.FlexConfigMaxAge {
		t.Errorf("the contract's answer is of version %d with max age %d; the operator writes version %d, max age %d",
			cfg.Version, cfg.MaxAgeSeconds, webhookserver.FlexConfigVersion, webhookserver.FlexConfigMaxAge)
	}
}

// TestPluginContractTaskMarkers checks the task markers the plugin tells ping and reconnect tasks
// by: the operator reads the contract's examples as the same roles, and the marker it writes on the
// tasks it builds for the contract's incident is exactly the examples' (the Jest suite checks the
// plugin reads the examples as these roles).
func TestPluginContractTaskMarkers(t *testing.T) {
	c := readPluginContract(t).TaskMarkers
	if c.Attribute != recovery.MarkerAttribute {
		t.Fatalf("contract marker attribute %q, the operator writes %q", c.Attribute, recovery.MarkerAttribute)
	}
	want := map[string]map[string]any{}
	for _, ex := range c.Examples {
		role := string(recovery.AttributesOf(ex.Attributes).Marker.Role)
		if role == "" {
			role = "customer"
		}
		if role != ex.Role {
			t.Errorf("the operator reads %v as a %s task, the contract says %s", ex.Attributes, role, ex.Role)
		}
		if m, ok := ex.Attributes[c.Attribute].(map[string]any); ok {
			want[ex.Role] = m
		}
	}
	b := c.Built
	ping := recovery.PingTaskAttributes(map[string]any{"from": "+15550001111"},
		v1alpha1.ConferenceRecoverySpec{ConferenceSID: b.ConferenceSID, TaskSID: b.OriginalTaskSID},
		v1alpha1.ConferenceRecoveryStatus{Disconnect: &v1alpha1.DisconnectStatus{CallSID: b.DisconnectedCallSID, WorkerSID: b.DisconnectedWorkerSID}})
	reconnect := recovery.ReconnectTaskAttributes(ping, recovery.AttributesOf(ping).Marker, b.OriginalTaskSID, b.DisconnectedWorkerSID, false)
	for role, attrs := range map[string]map[string]any{"ping": ping, "reconnect": reconnect} {
		got, _ := attrs[recovery.MarkerAttribute].(map[string]any)
		if !maps.Equal(got, want[role]) {
			t.Errorf("the operator marks its %s task %v, the plugin's contract says %v", role, got, want[role])
		}
	}
}
