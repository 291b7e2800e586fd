package twiliosim

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxTwiMLParam is Twilio's limit on the Twiml parameter of a call update.
const maxTwiMLParam = 4000

// maxTwiMLParse bounds what the parser accepts at all (fuzzing included).
const maxTwiMLParse = 64 << 10

// verb is one TwiML instruction the simulator can run.
type verb struct {
	name string
	// <Enqueue workflowSid><Task priority timeout>{json}</Task></Enqueue>
	workflowSID  string
	taskAttrs    map[string]any
	taskPriority *int
	taskTimeout  *int
	// <Dial><Conference …>name</Conference></Dial>
	confName  string
	confAttrs map[string]string
}

type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []xmlNode  `xml:",any"`
}

func (n xmlNode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// parseTwiML reads a <Response> document into verbs. Verbs the simulator
// does not model are errors, so a test never passes on TwiML that would do
// something else on Twilio.
func parseTwiML(src string) ([]verb, error) {
	if len(src) > maxTwiMLParse {
		return nil, fmt.Errorf("TwiML is %d bytes, more than %d", len(src), maxTwiMLParse)
	}
	dec := xml.NewDecoder(strings.NewReader(src))
	dec.Strict = true
	var root xmlNode
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("TwiML is not well-formed XML: %w", err)
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("TwiML has trailing data: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, errors.New("TwiML has text after </Response>")
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
		default:
			return nil, errors.New("TwiML has more than one root element")
		}
	}
	if root.XMLName.Local != "Response" {
		return nil, fmt.Errorf("TwiML root element is <%s>, not <Response>", root.XMLName.Local)
	}
	var out []verb
	for _, n := range root.Nodes {
		v, err := parseVerb(n)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseVerb(n xmlNode) (verb, error) {
	v := verb{name: n.XMLName.Local}
	switch v.name {
	case "Say", "Play", "Pause", "Hangup", "Reject", "Leave":
		return v, nil
	case "Enqueue":
		return parseEnqueue(n)
	case "Dial":
		return parseDial(n)
	default:
		return v, fmt.Errorf("TwiML verb <%s> is not modelled by the simulator (it runs Say, Play, Pause, Hangup, Reject, Leave, Enqueue with workflowSid and Dial with Conference)", v.name)
	}
}

func parseEnqueue(n xmlNode) (verb, error) {
	v := verb{name: "Enqueue"}
	wf, _ := n.attr("workflowSid")
	if wf == "" {
		return v, errors.New("<Enqueue> without workflowSid (a plain queue) is not modelled; give a TaskRouter workflowSid")
	}
	v.workflowSID = wf
	v.taskAttrs = map[string]any{}
	tasks := 0
	for _, c := range n.Nodes {
		if c.XMLName.Local != "Task" {
			return v, fmt.Errorf("<Enqueue> may only contain <Task>, not <%s>", c.XMLName.Local)
		}
		tasks++
		if tasks > 1 {
			return v, errors.New("<Enqueue> may contain one <Task>")
		}
		if len(c.Nodes) > 0 {
			return v, errors.New("<Task> must contain only the attributes JSON")
		}
		if body := strings.TrimSpace(c.Text); body != "" {
			attrs, err := parseAttributes(body)
			if err != nil {
				return v, fmt.Errorf("<Task> attributes must be a JSON object: %w", err)
			}
			v.taskAttrs = attrs
		}
		for _, a := range []struct {
			name string
			dst  **int
			hi   int
		}{{"priority", &v.taskPriority, 2147483647}, {"timeout", &v.taskTimeout, 1209600}} {
			raw, ok := c.attr(a.name)
			if !ok {
				continue
			}
			x, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil || x < 0 || x > a.hi || (a.name == "timeout" && x == 0) {
				return v, fmt.Errorf("<Task %s=%q> must be an integer in range", a.name, raw)
			}
			*a.dst = &x
		}
	}
	return v, nil
}

func parseDial(n xmlNode) (verb, error) {
	v := verb{name: "Dial"}
	if strings.TrimSpace(n.Text) != "" {
		return v, errors.New("<Dial> to a number is not modelled; dial a <Conference>")
	}
	if len(n.Nodes) != 1 || n.Nodes[0].XMLName.Local != "Conference" {
		return v, errors.New("<Dial> must contain exactly one <Conference> (other nouns are not modelled)")
	}
	c := n.Nodes[0]
	if len(c.Nodes) > 0 {
		return v, errors.New("<Conference> must contain only the conference name")
	}
	v.confName = strings.TrimSpace(c.Text)
	if v.confName == "" {
		return v, errors.New("<Conference> needs a name")
	}
	v.confAttrs = map[string]string{}
	for _, a := range c.Attrs {
		v.confAttrs[a.Name.Local] = a.Value
	}
	for _, b := range []string{"startConferenceOnEnter", "endConferenceOnExit", "muted"} {
		if raw, ok := v.confAttrs[b]; ok && raw != "true" && raw != "false" {
			return v, fmt.Errorf("<Conference %s=%q> must be true or false", b, raw)
		}
	}
	return v, nil
}

// enqueueAttrs are the task attributes <Enqueue> adds from the call, under
// the ones the TwiML gives.
func enqueueAttrs(accountSID string, c *call, given map[string]any) map[string]any {
	attrs := map[string]any{
		"call_sid": c.sid, "account_sid": accountSID, "from": c.from, "to": c.to,
		"caller": c.from, "called": c.to, "direction": c.direction,
	}
	for k, v := range given {
		attrs[k] = v
	}
	// Round-trip so the map holds only JSON types whatever was given.
	var clean map[string]any
	_ = json.Unmarshal([]byte(mustJSON(attrs)), &clean)
	return clean
}
