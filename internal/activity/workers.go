package activity

import (
	"fmt"
	"strings"

	"github.com/flexoperator/flex-operator/internal/expr"
)

// DefaultWorkers selects every worker of the workspace.
const DefaultWorkers = "1==1"

// UnsupportedWorkerFields are TaskRouter's built-in worker fields a policy's workers expression may
// not read: the engine itself changes a worker's activity, so selecting by it would make a worker
// governed or not with each write (and the On a Task it sets would release the worker it set it
// on). TaskRouter's other built-ins, sid and friendly_name, and every attribute may be used.
var UnsupportedWorkerFields = []string{"activity_sid", "activity_name"}

// WorkersExpression parses a policy's spec.workers ("" is DefaultWorkers) and refuses one that
// reads a field in UnsupportedWorkerFields, saying why. It is the one check the controller (the
// policy's Ready condition) and the engine (which will not run such a policy) share; the CRD
// refuses the same expressions when they are applied.
func WorkersExpression(src string) (*expr.Expr, error) {
	if src == "" {
		src = DefaultWorkers
	}
	ex, err := expr.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("spec.workers is not a valid TaskRouter expression: %w", err)
	}
	var bad []string
	for _, k := range ex.Keys() {
		for _, f := range UnsupportedWorkerFields {
			if k == f {
				bad = append(bad, k)
			}
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("spec.workers reads %s: a worker's activity cannot select it, because the engine changes "+
			"the activity itself and the worker would move in and out of the policy with each change; select by "+
			"attributes, sid or friendly_name instead", strings.Join(bad, " and "))
	}
	return ex, nil
}
