package tests

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// clusterSelector is what selects the pods of the local-cluster stack's release.
var clusterSelector = map[string]string{
	"app.kubernetes.io/name": "redis-cluster", "app.kubernetes.io/instance": "redis", "app.kubernetes.io/component": "redis",
}

// runCluster runs the local-cluster stack, some keys replaced, and returns its StatefulSet too.
func runCluster(t *testing.T, overrides map[string]string) (*release, appsv1.StatefulSet) {
	t.Helper()
	r := mustRunCloudStack(t, "local-cluster", overrides)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	return r, sts
}

func TestAClusterHasEveryObjectItNeedsAndNothingOfSentinel(t *testing.T) {
	r, _ := runCluster(t, nil)
	want := []string{
		typeNamespace + "::redis-namespace",
		"random:index/randomPassword:RandomPassword::redis-password",
		typeSecret + "::redis-auth",
		typeConfigMap + "::redis-config",
		typeConfigMap + "::redis-topology",
		typeAccount + "::redis",
		typeStatefulSet + "::redis",
		typeService + "::redis-headless",
		typeService + "::redis",
		typePDB + "::redis",
		typeNetworkPolicy + "::redis",
		"kubernetes:core/v1:ConfigMapPatch::redis-topology",
		"kubernetes:batch/v1:Job::redis-drain",
		"kubernetes:batch/v1:Job::redis-fill",
		"kubernetes:batch/v1:Job::redis-credentials",
		"random:index/randomPassword:RandomPassword::redis-monitor-password",
		"kubernetes:core/v1:SecretPatch::redis-auth",
	}
	for i := 0; i < 6; i++ {
		want = append(want, fmt.Sprintf("kubernetes:core/v1:PersistentVolumeClaimPatch::data-redis-%d", i))
	}
	var children []string
	for _, res := range r.resources {
		switch res.Type {
		case typeCluster, typeStackReference:
			assert.Equal(t, "pulumi:pulumi:Stack::redis-sentinel-local-cluster", res.Parent, "%s %s", res.Type, res.Name)
		default:
			assert.Equal(t, typeCluster+"::redis", res.Parent, "%s %s", res.Type, res.Name)
			children = append(children, res.Type+"::"+res.Name)
		}
	}
	assert.ElementsMatch(t, want, children, "no HAProxy, no sentinels, no master Service, no load balancer")
	assert.Len(t, r.ofType(typeCluster), 1)
}

func TestEveryObjectOfAClusterCarriesItsLabels(t *testing.T) {
	r, sts := runCluster(t, nil)
	for _, res := range r.resources {
		if !render.IsKubernetesObject(res) || res.Type == typeNamespace {
			continue
		}
		labels := path(render.Object(res, false), "metadata", "labels").(map[string]any)
		component := "redis"
		if res.Type == "kubernetes:batch/v1:Job" {
			// The Jobs' pods are no nodes of the cluster.
			component = strings.TrimPrefix(res.Name, "redis-")
			if component != "credentials" {
				component = "reshard"
			}
		}
		assert.Equal(t, map[string]any{
			"app.kubernetes.io/name": "redis-cluster", "app.kubernetes.io/instance": "redis", "app.kubernetes.io/component": component,
			"app.kubernetes.io/part-of": "redis-sentinel", "app.kubernetes.io/managed-by": "pulumi",
		}, labels, "%s %s", res.Type, res.Name)
	}
	assert.Equal(t, clusterSelector, sts.Spec.Selector.MatchLabels, "a Sentinel release of the same name selects other pods")
	assert.Subset(t, sts.Spec.Template.Labels, clusterSelector)
}

