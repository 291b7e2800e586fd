package webhookserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// The recovery store's reads and creation of ConferenceRecovery objects on the API server.

// read returns the recovery, or nil when there is none. The cache answers first; a miss is
// confirmed with the API server, since another replica may have just created the object.
func (s *recoveryStore) read(ctx context.Context, key types.NamespacedName) (*v1alpha1.ConferenceRecovery, error) {
	rec, err := s.readCached(ctx, key)
	if err != nil || rec != nil {
		return rec, err
	}
	return s.readFresh(ctx, key)
}

// readCached returns the recovery as the cache has it, or nil when the cache has none.
func (s *recoveryStore) readCached(ctx context.Context, key types.NamespacedName) (*v1alpha1.ConferenceRecovery, error) {
	var rec v1alpha1.ConferenceRecovery
	if err := s.client.Get(ctx, key, &rec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read ConferenceRecovery: %w", err)
	}
	return &rec, nil
}

// readFresh reads the recovery from the API server, bypassing the cache; nil when there is none.
func (s *recoveryStore) readFresh(ctx context.Context, key types.NamespacedName) (*v1alpha1.ConferenceRecovery, error) {
	var rec v1alpha1.ConferenceRecovery
	if err := s.apiReader.Get(ctx, key, &rec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read ConferenceRecovery: %w", err)
	}
	return &rec, nil
}

// create makes the recovery of a protected conference; an object that already exists (another
// replica, or a restart) is read instead.
func (s *recoveryStore) create(ctx context.Context, key types.NamespacedName, c *conferenceOp, info *conferenceInfo) (*v1alpha1.ConferenceRecovery, error) {
	labels := map[string]string{v1alpha1.PhaseLabel: string(v1alpha1.PhaseMonitoring)}
	if len(validation.IsValidLabelValue(c.policy.Name)) == 0 {
		// Policy names may be longer than a label value allows; spec.policyName has it anyway.
		labels[v1alpha1.PolicyLabel] = c.policy.Name
	}
	rec := &v1alpha1.ConferenceRecovery{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: labels},
		Spec: v1alpha1.ConferenceRecoverySpec{
			PolicyName:    c.policy.Name,
			ConferenceSID: c.event.ConferenceSID,
			TaskSID:       info.taskSID,
			WorkflowSID:   info.workflowSID,
		},
	}
	err := s.client.Create(ctx, rec)
	switch {
	case err == nil:
		s.log.V(1).Info("Created ConferenceRecovery", "recovery", key, "task", info.taskSID)
		return rec, nil
	case apierrors.IsAlreadyExists(err):
		existing, err := s.readFresh(ctx, key)
		if err == nil && existing == nil {
			err = fmt.Errorf("ConferenceRecovery %s exists but cannot be read", key)
		}
		return existing, err
	default:
		return nil, fmt.Errorf("create ConferenceRecovery: %w", err)
	}
}
