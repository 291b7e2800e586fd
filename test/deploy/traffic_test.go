package deploy

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// callbacks makes conference status callbacks for one leg of a real conference, signed with the
// account's auth token over the public URL as Twilio signs them: participant-mute and
// participant-unmute in turn, each with a sequence number of its own.
type callbacks struct {
	publicURL, path string
	authToken       string
	accountSID      string
	conferenceSID   string
	callSID         string
	now             func() time.Time
	seq             atomic.Int64
}

// form is the next callback's body.
func (cb *callbacks) form() url.Values {
	n := cb.seq.Add(1)
	event, muted := "participant-unmute", "false"
	if n%2 == 0 {
		event, muted = "participant-mute", "true"
	}
	return url.Values{
		"AccountSid":             {cb.accountSID},
		"ConferenceSid":          {cb.conferenceSID},
		"FriendlyName":           {"rollout"},
		"SequenceNumber":         {strconv.FormatInt(n, 10)},
		"Timestamp":              {cb.now().Format("Mon, 2 Jan 2006 15:04:05 -0700")},
		"StatusCallbackEvent":    {event},
		"CallSid":                {cb.callSID},
		"Muted":                  {muted},
		"Hold":                   {"false"},
		"Coaching":               {"false"},
		"EndConferenceOnExit":    {"false"},
		"StartConferenceOnEnter": {"true"},
	}
}

// request is the next callback sent to base (the balancer or one replica's own address); the
// signature is over the public URL whatever the address the request goes to.
// The body is returned too, for a sender writing it by hand.
func (cb *callbacks) request(base string) (*http.Request, string, error) {
	form := cb.form()
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, base+cb.path, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", events.SignForm(cb.authToken, cb.publicURL+cb.path, form))
	return req, body, nil
}

// answer is what came back for one callback.
type answer struct {
	code int
	// closing: the answer carried Connection: close.
	closing bool
	body    string
}

// send posts one callback with client c and reads the whole answer.
func (cb *callbacks) send(c *http.Client, base string) (answer, error) {
	req, _, err := cb.request(base)
	if err != nil {
		return answer{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, closing: resp.Close, body: string(b)}, err
}

// traffic keeps sending callbacks through the balancer, as Twilio does during a rolling update:
// half the senders keep connections alive between callbacks (as an ingress controller's upstream
// pool does), half open one per callback. Nothing is retried: every callback must be answered
// 200 the first time.
type traffic struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	sent     int
	answered int
	// closing counts answers on kept-alive connections that carried Connection: close.
	closing  int
	failures []string
}

func startTraffic(cb *callbacks, base string, senders int, every time.Duration) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for i := range senders {
		transport := &http.Transport{DisableKeepAlives: i%2 == 1, MaxIdleConnsPerHost: 1}
		c := &http.Client{Timeout: 10 * time.Second, Transport: transport}
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			defer transport.CloseIdleConnections()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-tr.stop:
					return
				case <-tick.C:
				}
				a, err := cb.send(c, base)
				// A sender without keep-alives asks for the close itself; only the others' answers
				// show the server asking for it.
				a.closing = a.closing && !transport.DisableKeepAlives
				tr.record(a, err)
			}
		}()
	}
	return tr
}

func (tr *traffic) record(a answer, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.sent++
	switch {
	case err != nil:
		tr.failures = append(tr.failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
	case a.code != http.StatusOK:
		tr.failures = append(tr.failures, fmt.Sprintf("%s: %d %q", time.Now().Format("15:04:05.000"), a.code, a.body))
	default:
		tr.answered++
		if a.closing {
			tr.closing++
		}
	}
}

// answeredCount is how many callbacks were answered 200 so far.
func (tr *traffic) answeredCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.answered
}

// end stops the senders and waits for their last callbacks.
func (tr *traffic) end() {
	close(tr.stop)
	tr.wg.Wait()
}