func TestAClusterStatefulSetHoldsEveryShardsPodsAndMountsTheTopology(t *testing.T) {
	for _, c := range []struct {
		shards, replicasPerShard string
		pods                     int
	}{{"3", "1", 6}, {"5", "2", 15}, {"3", "5", 18}} {
		r, sts := runCluster(t, map[string]string{"shards": c.shards, "replicasPerShard": c.replicasPerShard})
		assert.Equal(t, int32(c.pods), *sts.Spec.Replicas, "%s shards x (1 + %s)", c.shards, c.replicasPerShard)
		assert.Len(t, r.ofType("kubernetes:core/v1:PersistentVolumeClaimPatch"), c.pods, "every pod's claim grows with storageSize")
	}

	_, sts := runCluster(t, nil)
	assert.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy, "the keepers, not the start order, decide the roles")
	assert.Equal(t, "redis-headless", sts.Spec.ServiceName)
	spec := sts.Spec.Template.Spec
	require.Equal(t, []string{"redis", "metrics"}, containerNames(spec))
	var topology *corev1.Volume
	for i, v := range spec.Volumes {
		if v.Name == "topology" {
			topology = &spec.Volumes[i]
		}
	}
	require.NotNil(t, topology)
	require.NotNil(t, topology.ConfigMap)
	assert.Equal(t, "redis-topology", topology.ConfigMap.Name, "a fixed name: the ConfigMap changes in place")
	assert.Contains(t, spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "topology", MountPath: "/etc/redis-cluster-topology", ReadOnly: true})
	assert.Contains(t, spec.Containers[0].Env, corev1.EnvVar{Name: "TOPOLOGY_DIR", Value: "/etc/redis-cluster-topology"})
}

func containerNames(spec corev1.PodSpec) []string {
	var names []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// Kubernetes refuses any change of volumeClaimTemplates; without ignoreChanges the provider would
// replace the StatefulSet, every pod at once.
func TestNeitherStatefulSetIsReplacedForItsClaimTemplates(t *testing.T) {
	for _, stack := range []string{"local", "local-cluster"} {
		assert.Contains(t, runDay2(t, stack, nil).request(typeStatefulSet, "redis").GetIgnoreChanges(), "spec.volumeClaimTemplates", stack)
	}
}

// The topology reaches running pods through a mounted ConfigMap that changes in place; the
// config is content-addressed like a Sentinel release's, so a change of it rolls the pods.
func TestTheTopologyChangesInPlaceAndTheConfigIsContentAddressed(t *testing.T) {
	base, baseSts := runCluster(t, nil)
	topology := base.object(typeConfigMap, "redis-topology")
	assert.Equal(t, map[string]any{"shards": "3", "replicas-per-shard": "1"}, topology["data"])
	assert.Nil(t, topology["immutable"], "a new shard count must reach the running pods")
	assert.Equal(t, "redis-topology", path(topology, "metadata", "name"))

	config := base.object(typeConfigMap, "redis-config")
	assert.Equal(t, true, config["immutable"])
	name := path(config, "metadata", "name").(string)
	assert.Regexp(t, regexp.MustCompile(`^redis-config-[0-9a-f]{10}$`), name)
	assert.Equal(t, name, configVolume(t, baseSts.Spec.Template.Spec), "the pods mount the content-addressed ConfigMap")
	assert.ElementsMatch(t, []string{"cluster.conf", "common.sh", "cluster-lib.sh", "cluster-start.sh", "cluster-prestop.sh", "cluster-probe.sh", "cluster-reshard.sh", "credentials.sh"},
		keysOf(config["data"].(map[string]any)))

	more, moreSts := runCluster(t, map[string]string{"shards": "5", "replicasPerShard": "2"})
	assert.Equal(t, map[string]any{"shards": "5", "replicas-per-shard": "2"}, more.object(typeConfigMap, "redis-topology")["data"])
	assert.Equal(t, baseSts.Spec.Template, moreSts.Spec.Template, "the shape is no pod template change: running pods stay")

	slower, slowerSts := runCluster(t, map[string]string{"clusterNodeTimeoutMilliseconds": "8000"})
	slowerConfig := slower.object(typeConfigMap, "redis-config")
	assert.Contains(t, slowerConfig["data"].(map[string]any)["cluster.conf"], "\ncluster-node-timeout 8000\n")
	assert.NotEqual(t, name, path(slowerConfig, "metadata", "name"), "new content, new ConfigMap")
	assert.Equal(t, path(slowerConfig, "metadata", "name"), configVolume(t, slowerSts.Spec.Template.Spec), "the pods roll onto it")
}

// The cluster bus carries failure reports, votes and the slot map: only the release's own pods
// may reach it. Clients reach the client port, and the scraper the metrics port.
func TestOnlyTheClustersOwnPodsReachItsBus(t *testing.T) {
	r, _ := runCluster(t, nil)
	var policy networkingv1.NetworkPolicy
	r.decode(typeNetworkPolicy, "redis", &policy)
	assert.Equal(t, clusterSelector, policy.Spec.PodSelector.MatchLabels)
	ports := map[int][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range policy.Spec.Ingress {
		require.NotEmpty(t, rule.From, "a rule without peers admits every source")
		for _, p := range rule.Ports {
			ports[p.Port.IntValue()] = append(ports[p.Port.IntValue()], rule.From...)
		}
	}
	peers := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: clusterSelector}}
	assert.Equal(t, []networkingv1.NetworkPolicyPeer{peers}, ports[components.BusPort], "no namespace selector: this namespace's pods of this release only")
	job := func(component string) networkingv1.NetworkPolicyPeer {
		labels := maps.Clone(clusterSelector)
		labels["app.kubernetes.io/component"] = component
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
	}
	assert.Equal(t, []networkingv1.NetworkPolicyPeer{peers, job("reshard"), job("credentials"), {
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"redis-client": "true"}},
		NamespaceSelector: &metav1.LabelSelector{},
	}}, ports[components.RedisPort], "peers, the resharding and credentials Jobs, and labelled clients in any namespace")
	require.Len(t, ports[components.MetricsPort], 1, "the scraper, and only to the metrics port")
	assert.Len(t, ports, 3)

	var seed corev1.Service
	r.decode(typeService, "redis", &seed)
	require.Len(t, seed.Spec.Ports, 1)
	assert.Equal(t, int32(components.RedisPort), seed.Spec.Ports[0].Port, "clients are seeded with the client port only")
	assert.False(t, seed.Spec.PublishNotReadyAddresses, "the seed leads to nodes that have a role")
	var headless corev1.Service
	r.decode(typeService, "redis-headless", &headless)
	assert.Equal(t, "None", headless.Spec.ClusterIP)
	assert.True(t, headless.Spec.PublishNotReadyAddresses, "a node gets its role only once it sees every pod by name")
}

