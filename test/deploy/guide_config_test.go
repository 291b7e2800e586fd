package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// guideWorkerSID is the worker whose Flex token the walk uses to check the plugin's configuration.
const guideWorkerSID = "WK0123456789abcdef0123456789abcdef"

// walkPluginConfig follows the guide's "Check what the plugin will get" step: the operator's binary
// runs as a process against the walk's control plane (holding the policies the guide applied) and
// a Twilio simulator of the guide's account, behind a stand-in for the guide's Ingress (TLS for the
// Ingress host, /flex/ and /twilio/ forwarded unchanged), and the guide's curl command is sent as
// written with a Flex token the simulator issued. The answer must list the live policies, their
// workflows and routes; a policy change must reach it; a token Twilio refuses, an account with no
// policy and a missing token must be refused with the status and reason the guide quotes.
func walkPluginConfig(t *testing.T, g *guideCluster, guide guideText) {
	ctx := context.Background()
	install := g.words(t, guide.block(t, "helm install "))
	set := map[string]string{}
	for i, a := range install {
		if a == "--set" && i+1 < len(install) {
			k, v, _ := strings.Cut(install[i+1], "=")
			set[k] = v
		}
	}
	publicURL, host := set["webhook.publicURL"], set["ingress.host"]

	sim := twiliosim.New(twiliosim.Options{AccountSID: guideAccountSID, AuthToken: guideAuthToken, Clock: twiliosim.ClockFunc(time.Now)})
	must(t, sim.Start())
	t.Cleanup(func() { _ = sim.Close() })
	op := startOperatorProcess(t, "guide-operator", g.kubeconfig,
		"--metrics-bind-address=0",
		"--webhook-public-url="+publicURL,
		"--twilio-base-url="+sim.URL(), "--unsafe-twilio-base-url")
	op.waitReady(t, time.Minute)
	ingress := startGuideIngress(t, host, "http://"+op.webhookAddr)

	curl := guide.block(t, "curl ")
	token := sim.IssueFlexToken(guideWorkerSID)
	g.values["<Flex token>"] = token
	res := ingress.curl(t, g.words(t, curl))
	if res.status != http.StatusOK {
		t.Fatalf("the guide's curl with a valid Flex token: %d %s", res.status, res.body)
	}
	if cc := res.header.Get("Cache-Control"); !strings.Contains(cc, fmt.Sprintf("max-age=%d", webhookserver.FlexConfigMaxAge)) {
		t.Errorf("the answer's Cache-Control is %q, want max-age=%d as the guide says", cc, webhookserver.FlexConfigMaxAge)
	}
	if problems := checkFlexConfig(ctx, t, g, publicURL, res.body); len(problems) > 0 {
		t.Errorf("the guide's curl answered:\n%s\nwhich does not match the live policies:\n%s", res.body, strings.Join(problems, "\n"))
	}

	// The answer follows the live policies: a workflow added to a policy is listed.
	var crps v1alpha1.ConferenceRecoveryPolicyList
	must(t, g.client.List(ctx, &crps))
	if len(crps.Items) == 0 {
		t.Fatal("no ConferenceRecoveryPolicy to change: the guide's samples hold one")
	}
	p := crps.Items[0]
	added := "WW" + strings.Repeat("f", 32)
	p.Spec.ProtectedWorkflowSIDs = append(p.Spec.ProtectedWorkflowSIDs, added)
	must(t, g.client.Update(ctx, &p))
	var last curlResult
	err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		last = ingress.curl(t, g.words(t, curl))
		return last.status == http.StatusOK && len(checkFlexConfig(ctx, t, g, publicURL, last.body)) == 0, nil
	})
	if err != nil {
		t.Errorf("after adding workflow %s to %s/%s, the guide's curl still answers %d:\n%s\n%s", added, p.Namespace, p.Name,
			last.status, last.body, strings.Join(checkFlexConfig(ctx, t, g, publicURL, last.body), "\n"))
	}

	// Refusals, each with the answer the guide quotes: a token Twilio refuses (a Flex session
	// logged out), an account with no policy here, no token at all.
	refusedAs := func(what string, words []string, status int) {
		t.Helper()
		res := ingress.curl(t, words)
		answer := strings.TrimSpace(res.body)
		if res.status != status || answer == "" {
			t.Errorf("the guide's curl %s: %d %q, want %d with a reason", what, res.status, answer, status)
			return
		}
		if quoted := fmt.Sprintf("`%d` `%s`", status, answer); !strings.Contains(strings.Join(strings.Fields(string(guide)), " "), quoted) {
			t.Errorf("the guide's curl %s answers %d %q; the guide does not say so (%s)", what, status, answer, quoted)
		}
	}
	refused := sim.IssueFlexToken(guideWorkerSID)
	sim.RevokeFlexToken(refused)
	g.values["<Flex token>"] = refused
	refusedAs("with a token Twilio refuses", g.words(t, curl), http.StatusForbidden)
	g.values["<Flex token>"] = token
	otherAccount := slices.Clone(g.words(t, curl))
	for i, w := range otherAccount {
		otherAccount[i] = strings.ReplaceAll(w, "accountSid="+guideAccountSID, "accountSid=AC"+strings.Repeat("e", 32))
	}
	refusedAs("for an account with no policy here", otherAccount, http.StatusForbidden)
	var noToken []string
	words := g.words(t, curl)
	for i := 0; i < len(words); i++ {
		if (words[i] == "-H" || words[i] == "--header") && i+1 < len(words) && strings.HasPrefix(words[i+1], "Authorization:") {
			i++
			continue
		}
		noToken = append(noToken, words[i])
	}
	refusedAs("without its Authorization header", noToken, http.StatusUnauthorized)
	// The policies' own errors (the samples' SIDs are not the simulator's) are theirs to report;
	// answering the plugin logs none.
	for _, line := range op.errorsSince(0) {
		if strings.Contains(line, "Flex companion") || strings.Contains(line, "Flex token") {
			t.Errorf("the operator logged an error answering the plugin's configuration: %s", line)
		}
	}
}

