package tests

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
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
		require.Equal(t, []string{"redis", "sentinel", "metrics"}, containerNames(sts.Spec.Template.Spec), "the exporter is checked too")
		assertRestricted(t, sts.Spec.Template, fmt.Sprintf("redis pods %v", overrides))

		var dep appsv1.Deployment
		r.decode(typeDeployment, "redis-haproxy", &dep)
		assertRestricted(t, dep.Spec.Template, fmt.Sprintf("HAProxy pods %v", overrides))

		c, cluster := runCluster(t, overrides)
		require.Equal(t, []string{"redis", "metrics"}, containerNames(cluster.Spec.Template.Spec))
		assertRestricted(t, cluster.Spec.Template, fmt.Sprintf("cluster pods %v", overrides))
		for _, mode := range []string{"drain", "fill"} {
			var job batchv1.Job
			c.decode("kubernetes:batch/v1:Job", "redis-"+mode, &job)
			assertRestricted(t, job.Spec.Template, fmt.Sprintf("the %s Job's pods %v", mode, overrides))
		}
	}
}

// assertRestricted checks that the "restricted" standard admits the pods of a template, and that
// each of their containers has a read-only root filesystem, which the standard does not require.
func assertRestricted(t *testing.T, template corev1.PodTemplateSpec, pods string) {
	t.Helper()
	assert.Empty(t, forbidden(t, template), pods)
	for _, c := range template.Spec.Containers {
		require.NotNil(t, c.SecurityContext, "%s: %s", pods, c.Name)
		assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, "%s: %s: read-only root filesystem", pods, c.Name)
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
