package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/internal/render"
	"github.com/d3ad221e/redis-sentinel/stacks"
)

// settingsAfter returns the stack outputs that an update of the local stack with overrides
// leaves for the next one: its settings, as stacks.Run exports them.
func settingsAfter(t *testing.T, overrides map[string]string) resource.PropertyMap {
	t.Helper()
	cfg, err := render.LoadStackConfig(repoRoot, "local")
	require.NoError(t, err)
	for key, value := range overrides {
		cfg.Values[cfg.Project+":"+key] = value
	}
	var settings components.Settings
	_, err = render.Run(func(ctx *pulumi.Context) error {
		c, err := stacks.LoadConfig(ctx)
		if err != nil {
			return err
		}
		settings = components.SettingsOf(c.Name, c.Release, c.Password)
		return nil
	}, cfg, false)
	require.NoError(t, err)
	raw, err := json.Marshal(settings)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return resource.PropertyMap{"settings": resource.MakeSecret(resource.NewProperty(resource.NewPropertyMapFromMap(m)))}
}

// runStackAfter runs the local stack with overrides on top of what an earlier update recorded.
func runStackAfter(t *testing.T, previous resource.PropertyMap, overrides map[string]string) (*release, error) {
	t.Helper()
	cfg, err := render.LoadStackConfig(repoRoot, "local")
	require.NoError(t, err)
	for key, value := range overrides {
		cfg.Values[cfg.Project+":"+key] = value
	}
	cfg.StackOutputs = previous
	rec, err := render.Run(stacksRun, cfg, true)
	return &release{t: t, resources: rec.Resources()}, err
}

func TestAChangeThatWouldLoseDataOrTakeEveryPodDownIsRefusedBeforeAnythingIsRegistered(t *testing.T) {
	for _, c := range []struct {
		sentence       string
		before, after  map[string]string
		field, instead string
	}{
		{"a rename would delete the release", nil, map[string]string{"name": "cache"}, "name", "deploy a second release"},
		{"the volumes stay in the old namespace", nil, map[string]string{"namespace": "cache"}, "namespace", "deploy a second release"},
		{"the cluster and load balancer are the cloud's", nil, map[string]string{"cloud": "aks"}, "cloud", "as a new stack"},
		{"peers know each other by names in the domain", nil, map[string]string{"clusterDomain": "example.internal"}, "clusterDomain", "deploy a second release"},
		{"rolled and old sentinels would watch different sets", nil, map[string]string{"masterSetName": "cache"}, "masterSetName", "deploy a second release"},
		{"claims to emptyDirs leaves the data behind", nil, map[string]string{"ephemeral": "true"}, "ephemeral", "deploy a second release"},
		{"emptyDirs to claims starts without the data", map[string]string{"ephemeral": "true"}, map[string]string{"ephemeral": "false"}, "ephemeral", "deploy a second release"},
		{"a bound volume keeps its class", nil, map[string]string{"storageClass": "fast"}, "storageClass", "keep the class"},
		{"a volume cannot shrink", nil, map[string]string{"storageSize": "512Mi"}, "storageSize", "keep 1Gi or more"},
		{"mixed passwords break replication mid-roll", map[string]string{"password": "first-password-0001"}, map[string]string{"password": "other-password-0002"}, "password", "keep it until rotation"},
		{"a generated password cannot become a chosen one", nil, map[string]string{"password": "first-password-0001"}, "password", "keep it until rotation"},
	} {
		t.Run(c.sentence, func(t *testing.T) {
			r, err := runStackAfter(t, settingsAfter(t, c.before), mergeOverrides(c.before, c.after))
			require.Error(t, err)
			assert.Regexp(t, `(?m)^`+c.field+`: changing ".*" to ".*" is refused on a running release: .+; instead, `, err.Error())
			assert.Contains(t, err.Error(), c.instead)
			assert.NotContains(t, err.Error(), "first-password", "the password never shows")
			assert.NotContains(t, err.Error(), "other-password", "the password never shows")
			for _, res := range r.resources {
				assert.Equal(t, typeStackReference, res.Type, "nothing but the read of the recorded settings is registered: %s %s", res.Type, res.Name)
			}
		})
	}
}

func TestSafeChangesPassTheCheckOfTheRecordedSettings(t *testing.T) {
	for sentence, after := range map[string]map[string]string{
		"a larger volume grows the claims":  {"storageSize": "20Gi"},
		"the same size written another way": {"storageSize": "1024Mi"},
		"more pods roll":                    {"replicas": "5"},
		"sentinel timing rolls":             {"downAfterMilliseconds": "7000"},
		"the same password again":           {},
		"memory, images and HAProxy pods":   {"redisMemory": "1Gi", "redisImage": "docker.io/library/redis:7.2.6-alpine", "haproxyReplicas": "3"},
	} {
		_, err := runStackAfter(t, settingsAfter(t, nil), after)
		assert.NoError(t, err, sentence)
	}
	_, err := runStackAfter(t, nil, map[string]string{"storageSize": "512Mi"})
	assert.NoError(t, err, "the first update has nothing recorded to compare with")
}

func TestGrowingStorageResizesEveryClaimAndLeavesTheStatefulSetAlone(t *testing.T) {
	r := mustRunStack(t, map[string]string{"replicas": "5", "storageSize": "20Gi"})
	patches := r.ofType("kubernetes:core/v1:PersistentVolumeClaimPatch")
	require.Len(t, patches, 5, "one patch per pod's claim")
	for i, p := range patches {
		obj := render.Object(p, false)
		name := obj["metadata"].(map[string]any)["name"]
		assert.Equal(t, "data-redis-"+string(rune('0'+i)), name, "the StatefulSet controller's claim names")
		assert.Equal(t, "redis", obj["metadata"].(map[string]any)["namespace"])
		assert.Equal(t, "20Gi", obj["spec"].(map[string]any)["resources"].(map[string]any)["requests"].(map[string]any)["storage"])
	}
	assert.Empty(t, mustRunStack(t, map[string]string{"ephemeral": "true"}).ofType("kubernetes:core/v1:PersistentVolumeClaimPatch"), "no claims, no patches")
}

func mergeOverrides(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// The settings are the stack's secret output: they hold the password's fingerprint.
func TestThePasswordFingerprintRevealsNeitherThePasswordNorThatTwoReleasesShareOne(t *testing.T) {
	a := components.PasswordFingerprint("redis", "redis", "first-password-0001")
	assert.Equal(t, a, components.PasswordFingerprint("redis", "redis", "first-password-0001"))
	assert.NotEqual(t, a, components.PasswordFingerprint("redis", "cache", "first-password-0001"), "salted with the release")
	assert.False(t, strings.Contains(a, "first"))
	assert.Len(t, a, 32)
}
