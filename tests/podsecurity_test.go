package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// forbidden returns why the "restricted" Pod Security Standard refuses a pod; empty if it admits it.
func forbidden(t *testing.T, template corev1.PodTemplateSpec) []string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	require.NoError(t, err)
	var reasons []string
	for _, result := range evaluator.EvaluatePod(
		api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}, &template.ObjectMeta, &template.Spec) {
		if !result.Allowed {
			reasons = append(reasons, result.ForbiddenReason+": "+result.ForbiddenDetail)
		}
	}
	return reasons
}

func TestEveryPodTemplatePassesTheRestrictedPodSecurityStandard(t *testing.T) {
	for _, overrides := range []map[string]string{nil, {"ephemeral": "true"}} {
		r := mustRunStack(t, overrides)
		var sts appsv1.StatefulSet
		r.decode(typeStatefulSet, "redis", &sts)
		assert.Empty(t, forbidden(t, sts.Spec.Template), "redis pods %v", overrides)

		var dep appsv1.Deployment
		r.decode(typeDeployment, "redis-haproxy", &dep)
		assert.Empty(t, forbidden(t, dep.Spec.Template), "HAProxy pods %v", overrides)

		require.Len(t, sts.Spec.Template.Spec.Containers, 3)
		require.Equal(t, "metrics", sts.Spec.Template.Spec.Containers[2].Name, "the exporter is checked too")
		for _, spec := range []corev1.PodSpec{sts.Spec.Template.Spec, dep.Spec.Template.Spec} {
			for _, c := range spec.Containers {
				require.NotNil(t, c.SecurityContext)
				assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, "%s: read-only root filesystem", c.Name)
			}
		}
	}
}

// The check above must be able to fail: the same template, less one setting, is refused.
func TestThePodSecurityCheckRefusesAWeakenedTemplate(t *testing.T) {
	r := mustRunStack(t, nil)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	weakened := sts.Spec.Template.DeepCopy()
	weakened.Spec.SecurityContext.SeccompProfile = nil
	weakened.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	assert.Len(t, forbidden(t, *weakened), 2)
}
