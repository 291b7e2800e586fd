package twiliosim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Event Streams v1: sinks, sink test and validate, subscriptions and their
// subscribed event types.

type sink struct {
	sid, description, sinkType string
	config                     map[string]any
	destination, method        string
	batch                      bool
	status                     string
	created, updated           time.Time
	lastTestID                 string
}

type subscription struct {
	sid, description, sinkSID string
	// types maps an event type to its schema version.
	types            map[string]int
	created, updated time.Time
}

// testEventType is the type of the event a sink test sends.
const testEventType = "com.twilio.eventstreams.test-event"

func (s *Sim) eventsMux() *http.ServeMux {
	m := http.NewServeMux()
	h := func(pattern string, f handlerFunc) { m.HandleFunc(pattern, s.wrap(f)) }
	h("GET /v1/Sinks", s.listSinks)
	h("POST /v1/Sinks", s.createSink)
	h("GET /v1/Sinks/{sid}", s.fetchSink)
	h("POST /v1/Sinks/{sid}", s.updateSink)
	h("DELETE /v1/Sinks/{sid}", s.deleteSink)
	h("POST /v1/Sinks/{sid}/Test", s.testSink)
	h("POST /v1/Sinks/{sid}/Validate", s.validateSink)
	h("GET /v1/Subscriptions", s.listSubscriptions)
	h("POST /v1/Subscriptions", s.createSubscription)
	h("GET /v1/Subscriptions/{sid}", s.fetchSubscription)
	h("POST /v1/Subscriptions/{sid}", s.updateSubscription)
	h("DELETE /v1/Subscriptions/{sid}", s.deleteSubscription)
	h("GET /v1/Subscriptions/{sid}/SubscribedEvents", s.listSubscribedEvents)
	h("POST /v1/Subscriptions/{sid}/SubscribedEvents", s.createSubscribedEvent)
	h("GET /v1/Subscriptions/{sid}/SubscribedEvents/{type}", s.fetchSubscribedEvent)
	h("POST /v1/Subscriptions/{sid}/SubscribedEvents/{type}", s.updateSubscribedEvent)
	h("DELETE /v1/Subscriptions/{sid}/SubscribedEvents/{type}", s.deleteSubscribedEvent)
	return m
}

func evURL(path string) string { return "https://" + hostEvents + path }

func (s *Sim) sinkJSON(sk *sink) map[string]any {
	u := "/v1/Sinks/" + sk.sid
	return map[string]any{
		"sid": sk.sid, "description": sk.description, "sink_type": sk.sinkType, "sink_configuration": sk.config,
		"status": sk.status, "date_created": trTime(sk.created), "date_updated": trTime(sk.updated), "url": evURL(u),
		"links": map[string]any{"sink_test": evURL(u + "/Test"), "sink_validate": evURL(u + "/Validate")},
	}
}

func (s *Sim) subscriptionJSON(sub *subscription) map[string]any {
	u := "/v1/Subscriptions/" + sub.sid
	return map[string]any{
		"account_sid": s.accountSID, "sid": sub.sid, "description": sub.description, "sink_sid": sub.sinkSID,
		"date_created": trTime(sub.created), "date_updated": trTime(sub.updated), "url": evURL(u),
		"links": map[string]any{"subscribed_events": evURL(u + "/SubscribedEvents")},
	}
}

func (s *Sim) subscribedEventJSON(sub *subscription, typ string) map[string]any {
	return map[string]any{
		"account_sid": s.accountSID, "type": typ, "schema_version": sub.types[typ], "subscription_sid": sub.sid,
		"url": evURL("/v1/Subscriptions/" + sub.sid + "/SubscribedEvents/" + typ),
	}
}

