// Package v1alpha1 holds the flex-operator API: WorkerActivityPolicy, ConferenceRecoveryPolicy and
// ConferenceRecovery, in the group contactcenter.flexoperator.io.
// +kubebuilder:object:generate=true
// +groupName=contactcenter.flexoperator.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// SchemeGroupVersion is the group and version of every kind in this package (the name
	// kubebuilder's scaffold and controller-gen's apply configurations use).
	SchemeGroupVersion = schema.GroupVersion{Group: "contactcenter.flexoperator.io", Version: "v1alpha1"}

	// GroupVersion is SchemeGroupVersion under the name controller-runtime projects use.
	GroupVersion = SchemeGroupVersion

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&WorkerActivityPolicy{}, &WorkerActivityPolicyList{},
		&ConferenceRecoveryPolicy{}, &ConferenceRecoveryPolicyList{},
		&ConferenceRecovery{}, &ConferenceRecoveryList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
