package activity

import "sort"

// SetPolicies replaces the policies governing the workspace (one created, edited or deleted) and
// works out again who governs each worker, keeping everything known of the workers and their work:
// a change of policy needs nothing read from TaskRouter. The policies share the workspace's
// activity catalogue. It returns the workers governed before or after, to decide again.
func (ws *Workspace) SetPolicies(policies []*Policy) []string {
	ps := append([]*Policy(nil), policies...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].older(ps[j]) })
	for _, p := range ps {
		if p.Config != nil && p.Config.Activities != ws.catalog {
			if p.Config.Activities != nil {
				ws.catalog.adopt(p.Config.Activities)
			}
			p.Config.Activities = ws.catalog
		}
	}
	ws.policies = ps
	var touched []string
	for sid, w := range ws.workers {
		before := ws.governor[sid]
		attr := ws.configOf(sid).PendingAttribute
		ws.govern(w)
		if now := ws.configOf(sid).PendingAttribute; now != attr {
			// The pending activity is read from the attribute the governing policy names.
			w.Pending = PendingFromAttributes(w.Attributes, now)
		}
		if before != nil || ws.governor[sid] != nil {
			touched = append(touched, sid)
		}
	}
	return touched
}