// parseSinkConfiguration reads a webhook sink's configuration: destination
// (absolute http(s) URL), method (POST or GET) and batch_events. twilio-go
// JSON-encodes the parameter, so a JSON string holding the object is
// accepted too.
func parseSinkConfiguration(raw string) (map[string]any, error) {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return nil, fmt.Errorf("SinkConfiguration is not JSON: %w", err)
	}
	if str, ok := v.(string); ok {
		if err := json.Unmarshal([]byte(str), &v); err != nil {
			return nil, fmt.Errorf("SinkConfiguration is not a JSON object: %w", err)
		}
	}
	cfg, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("SinkConfiguration must be a JSON object")
	}
	dest, _ := cfg["destination"].(string)
	if dest == "" {
		return nil, fmt.Errorf("SinkConfiguration.destination is required")
	}
	if err := checkURL(dest); err != nil {
		return nil, fmt.Errorf("SinkConfiguration.destination: %w", err)
	}
	if m, ok := cfg["method"]; ok {
		ms, _ := m.(string)
		if !strings.EqualFold(ms, "POST") && !strings.EqualFold(ms, "GET") {
			return nil, fmt.Errorf("SinkConfiguration.method must be POST or GET")
		}
	}
	if b, ok := cfg["batch_events"]; ok {
		switch b.(type) {
		case bool:
		default:
			return nil, fmt.Errorf("SinkConfiguration.batch_events must be true or false")
		}
	}
	return cfg, nil
}

func (s *Sim) listSinks(rq *request) (reply, error) {
	all := s.sinks.list()
	if inUse, err := rq.optBool("InUse"); err != nil {
		return reply{}, err
	} else if inUse != nil {
		all = filter(all, func(sk *sink) bool {
			used := false
			for _, sub := range s.subs.list() {
				if sub.sinkSID == sk.sid {
					used = true
				}
			}
			return used == *inUse
		})
	}
	if v := rq.str("Status"); v != "" {
		all = filter(all, func(sk *sink) bool { return sk.status == v })
	}
	return listPage(s, rq, "sinks", all, func(sk *sink) any { return s.sinkJSON(sk) })
}

func (s *Sim) createSink(rq *request) (reply, error) {
	desc, typ, raw := rq.str("Description"), rq.str("SinkType"), rq.str("SinkConfiguration")
	if desc == "" || typ == "" || raw == "" {
		return reply{}, errBad("Description, SinkConfiguration and SinkType are required")
	}
	if typ != "webhook" {
		return reply{}, errBad("SinkType %q is not modelled by the simulator (only webhook)", typ)
	}
	cfg, err := parseSinkConfiguration(raw)
	if err != nil {
		return reply{}, errBad("%v", err)
	}
	now := s.now()
	sk := &sink{sid: s.newSID("DG"), description: desc, sinkType: typ, config: cfg, status: "initialized", created: now, updated: now}
	s.applySinkConfig(sk, cfg)
	s.sinks.put(sk.sid, sk)
	return created(s.sinkJSON(sk))
}

func (s *Sim) applySinkConfig(sk *sink, cfg map[string]any) {
	sk.config = cfg
	sk.destination, _ = cfg["destination"].(string)
	sk.method, _ = cfg["method"].(string)
	sk.batch, _ = cfg["batch_events"].(bool)
}

func (s *Sim) sinkOf(rq *request) (*sink, error) {
	sk, ok := s.sinks.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return sk, nil
}

func (s *Sim) fetchSink(rq *request) (reply, error) {
	sk, err := s.sinkOf(rq)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.sinkJSON(sk))
}

func (s *Sim) updateSink(rq *request) (reply, error) {
	sk, err := s.sinkOf(rq)
	if err != nil {
		return reply{}, err
	}
	if d := rq.str("Description"); d != "" {
		sk.description = d
		sk.updated = s.now()
	}
	return okJSON(s.sinkJSON(sk))
}

func (s *Sim) deleteSink(rq *request) (reply, error) {
	sk, err := s.sinkOf(rq)
	if err != nil {
		return reply{}, err
	}
	for _, sub := range s.subs.list() {
		if sub.sinkSID == sk.sid {
			s.subs.del(sub.sid)
		}
	}
	s.sinks.del(sk.sid)
	s.deliver.drop(sinkKey(sk.sid))
	return noContent()
}