// checkFlexConfig compares the answer of /flex/config with the policies on the API server (all of
// them are the guide's account's): the problems found, none when it matches.
func checkFlexConfig(ctx context.Context, t *testing.T, g *guideCluster, publicURL, body string) []string {
	t.Helper()
	var crps v1alpha1.ConferenceRecoveryPolicyList
	var waps v1alpha1.WorkerActivityPolicyList
	must(t, g.client.List(ctx, &crps))
	must(t, g.client.List(ctx, &waps))
	var answer flexConfigAnswer
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		return []string{fmt.Sprintf("not JSON: %v", err)}
	}
	var problems []string
	if answer.Version != webhookserver.FlexConfigVersion || answer.AccountSID != guideAccountSID {
		problems = append(problems, fmt.Sprintf("version %d for account %s, want version %d for %s", answer.Version, answer.AccountSID, webhookserver.FlexConfigVersion, guideAccountSID))
	}
	if answer.Recovery == nil || len(answer.Recovery.Policies) != len(crps.Items) {
		problems = append(problems, fmt.Sprintf("recovery policies %+v, want the %d ConferenceRecoveryPolicies", answer.Recovery, len(crps.Items)))
	} else {
		for _, p := range crps.Items {
			i := slices.IndexFunc(answer.Recovery.Policies, func(a recoveryPolicyAnswer) bool {
				return a.Namespace == p.Namespace && a.Name == p.Name
			})
			if i < 0 {
				problems = append(problems, fmt.Sprintf("ConferenceRecoveryPolicy %s/%s is not listed", p.Namespace, p.Name))
				continue
			}
			a := answer.Recovery.Policies[i]
			base := publicURL
			if p.Spec.PublicBaseURL != "" {
				base = strings.TrimSuffix(p.Spec.PublicBaseURL, "/")
			}
			if !slices.Equal(a.WorkflowSIDs, p.Spec.ProtectedWorkflowSIDs) {
				problems = append(problems, fmt.Sprintf("%s/%s: workflowSids %v, want spec.protectedWorkflowSids %v", p.Namespace, p.Name, a.WorkflowSIDs, p.Spec.ProtectedWorkflowSIDs))
			}
			// The routes as the guide spells them: <public URL>/twilio/<namespace>/<policy>/conference, …
			want := map[string]string{
				"conference": base + "/twilio/" + p.Namespace + "/" + p.Name + "/conference",
				"graceful":   base + "/flex/" + p.Namespace + "/" + p.Name + "/graceful",
				"recovery":   base + "/flex/" + p.Namespace + "/" + p.Name + "/recoveries/{conferenceSid}",
			}
			if a.PublicURL != base || !maps.Equal(a.Routes, want) {
				problems = append(problems, fmt.Sprintf("%s/%s: publicUrl %q and routes %v, want %q and %v", p.Namespace, p.Name, a.PublicURL, a.Routes, base, want))
			}
		}
	}
	if answer.Activity == nil || len(answer.Activity.Policies) != len(waps.Items) {
		problems = append(problems, fmt.Sprintf("activity policies %+v, want the %d WorkerActivityPolicies", answer.Activity, len(waps.Items)))
	} else {
		for _, p := range waps.Items {
			listed := slices.ContainsFunc(answer.Activity.Policies, func(a activityPolicyAnswer) bool {
				return a.Namespace == p.Namespace && a.Name == p.Name && len(a.SystemActivities) > 0
			})
			if !listed {
				problems = append(problems, fmt.Sprintf("WorkerActivityPolicy %s/%s is not listed with its system activities", p.Namespace, p.Name))
			}
		}
	}
	return problems
}

