package activity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// PendingFromAttributes reads the pending activity (a string attribute) from a worker's attributes
// JSON; anything else (absent, not a string, attributes not an object) reads as none.
func PendingFromAttributes(attributes, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(attributes), &m) != nil {
		return ""
	}
	raw, ok := m[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// HasTrue reports whether a task's attributes JSON holds key set to true (the extended-wrap-up
// mark).
func HasTrue(attributes, key string) bool {
	if key == "" || attributes == "" {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(attributes), &m) != nil {
		return false
	}
	return bytes.Equal(bytes.TrimSpace(m[key]), []byte("true"))
}

// member is the byte span of one top-level member of a JSON object.
type member struct {
	key        string
	start, end int // start of the key's quote, end just after the value
}

// members lists the top-level members of a JSON object in order, with their spans.
func members(doc []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("attributes are not a JSON object")
	}
	var out []member
	for dec.More() {
		from := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		// The key's opening quote: skip the separator and spaces the decoder consumed with it.
		start := from
		for start < len(doc) && doc[start] != '"' {
			start++
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{key: key, start: start, end: int(dec.InputOffset())})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("attributes: data after the JSON object")
	}
	return out, nil
}

// SetStringAttribute returns the attributes JSON with the top-level key set to value, or removed
// when remove is true. Every other member keeps its bytes exactly (keys, values, order and the
// spacing between them); only the key's own member is cut out or added before the closing brace.
// Empty attributes are taken as {}.
func SetStringAttribute(attributes, key, value string, remove bool) (string, error) {
	doc := bytes.TrimSpace([]byte(attributes))
	if len(doc) == 0 {
		doc = []byte("{}")
	}
	ms, err := members(doc)
	if err != nil {
		return "", fmt.Errorf("worker attributes: %w", err)
	}
	// Cut every member with the key (a duplicated key is cut entirely), back to front.
	out := append([]byte(nil), doc...)
	kept := len(ms)
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key != key {
			continue
		}
		kept--
		from, to := ms[i].start, ms[i].end
		if i > 0 {
			// Take the separator before it: from the end of the previous member.
			from = ms[i-1].end
		} else if i+1 < len(ms) {
			// The first member: take the separator after it, up to the next key.
			to = ms[i+1].start
		}
		out = append(out[:from:from], out[to:]...)
	}
	if remove {
		return string(out), nil
	}
	enc, err := json.Marshal(value)
	if err != nil {
		return "", err
	}
	keyJSON, _ := json.Marshal(key)
	closing := bytes.LastIndexByte(out, '}')
	var add []byte
	if kept > 0 {
		add = append(add, ',')
	}
	add = append(add, keyJSON...)
	add = append(add, ':')
	add = append(add, enc...)
	// Insert right after the last member (before any spacing that precedes the brace).
	at := closing
	for at > 0 && (out[at-1] == ' ' || out[at-1] == '\n' || out[at-1] == '\t' || out[at-1] == '\r') {
		at--
	}
	res := append(append(append([]byte(nil), out[:at]...), add...), out[at:]...)
	return string(res), nil
}