// testSink sends the sink a test event carrying a test_id, which Validate
// must then be given.
func (s *Sim) testSink(rq *request) (reply, error) {
	sk, err := s.sinkOf(rq)
	if err != nil {
		return reply{}, err
	}
	id := s.newSID("")
	testID := fmt.Sprintf("%s-%s-%s-%s-%s", id[0:8], id[8:12], id[12:16], id[16:20], id[20:32])
	sk.lastTestID = testID
	if sk.status != "active" {
		sk.status = "validating"
	}
	now := s.now()
	ev := map[string]any{
		"specversion": "1.0", "type": testEventType, "source": "/v1/Sinks/" + sk.sid,
		"id": s.newSID("EZ"), "dataschema": "https://events-schemas.twilio.com/EventStreams.TestSink/1",
		"datacontenttype": "application/json", "time": now.Format("2006-01-02T15:04:05.000Z"),
		"data": map[string]any{"test_id": testID},
	}
	s.deliver.enqueue(sinkKey(sk.sid), destination{url: sk.destination, kind: kindJSON, batch: sk.batch, retry: true},
		item{event: ev, eventID: ev["id"].(string), testID: testID})
	return created(map[string]any{"result": "submitted"})
}

func (s *Sim) validateSink(rq *request) (reply, error) {
	sk, err := s.sinkOf(rq)
	if err != nil {
		return reply{}, err
	}
	id := rq.str("TestId")
	if id == "" {
		return reply{}, errBad("TestId is required")
	}
	if id != sk.lastTestID {
		return reply{}, errBad("TestId %q is not the last test sent to sink %s", id, sk.sid)
	}
	if !s.deliver.testDelivered(id) {
		return reply{}, errBad("the test event %s has not been received by the sink yet", id)
	}
	sk.status = "active"
	sk.updated = s.now()
	return created(map[string]any{"result": "valid"})
}

// ActivateSink makes a sink active as if its test event had been received and validated, for
// tests about delivery rather than validation (Twilio subscribes only active sinks).
func (s *Sim) ActivateSink(sinkSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sk, ok := s.sinks.get(sinkSID)
	if !ok {
		return fmt.Errorf("no sink %s", sinkSID)
	}
	sk.status = "active"
	sk.updated = s.now()
	return nil
}

// WithdrawEventTypes makes the account's Event Streams catalog lack the types: subscribing to one
// is then a 400, as on Twilio for a type it does not offer (what a type the operator's knowledge of
// the catalog could be wrong about would meet).
// It returns the function that offers them again.
func (s *Sim) WithdrawEventTypes(types ...string) (restore func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdrawn == nil {
		s.withdrawn = map[string]bool{}
	}
	for _, t := range types {
		s.withdrawn[t] = true
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, t := range types {
			delete(s.withdrawn, t)
		}
	}
}

// parseTypes reads the Types parameter: each value a JSON object
// {"type":…, "schema_version":n} (or a bare type name, schema version 1).
// The caller holds s.mu.
func (s *Sim) parseTypes(values []string) (map[string]int, error) {
	out := map[string]int{}
	for _, v := range values {
		typ, version := strings.TrimSpace(v), 1
		if strings.HasPrefix(typ, "{") {
			var t struct {
				Type          string `json:"type"`
				SchemaVersion *int   `json:"schema_version"`
			}
			if err := json.Unmarshal([]byte(typ), &t); err != nil {
				return nil, fmt.Errorf("Types entry %q is not valid JSON: %w", v, err)
			}
			typ = t.Type
			if t.SchemaVersion != nil {
				version = *t.SchemaVersion
			}
		}
		if !knownEventTypes[typ] || s.withdrawn[typ] {
			return nil, fmt.Errorf("event type %q is not in the Event Streams catalog (e.g. %s)", typ, strings.Join(knownEventTypeList()[:3], ", "))
		}
		if version < 1 || version > 10 {
			return nil, fmt.Errorf("schema_version %d of %s is not valid", version, typ)
		}
		out[typ] = version
	}
	return out, nil
}

func (s *Sim) listSubscriptions(rq *request) (reply, error) {
	all := s.subs.list()
	if v := rq.str("SinkSid"); v != "" {
		all = filter(all, func(sub *subscription) bool { return sub.sinkSID == v })
	}
	return listPage(s, rq, "subscriptions", all, func(sub *subscription) any { return s.subscriptionJSON(sub) })
}

