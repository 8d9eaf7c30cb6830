package tests

import (
	"fmt"
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

// stackConfig is a stack's configuration with some keys replaced.
func stackConfig(t *testing.T, stack string, overrides map[string]string) *render.StackConfig {
	t.Helper()
	cfg, err := render.LoadStackConfig(repoRoot, stack)
	require.NoError(t, err)
	for key, value := range overrides {
		cfg.Values[cfg.Project+":"+key] = value
	}
	return cfg
}

// settingsAfter returns the stack outputs that an update of a stack with overrides leaves for
// the next one: its settings, as stacks.Run exports them.
func settingsAfter(t *testing.T, stack string, overrides map[string]string) resource.PropertyMap {
	t.Helper()
	return settingsOutput(recordedSettings(t, stack, overrides))
}

// recordedSettings are the settings that an update of a stack with overrides records.
func recordedSettings(t *testing.T, stack string, overrides map[string]string) map[string]any {
	t.Helper()
	var settings map[string]any
	_, err := render.Run(func(ctx *pulumi.Context) error {
		c, err := stacks.LoadConfig(ctx)
		if err != nil {
			return err
		}
		settings, err = stacks.RecordedSettings(c)
		return err
	}, stackConfig(t, stack, overrides), false)
	require.NoError(t, err)
	return settings
}

// settingsOutput is the secret stack output that holds settings.
func settingsOutput(settings map[string]any) resource.PropertyMap {
	return resource.PropertyMap{"settings": resource.MakeSecret(resource.NewProperty(resource.NewPropertyMapFromMap(settings)))}
}

// runStackAfter runs a stack with overrides on top of what an earlier update recorded.
func runStackAfter(t *testing.T, stack string, previous resource.PropertyMap, overrides map[string]string) (*release, error) {
	t.Helper()
	cfg := stackConfig(t, stack, overrides)
	cfg.StackOutputs = previous
	rec, err := render.Run(stacksRun, cfg, false)
	return &release{t: t, resources: rec.Resources()}, err
}

func TestAChangeThatWouldLoseDataOrTakeEveryPodDownIsRefusedBeforeAnythingIsRegistered(t *testing.T) {
	for _, c := range []struct {
		sentence       string
		stack          string
		before, after  map[string]string
		field, instead string
	}{
		{"a rename would delete the release", "local", nil, map[string]string{"name": "cache"}, "name", "deploy a second release"},
		{"the volumes stay in the old namespace", "local", nil, map[string]string{"namespace": "cache"}, "namespace", "deploy a second release"},
		{"the cluster and load balancer are the cloud's", "local", nil, map[string]string{"cloud": "aks"}, "cloud", "as a new stack"},
		{"peers know each other by names in the domain", "local", nil, map[string]string{"clusterDomain": "example.internal"}, "clusterDomain", "deploy a second release"},
		{"rolled and old sentinels would watch different sets", "local", nil, map[string]string{"masterSetName": "cache"}, "masterSetName", "deploy a second release"},
		{"claims to emptyDirs leaves the data behind", "local", nil, map[string]string{"ephemeral": "true"}, "ephemeral", "deploy a second release"},
		{"emptyDirs to claims starts without the data", "local", map[string]string{"ephemeral": "true"}, map[string]string{"ephemeral": "false"}, "ephemeral", "deploy a second release"},
		{"a bound volume keeps its class", "local", nil, map[string]string{"storageClass": "fast"}, "storageClass", "keep the class"},
		{"a volume cannot shrink", "local", nil, map[string]string{"storageSize": "512Mi"}, "storageSize", "keep 1Gi or more"},
		{"a new password alone refuses every client of the old one", "local", map[string]string{"password": "first-password-0001"}, map[string]string{"password": "other-password-0002"}, "password", "rotate in two steps"},
		{"so does a chosen one in place of a generated one", "local", nil, map[string]string{"password": "first-password-0001"}, "password", "rotate in two steps"},
		{"a rotation starts from the password in use", "local", map[string]string{"password": "first-password-0001"}, map[string]string{"password": "other-password-0002", "previousPassword": "other-password-0003"}, "password", "rotate in two steps"},
		{"a rotation under way ends before the next", "local", map[string]string{"password": "other-password-0002", "previousPassword": "first-password-0001"}, map[string]string{"password": "other-password-0004", "previousPassword": "other-password-0002"}, "previousPassword", "finish the rotation under way first"},
		{"HAProxy would lose the master", "local", map[string]string{"monitorPassword": "first-password-0005"}, map[string]string{"monitorPassword": "other-password-0006"}, "monitorPassword", "keep it"},
		{"objects of the ambient kubeconfig's provider would be replaced", "local", nil, map[string]string{"kubeconfig": testKubeconfig("kind-redis", "https://127.0.0.1:6443")}, "kubeconfig", "create a new stack"},
		{"another cluster would get an empty release", "local", map[string]string{"kubeconfig": testKubeconfig("kind-redis", "https://127.0.0.1:6443")}, map[string]string{"kubeconfig": testKubeconfig("kind-other", "https://127.0.0.1:6443")}, "kubeconfig", "create a new stack"},
		{"a GKE cluster cannot move to another region", "gke", nil, map[string]string{"gcpRegion": "europe-west4", "gkeZones": `["europe-west4-a","europe-west4-b","europe-west4-c"]`}, "gcpRegion", "create a new stack"},
		{"a GKE control plane keeps its range", "gke", nil, map[string]string{"gkeMasterCidr": "172.16.0.32/28"}, "gkeMasterCidr", "create a new stack"},
		{"GKE pods keep their range", "gke", nil, map[string]string{"gkePodsCidr": "10.40.0.0/14"}, "gkePodsCidr", "create a new stack"},
		{"an EKS cluster keeps its VPC", "eks", nil, map[string]string{"eksVpcCidr": "10.1.0.0/16"}, "eksVpcCidr", "create a new stack"},
		{"a new EKS node group would take every node at once", "eks", nil, map[string]string{"eksInstanceTypes": `["m7i.large"]`}, "eksInstanceTypes", "create a new stack"},
		{"a Sentinel release cannot become a cluster", "local", nil, map[string]string{"topology": "cluster"}, "topology", "deploy a release of the new topology next to this one"},
		{"a cluster cannot become a Sentinel release", "local-cluster", nil, map[string]string{"topology": "sentinel"}, "topology", "a cluster needs cluster-aware ones"},
		{"more replicas per shard would regroup every pod", "local-cluster", nil, map[string]string{"replicasPerShard": "2"}, "replicasPerShard", "copy every key over (SCAN and DUMP"},
		{"fewer replicas per shard too", "local-cluster", map[string]string{"replicasPerShard": "2"}, map[string]string{"replicasPerShard": "1"}, "replicasPerShard", "copy every key over"},
		{"a cluster's data moves key by key, not by REPLICAOF", "local-cluster", nil, map[string]string{"name": "cache"}, "name", "RESTORE through a cluster-aware client"},
		{"a cluster keeps its cloud too", "local-cluster", nil, map[string]string{"cloud": "aks"}, "cloud", "as a new stack"},
		{"Redis cannot read what Valkey wrote", "local", map[string]string{"engine": "valkey"}, map[string]string{"engine": "redis"}, "engine", "not REPLICAOF, DUMP or RESTORE"},
		{"nor can a cluster's", "local-cluster", map[string]string{"engine": "valkey"}, map[string]string{"engine": "redis"}, "engine", "not REPLICAOF, DUMP or RESTORE"},
	} {
		t.Run(c.sentence, func(t *testing.T) {
			r, err := runStackAfter(t, c.stack, settingsAfter(t, c.stack, c.before), mergeOverrides(c.before, c.after))
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

// Each step of a rotation, from the settings the step before recorded.
func TestAPasswordRotatesInTwoStepsOrGoesBack(t *testing.T) {
	old := map[string]string{"password": "first-password-0001"}
	both := map[string]string{"password": "other-password-0002", "previousPassword": "first-password-0001"}
	for _, step := range []struct {
		sentence      string
		before, after map[string]string
	}{
		{"begin: the new password, the old one still accepted", old, both},
		{"end: the old one removed", both, map[string]string{"password": "other-password-0002"}},
		{"go back: the old one alone again", both, old},
		{"begin from a generated password (the credentials Job checks the old one)", nil, both},
	} {
		_, err := runStackAfter(t, "local", settingsAfter(t, "local", step.before), step.after)
		assert.NoError(t, err, step.sentence)
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
		"Redis to Valkey rolls":             {"engine": "valkey"},
	} {
		_, err := runStackAfter(t, "local", settingsAfter(t, "local", nil), after)
		assert.NoError(t, err, sentence)
	}
	_, err := runStackAfter(t, "local", nil, map[string]string{"storageSize": "512Mi"})
	assert.NoError(t, err, "the first update has nothing recorded to compare with")
	kind := map[string]string{"kubeconfig": testKubeconfig("kind-redis", "https://127.0.0.1:6443")}
	_, err = runStackAfter(t, "local", settingsAfter(t, "local", kind), map[string]string{"kubeconfig": testKubeconfig("kind-redis", "https://127.0.0.1:7443")})
	assert.NoError(t, err, "a new endpoint or new credentials of the same cluster")
	for stack, after := range map[string]map[string]string{
		"gke": {"gkeMasterAuthorizedNetworks": `["203.0.113.0/24"]`, "gkeMinNodesPerZone": "2", "gkeMachineType": "e2-standard-8"},
		"eks": {"eksKubernetesVersion": "1.34", "eksMinNodes": "4", "eksDesiredNodes": "4", "eksPublicAccessCidrs": `["203.0.113.0/24"]`},
	} {
		_, err := runStackAfter(t, stack, settingsAfter(t, stack, nil), after)
		assert.NoError(t, err, "%s: %v updates the cluster in place", stack, after)
	}
}

func TestSafeChangesOfAClusterPassTheCheckOfTheRecordedSettings(t *testing.T) {
	for sentence, after := range map[string]map[string]string{
		"a longer node timeout rolls":      {"clusterNodeTimeoutMilliseconds": "8000"},
		"a larger volume grows the claims": {"storageSize": "20Gi"},
		"memory and images roll":           {"redisMemory": "1Gi", "redisImage": "docker.io/library/redis:7.2.6-alpine"},
		"Redis to Valkey rolls":            {"engine": "valkey"},
	} {
		_, err := runStackAfter(t, "local-cluster", settingsAfter(t, "local-cluster", nil), after)
		assert.NoError(t, err, sentence)
	}
}

// A release updated by a version without RedisCluster recorded no topology. It was a Sentinel
// release: read so, it updates as before, and still cannot become a cluster. Nor did it record
// an engine: it ran Redis.
func TestSettingsRecordedWithoutATopologyAreASentinelRelease(t *testing.T) {
	old := recordedSettings(t, "local", nil)
	assert.Equal(t, "sentinel", old["topology"], "this version records it")
	assert.NotContains(t, old, "replicasPerShard", "a Sentinel release has no shards")
	delete(old, "topology")
	delete(old, "engine")

	_, err := runStackAfter(t, "local", settingsOutput(old), map[string]string{"replicas": "5"})
	assert.NoError(t, err, "no topology recorded, none changed")

	r, err := runStackAfter(t, "local", settingsOutput(old), map[string]string{"topology": "cluster"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `topology: changing "sentinel" to "cluster" is refused on a running release`)
	assert.NotContains(t, err.Error(), "masterSetName", "a new topology is a new release: its other settings are not compared")
	for _, res := range r.resources {
		assert.Equal(t, typeStackReference, res.Type, "%s %s", res.Type, res.Name)
	}

	// Nor did it record an engine: it ran Redis, and moves to Valkey as any release does.
	_, err = runStackAfter(t, "local", settingsOutput(old), map[string]string{"engine": "valkey"})
	assert.NoError(t, err, "no engine recorded: Redis, which may become Valkey")
	assert.Equal(t, "valkey", recordedSettings(t, "local", map[string]string{"engine": "valkey"})["engine"], "this version records it")

	cluster := recordedSettings(t, "local-cluster", map[string]string{"replicasPerShard": "2"})
	assert.Equal(t, "cluster", cluster["topology"])
	assert.Equal(t, float64(2), cluster["replicasPerShard"])
	assert.Equal(t, "none", cluster["cloud"], "the stack's cloud, which the component has not")
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
		assert.Equal(t, "true", obj["metadata"].(map[string]any)["annotations"].(map[string]any)["pulumi.com/patchForce"],
			"the controller that created the claim owns its size: a new one without force is a conflict")
		assert.Equal(t, "true", obj["metadata"].(map[string]any)["annotations"].(map[string]any)["pulumi.com/skipAwait"],
			"the provider would wait for a bound claim of a WaitForFirstConsumer class to be Pending: five minutes, then fail")
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

// testKubeconfig is a kubeconfig whose current context uses cluster name at server.
func testKubeconfig(name, server string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster: {server: %[2]q}
contexts:
- name: %[1]s
  context: {cluster: %[1]s, user: %[1]s}
users:
- name: %[1]s
  user: {token: test}
current-context: %[1]s
`, name, server)
}

func TestTheLocalProviderIsIdentifiedByTheKubeconfigsClusterName(t *testing.T) {
	r := mustRunStack(t, map[string]string{"kubeconfig": testKubeconfig("kind-redis", "https://127.0.0.1:6443")})
	provider := r.find("pulumi:providers:kubernetes", "redis-cluster")
	assert.Equal(t, "kind-redis", provider.Inputs["clusterIdentifier"].StringValue(), "a new server address or token of the same cluster replaces nothing")
	_, err := runStack(t, map[string]string{"kubeconfig": "current-context: nowhere\n"}, false)
	assert.ErrorContains(t, err, "kubeconfig: \"(a secret)\" is not allowed: a kubeconfig whose current-context names one of its clusters")
}