// flexConfigAnswer is the answer of /flex/config, with the fields as the guide and the plugin's
// README name them (decoded apart from the operator's own type, so that a renamed field shows).
type flexConfigAnswer struct {
	Version    int    `json:"version"`
	AccountSID string `json:"accountSid"`
	Recovery   *struct {
		Policies []recoveryPolicyAnswer `json:"policies"`
	} `json:"recovery"`
	Activity *struct {
		Policies []activityPolicyAnswer `json:"policies"`
	} `json:"activity"`
}

type recoveryPolicyAnswer struct {
	Namespace    string            `json:"namespace"`
	Name         string            `json:"name"`
	PublicURL    string            `json:"publicUrl"`
	WorkflowSIDs []string          `json:"workflowSids"`
	Routes       map[string]string `json:"routes"`
}

type activityPolicyAnswer struct {
	Namespace        string   `json:"namespace"`
	Name             string   `json:"name"`
	SystemActivities []string `json:"systemActivities"`
}

// guideIngress stands in for the Ingress the guide has the chart make: it terminates TLS for the
// Ingress host with a certificate of its own (as cert-manager's would be) and forwards /flex/ and
// /twilio/ unchanged to the operator's webhook port.
type guideIngress struct {
	host   string
	server *httptest.Server
	client *http.Client
}

func startGuideIngress(t *testing.T, host, backend string) *guideIngress {
	t.Helper()
	target, err := url.Parse(backend)
	must(t, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
		r.SetXForwarded()
	}}
	mux := http.NewServeMux()
	mux.Handle("/flex/", proxy)
	mux.Handle("/twilio/", proxy)
	cert, roots := selfSignedCert(t, host)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		// The host's DNS name resolves to the Ingress; nothing else is reachable.
		DialContext: func(ctx context.Context, network, to string) (net.Conn, error) {
			if to != host+":443" {
				return nil, fmt.Errorf("the walk reaches only the Ingress host %s:443, not %s", host, to)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	return &guideIngress{host: host, server: srv, client: &http.Client{Timeout: 20 * time.Second, Transport: transport}}
}

// curlResult is what curl -sS shows (the body) and what the walk checks besides.
type curlResult struct {
	status int
	header http.Header
	body   string
}

// curl sends the request a curl command of the guide describes. It knows the options the guide
// uses (-s, -S, -sS, -H/--header) and fails the test on any other, so that a guide that starts
// relying on another option teaches the walk what it does.
func (in *guideIngress) curl(t *testing.T, words []string) curlResult {
	t.Helper()
	if len(words) == 0 || words[0] != "curl" {
		t.Fatalf("not a curl command: %q", words)
	}
	header := http.Header{}
	var target string
	for i := 1; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-s" || w == "-S" || w == "-sS" || w == "--silent" || w == "--show-error":
		case w == "-H" || w == "--header":
			if i+1 >= len(words) {
				t.Fatalf("curl %s without a header", w)
			}
			i++
			k, v, ok := strings.Cut(words[i], ":")
			if !ok {
				t.Fatalf("curl -H %q is not a header", words[i])
			}
			header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		case strings.HasPrefix(w, "-"):
			t.Fatalf("the guide's curl uses option %s, which the walk does not know", w)
		case target != "":
			t.Fatalf("the guide's curl names two URLs: %s and %s", target, w)
		default:
			target = w
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "https" || u.Hostname() != in.host {
		t.Fatalf("the guide's curl goes to %q, not to https://%s (the Ingress host the guide sets): %v", target, in.host, err)
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	must(t, err)
	req.Header = header
	res, err := in.client.Do(req)
	if err != nil {
		t.Fatalf("curl %s: %v", target, err)
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	must(t, err)
	auth := "no token"
	if header.Get("Authorization") != "" {
		auth = "a Flex token"
	}
	t.Logf("curl %s with %s: %d, %d bytes", target, auth, res.StatusCode, len(body))
	return curlResult{status: res.StatusCode, header: res.Header, body: string(body)}
}

// selfSignedCert is a certificate for host, and a pool that trusts it.
func selfSignedCert(t *testing.T, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	leaf, err := x509.ParseCertificate(der)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
