package expr

import "sort"

// Keys returns the top-level names the expression reads (the first segment of every key path),
// sorted, each once: what a caller checks to refuse an expression over fields its environment
// does not hold. A nil *Expr reads nothing.
func (e *Expr) Keys() []string {
	if e == nil {
		return nil
	}
	seen := map[string]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil {
			return
		}
		for _, o := range []operand{n.lhs, n.rhs} {
			if len(o.path) > 0 && !o.path[0].isIndex {
				seen[o.path[0].name] = true
			}
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(e.root)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
