package twilio

import (
	"encoding/json"
	"errors"
	"fmt"
)

// WorkflowFilters is a workflow configuration with the position of each of
// its task_routing filters. It changes the filter list by splicing bytes,
// never by decoding and re-encoding the document: a workflow belongs to the
// contact centre, and everything the operator did not add stays exactly as
// its author wrote it (key order, whitespace, number formats, unknown keys).
type WorkflowFilters struct {
	raw string
	// routingOpen is the offset just after task_routing's '{'.
	routingOpen int
	// hasFilters says whether task_routing has a filters array; when it
	// does, arrayOpen is the offset just after its '['.
	hasFilters bool
	arrayOpen  int
	filters    []span
}

// span is a [start, end) byte range of one filter object.
type span struct{ start, end int }

// maxWorkflowConfigBytes bounds what is parsed; Twilio's own limit is not
// published and real configurations are a few kilobytes.
const maxWorkflowConfigBytes = 1 << 20

// ParseWorkflowFilters locates the filters of a workflow configuration. The
// document must be valid JSON with a task_routing object; a filters member,
// when present, must be an array of objects. When a key appears twice the
// last one counts, as with encoding/json.
func ParseWorkflowFilters(configuration string) (*WorkflowFilters, error) {
	if len(configuration) > maxWorkflowConfigBytes {
		return nil, fmt.Errorf("workflow configuration is %d bytes, more than %d", len(configuration), maxWorkflowConfigBytes)
	}
	if !json.Valid([]byte(configuration)) {
		return nil, errors.New("workflow configuration is not valid JSON")
	}
	s := &jsonScanner{b: configuration}
	wf := &WorkflowFilters{raw: configuration, routingOpen: -1}
	s.space()
	if !s.eat('{') {
		return nil, errors.New("workflow configuration is not a JSON object")
	}
	// The document is valid JSON, so the scanner only has to find where
	// things are, not check them.
	err := s.members(func(key string) error {
		if key != "task_routing" {
			s.skipValue()
			return nil
		}
		if !s.eat('{') {
			return errors.New("task_routing is not a JSON object")
		}
		wf.routingOpen = s.i
		wf.hasFilters, wf.filters = false, nil
		return s.members(func(key string) error {
			if key != "filters" {
				s.skipValue()
				return nil
			}
			if !s.eat('[') {
				return errors.New("task_routing.filters is not a JSON array")
			}
			wf.hasFilters, wf.arrayOpen, wf.filters = true, s.i, nil
			for {
				s.space()
				if s.eat(']') {
					return nil
				}
				if len(wf.filters) > 0 && !s.eat(',') {
					return errors.New("task_routing.filters is malformed")
				}
				s.space()
				if s.peek() != '{' {
					return fmt.Errorf("task_routing.filters[%d] is not a JSON object", len(wf.filters))
				}
				start := s.i
				s.skipValue()
				wf.filters = append(wf.filters, span{start, s.i})
			}
		})
	})
	if err != nil {
		return nil, err
	}
	if wf.routingOpen < 0 {
		return nil, errors.New("workflow configuration has no task_routing object")
	}
	return wf, nil
}

// Len is the number of filters.
func (w *WorkflowFilters) Len() int { return len(w.filters) }

// Filter returns the JSON text of filter i exactly as it appears.
func (w *WorkflowFilters) Filter(i int) string {
	return w.raw[w.filters[i].start:w.filters[i].end]
}

// Prepend returns the configuration with filter (a JSON object) made the
// first filter; see Remove for the way back.
func (w *WorkflowFilters) Prepend(filter string) (string, error) {
	if err := checkFilter(filter); err != nil {
		return "", err
	}
	switch {
	case !w.hasFilters:
		// No filters member: add one at the start of task_routing.
		member := `"filters":[` + filter + `]`
		if w.routingHasMembers() {
			member += ","
		}
		return w.raw[:w.routingOpen] + member + w.raw[w.routingOpen:], nil
	case len(w.filters) == 0:
		return w.raw[:w.arrayOpen] + filter + w.raw[w.arrayOpen:], nil
	default:
		// Repeat the layout between '[' and the first filter after the new
		// one, so a pretty-printed list stays pretty and Remove(0) is exact.
		first := w.filters[0].start
		return w.raw[:first] + filter + "," + w.raw[w.arrayOpen:first] + w.raw[first:], nil
	}
}

// Remove returns the configuration without filter i, the rest unchanged.
// Remove(0) after Prepend gives back the original exactly when it had a
// filters member; when Prepend had to add the member, an empty one stays
// (the two texts cannot be told apart afterwards, and both route alike).
func (w *WorkflowFilters) Remove(i int) (string, error) {
	if i < 0 || i >= len(w.filters) {
		return "", fmt.Errorf("no filter %d in a workflow with %d", i, len(w.filters))
	}
	f := w.filters[i]
	switch {
	case len(w.filters) == 1:
		return w.raw[:f.start] + w.raw[f.end:], nil
	case i+1 < len(w.filters):
		// Take the filter, its comma and the layout before the next one.
		return w.raw[:f.start] + w.raw[w.filters[i+1].start:], nil
	default:
		// The last of several: take the comma before it.
		return w.raw[:w.filters[i-1].end] + w.raw[f.end:], nil
	}
}

// Replace returns the configuration with filter i replaced by filter.
func (w *WorkflowFilters) Replace(i int, filter string) (string, error) {
	if i < 0 || i >= len(w.filters) {
		return "", fmt.Errorf("no filter %d in a workflow with %d", i, len(w.filters))
	}
	if err := checkFilter(filter); err != nil {
		return "", err
	}
	f := w.filters[i]
	return w.raw[:f.start] + filter + w.raw[f.end:], nil
}

// routingHasMembers reports whether task_routing's object is not empty.
func (w *WorkflowFilters) routingHasMembers() bool {
	s := &jsonScanner{b: w.raw, i: w.routingOpen}
	s.space()
	return s.peek() != '}'
}

func checkFilter(filter string) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(filter), &probe); err != nil || probe == nil {
		return errors.New("a workflow filter must be a JSON object")
	}
	return nil
}

// jsonScanner walks a document already known to be valid JSON.
type jsonScanner struct {
	b string
	i int
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat consumes c (after white space) if it is next.
func (s *jsonScanner) eat(c byte) bool {
	s.space()
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// members reads the members of an object whose '{' was consumed, calling
// each with the scanner at the start of the member's value; each must
// consume the value. It stops after the closing '}'.
func (s *jsonScanner) members(each func(key string) error) error {
	for n := 0; ; n++ {
		if s.eat('}') {
			return nil
		}
		if n > 0 && !s.eat(',') {
			return errors.New("malformed object")
		}
		s.space()
		start := s.i
		s.skipString()
		var key string
		if err := json.Unmarshal([]byte(s.b[start:s.i]), &key); err != nil {
			return fmt.Errorf("object key: %w", err)
		}
		if !s.eat(':') {
			return errors.New("malformed object")
		}
		s.space()
		if err := each(key); err != nil {
			return err
		}
	}
}

func (s *jsonScanner) skipString() {
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return
		default:
			s.i++
		}
	}
}

// skipValue moves past the value that starts at the scanner (after space).
func (s *jsonScanner) skipValue() {
	s.space()
	switch s.peek() {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return
				}
			}
			s.i++
		}
	default:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.i++
		}
	}
}