func (s *Sim) createSubscription(rq *request) (reply, error) {
	desc, sinkSID := rq.str("Description"), rq.str("SinkSid")
	if desc == "" || sinkSID == "" || len(rq.form["Types"]) == 0 {
		return reply{}, errBad("Description, SinkSid and Types are required")
	}
	sk, ok := s.sinks.get(sinkSID)
	if !ok {
		return reply{}, errBad("SinkSid %s is not a sink of this account", sinkSID)
	}
	// Twilio refuses a subscription until the sink has been tested and validated.
	if sk.status != "active" {
		return reply{}, errBad("sink %s is %s; it must be active (tested and validated) before subscribing", sk.sid, sk.status)
	}
	types, err := s.parseTypes(rq.form["Types"])
	if err != nil {
		return reply{}, errBad("%v", err)
	}
	now := s.now()
	sub := &subscription{sid: s.newSID("DF"), description: desc, sinkSID: sk.sid, types: types, created: now, updated: now}
	s.subs.put(sub.sid, sub)
	return created(s.subscriptionJSON(sub))
}

func (s *Sim) subscriptionOf(rq *request) (*subscription, error) {
	sub, ok := s.subs.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return sub, nil
}

func (s *Sim) fetchSubscription(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.subscriptionJSON(sub))
}

func (s *Sim) updateSubscription(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	if v := rq.str("SinkSid"); v != "" {
		if _, ok := s.sinks.get(v); !ok {
			return reply{}, errBad("SinkSid %s is not a sink of this account", v)
		}
		sub.sinkSID = v
	}
	if d := rq.str("Description"); d != "" {
		sub.description = d
	}
	if len(rq.form["Types"]) > 0 {
		types, err := s.parseTypes(rq.form["Types"])
		if err != nil {
			return reply{}, errBad("%v", err)
		}
		sub.types = types
	}
	sub.updated = s.now()
	return okJSON(s.subscriptionJSON(sub))
}

func (s *Sim) deleteSubscription(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	s.subs.del(sub.sid)
	return noContent()
}

func (s *Sim) listSubscribedEvents(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	types := make([]string, 0, len(sub.types))
	for t := range sub.types {
		types = append(types, t)
	}
	sort.Strings(types)
	return listPage(s, rq, "types", types, func(t string) any { return s.subscribedEventJSON(sub, t) })
}

func (s *Sim) createSubscribedEvent(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	typ := rq.str("Type")
	entry := typ
	if v := rq.str("SchemaVersion"); v != "" {
		entry = fmt.Sprintf(`{"type":%q,"schema_version":%s}`, typ, v)
	}
	types, err := s.parseTypes([]string{entry})
	if err != nil {
		return reply{}, errBad("%v", err)
	}
	for t, v := range types {
		sub.types[t] = v
	}
	sub.updated = s.now()
	return created(s.subscribedEventJSON(sub, typ))
}

func (s *Sim) fetchSubscribedEvent(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	if _, ok := sub.types[rq.path("type")]; !ok {
		return reply{}, errNotFound(rq.r.URL.Path)
	}
	return okJSON(s.subscribedEventJSON(sub, rq.path("type")))
}

func (s *Sim) updateSubscribedEvent(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	typ := rq.path("type")
	if _, ok := sub.types[typ]; !ok {
		return reply{}, errNotFound(rq.r.URL.Path)
	}
	v, err := rq.optInt("SchemaVersion", 1, 10)
	if err != nil {
		return reply{}, err
	}
	if v != nil {
		sub.types[typ] = *v
	}
	return okJSON(s.subscribedEventJSON(sub, typ))
}

func (s *Sim) deleteSubscribedEvent(rq *request) (reply, error) {
	sub, err := s.subscriptionOf(rq)
	if err != nil {
		return reply{}, err
	}
	if _, ok := sub.types[rq.path("type")]; !ok {
		return reply{}, errNotFound(rq.r.URL.Path)
	}
	delete(sub.types, rq.path("type"))
	return noContent()
}