func TestAClusterStackExportsItsSeeds(t *testing.T) {
	exports := func(overrides map[string]string) map[string]any {
		cfg := stackConfig(t, "local-cluster", overrides)
		return runWithExports(t, stacksRun, stackReferenceMock{Recorder: &render.Recorder{}}, cfg.Project, cfg.Values)
	}
	got := exports(nil)
	var seeds []any
	for i := 0; i < 6; i++ {
		seeds = append(seeds, fmt.Sprintf("redis-%d.redis-headless.redis.svc.cluster.local:6379", i))
	}
	assert.Equal(t, "redis.redis.svc.cluster.local:6379", got["seedEndpoint"])
	assert.Equal(t, seeds, got["seedNodes"])
	assert.Equal(t, "redis-auth", got["secretName"])
	assert.Equal(t, "redis", got["namespace"])
	for _, sentinelOnly := range []string{"masterEndpoint", "sentinelEndpoint", "masterSetName", "loadBalancerAddress"} {
		assert.NotContains(t, got, sentinelOnly)
	}

	got = exports(map[string]string{"name": "cache", "namespace": "apps", "clusterDomain": "example.internal", "shards": "4", "replicasPerShard": "2"})
	nodes := got["seedNodes"].([]any)
	require.Len(t, nodes, 12, "4 shards x (1 + 2)")
	assert.Equal(t, "cache-11.cache-headless.apps.svc.example.internal:6379", nodes[11])
	assert.Equal(t, "cache.apps.svc.example.internal:6379", got["seedEndpoint"])
	assert.Equal(t, "cache-auth", got["secretName"])
	assert.Equal(t, "apps", got["namespace"])
}

func TestTheClusterComponentRefusesInvalidArgsBeforeRegisteringAnything(t *testing.T) {
	r, err := runClusterComponent(t, &components.RedisClusterArgs{
		ReleaseArgs: components.ReleaseArgs{Namespace: "Apps", StorageSize: "lots"}, Shards: 2, ReplicasPerShard: -1, NodeTimeoutMilliseconds: 700000,
	})
	require.Error(t, err)
	var fields []string
	for _, line := range strings.Split(err.Error(), "\n") {
		fields = append(fields, strings.SplitN(line, ":", 2)[0])
	}
	assert.Equal(t, []string{"namespace", "storageSize", "shards", "replicasPerShard", "clusterNodeTimeoutMilliseconds"}, fields,
		"the shared fields and the cluster's, with the stack's key names")
	assert.Contains(t, err.Error(), "replicasPerShard: -1 is not allowed: from 1 to 5")
	assert.Empty(t, r.resources)

	r, err = runClusterComponent(t, nil)
	require.NoError(t, err, "nil args take the defaults")
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	assert.Equal(t, int32(6), *sts.Spec.Replicas)
}
