package twilio

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Class is a family of Twilio endpoints that Twilio throttles together, and so one budget of
// the operator's requests.
type Class string

const (
	// ClassTaskRouter is every TaskRouter request of one workspace. Twilio sets TaskRouter's
	// limits per workspace and endpoint (the workspace's Limits page in the Console); the operator
	// keeps one bucket per workspace, under the lowest endpoint limit it uses heavily.
	ClassTaskRouter Class = "taskrouter"
	// ClassVoice is Programmable Voice's REST API (calls, conferences, participants) of one
	// account, what conference recovery uses.
	ClassVoice Class = "voice"
	// ClassOther is everything else of one account (Event Streams, token validation).
	ClassOther Class = "other"
)

// Limit is one budget's token bucket.
type Limit struct {
	// Rate is the sustained requests per second; negative means no limit.
	Rate float64
	// Burst is how many requests may go at once after a quiet spell.
	Burst int
}

// Limits are the budgets of one account, one per resource class. A zero Rate falls back to
// Config.Rate, then to the class's default; a zero Burst to Config.Burst, then to twice the rate.
type Limits struct {
	// TaskRouter applies to each workspace separately.
	TaskRouter Limit
	// Voice and Other apply to the whole account.
	Voice Limit
	Other Limit
}

// Default budgets. They are the operator's own conservative choices, not Twilio's figures: read
// the account's real TaskRouter limits on the workspace's Limits page (Console → TaskRouter →
// Workspaces → the workspace → Limits) and set the flags to them.
const (
	DefaultTaskRouterRate = 20.0
	DefaultVoiceRate      = 20.0
	DefaultOtherRate      = 10.0
)

// resolve fills a class's zero fields from the Config-wide values and the class default.
func (l Limit) resolve(rate float64, burst int, def float64) Limit {
	if l.Rate == 0 {
		l.Rate = rate
	}
	if l.Rate == 0 {
		l.Rate = def
	}
	if l.Burst == 0 {
		l.Burst = burst
	}
	if l.Burst == 0 && l.Rate > 0 {
		l.Burst = max(1, int(math.Ceil(2*l.Rate)))
	}
	return l
}

// limitsOf resolves every class of cfg.
func limitsOf(cfg Config) Limits {
	return Limits{
		TaskRouter: cfg.Limits.TaskRouter.resolve(cfg.Rate, cfg.Burst, DefaultTaskRouterRate),
		Voice:      cfg.Limits.Voice.resolve(cfg.Rate, cfg.Burst, DefaultVoiceRate),
		Other:      cfg.Limits.Other.resolve(cfg.Rate, cfg.Burst, DefaultOtherRate),
	}
}

func (l Limits) of(c Class) Limit {
	switch c {
	case ClassTaskRouter:
		return l.TaskRouter
	case ClassVoice:
		return l.Voice
	}
	return l.Other
}

// classOf names the budget a request draws on: its class and, for TaskRouter, its workspace.
func classOf(req *http.Request) (Class, string) {
	switch productOf(req) {
	case "taskrouter":
		// /v1/Workspaces/{WS…}/…
		segs := strings.Split(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
		if len(segs) >= 3 && segs[1] == "Workspaces" {
			return ClassTaskRouter, segs[2]
		}
		return ClassTaskRouter, ""
	case "api":
		return ClassVoice, ""
	}
	return ClassOther, ""
}

// accountBudgets holds the budgets of one account.
type accountBudgets struct {
	mu      sync.Mutex
	limits  Limits
	now     func() time.Time
	budgets map[budgetKey]*budget
}

type budgetKey struct {
	class Class
	scope string
}

// budgets holds every account's budgets for the whole process: Twilio's limits are per account
// and workspace, so two policies on one account must share them.
var budgets = struct {
	sync.Mutex
	byAccount map[string]*accountBudgets
}{byAccount: map[string]*accountBudgets{}}

// budgetsFor returns the account's budgets, creating them on first use and applying the latest
// limits to every budget already made.
func budgetsFor(accountSID string, limits Limits, now func() time.Time) *accountBudgets {
	budgets.Lock()
	a, ok := budgets.byAccount[accountSID]
	if !ok {
		a = &accountBudgets{limits: limits, now: now, budgets: map[budgetKey]*budget{}}
		budgets.byAccount[accountSID] = a
	}
	budgets.Unlock()
	if ok {
		a.mu.Lock()
		changed := a.limits != limits
		a.limits = limits
		var existing []*budget
		if changed {
			for _, b := range a.budgets {
				existing = append(existing, b)
			}
		}
		a.mu.Unlock()
		for _, b := range existing {
			b.setLimit(limits.of(b.class))
		}
	}
	return a
}

// get returns the budget of one class and scope.
func (a *accountBudgets) get(class Class, scope string) *budget {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := budgetKey{class, scope}
	b, ok := a.budgets[k]
	if !ok {
		b = newBudget(class, a.limits.of(class), a.now)
		a.budgets[k] = b
	}
	return b
}
