package tests

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/internal/render"
)

func TestTheReleaseHasEveryObjectAUserNeeds(t *testing.T) {
	r := mustRunStack(t, nil)
	want := map[string]string{
		"redis-namespace":      typeNamespace,
		"redis-auth":           typeSecret,
		"redis-config":         typeConfigMap,
		"redis-haproxy-config": typeConfigMap,
		"redis":                typeStatefulSet,
		"redis-headless":       typeService,
		"redis-sentinel":       typeService,
		"redis-master":         typeService,
		"redis-haproxy":        typeDeployment,
	}
	for name, typ := range want {
		r.find(typ, name)
	}
	assert.Len(t, r.ofType(typePDB), 2, "one PodDisruptionBudget for redis, one for HAProxy")
	assert.Len(t, r.ofType(typeNetworkPolicy), 2, "one NetworkPolicy for redis, one for HAProxy")
	assert.Len(t, r.ofType(typeAccount), 1)
}

func TestEveryChildHasTheComponentAsParent(t *testing.T) {
	r := mustRunStack(t, nil)
	components := r.ofType(typeComponent)
	require.Len(t, components, 1)
	assert.Equal(t, "pulumi:pulumi:Stack::redis-sentinel-local", components[0].Parent)
	for _, res := range r.resources {
		switch res.Type {
		case typeComponent:
		case typeStackReference:
			assert.Equal(t, "pulumi:pulumi:Stack::redis-sentinel-local", res.Parent, "the stack reads its own last settings")
		default:
			assert.Equal(t, typeComponent+"::redis", res.Parent, "%s %s", res.Type, res.Name)
		}
	}
}

func TestEveryObjectCarriesTheRecommendedLabels(t *testing.T) {
	r := mustRunStack(t, nil)
	for _, res := range r.resources {
		if !render.IsKubernetesObject(res) || res.Type == typeNamespace {
			continue
		}
		labels := render.Object(res, false)["metadata"].(map[string]any)["labels"].(map[string]any)
		for _, key := range []string{"name", "instance", "component", "part-of", "managed-by"} {
			assert.Contains(t, labels, "app.kubernetes.io/"+key, "%s %s", res.Type, res.Name)
		}
		assert.Equal(t, "redis", labels["app.kubernetes.io/instance"])
	}
}

// eksControllerAnnotations are an internal NLB's, as the AWS Load Balancer Controller reads them:
// IP targets that keep the client's address, health-checked on HAProxy's /healthz.
var eksControllerAnnotations = map[string]any{
	"service.beta.kubernetes.io/aws-load-balancer-scheme":                  "internal",
	"service.beta.kubernetes.io/aws-load-balancer-type":                    "external",
	"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type":         "ip",
	"service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=true",
	"service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol":    "http",
	"service.beta.kubernetes.io/aws-load-balancer-healthcheck-port":        "8404",
	"service.beta.kubernetes.io/aws-load-balancer-healthcheck-path":        "/healthz",
}

func TestLoadBalancerIsInternalWithExactlyTheAnnotationsOfItsCloud(t *testing.T) {
	for cloud, want := range map[string]map[string]any{
		"gke": {"networking.gke.io/load-balancer-type": "Internal"},
		"eks": eksControllerAnnotations,
		"aks": {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
	} {
		t.Run(cloud, func(t *testing.T) {
			r := mustRunOn(t, cloud, map[string]string{"loadBalancer": "true", "loadBalancerSourceRanges": `["192.168.0.0/16"]`, "clusterNetworks": `["10.244.0.0/16"]`})
			lb := r.object(typeService, "redis-master-lb")
			assert.Equal(t, want, lb["metadata"].(map[string]any)["annotations"])
			spec := lb["spec"].(map[string]any)
			assert.Equal(t, "LoadBalancer", spec["type"])
			assert.Equal(t, []any{"192.168.0.0/16"}, spec["loadBalancerSourceRanges"])
			assert.Equal(t, map[string]any{
				"app.kubernetes.io/name": "redis-sentinel", "app.kubernetes.io/instance": "redis", "app.kubernetes.io/component": "haproxy",
			}, spec["selector"], "the load balancer leads to HAProxy, which leads to the master")
		})
	}
}

func TestLoadBalancerSourceRangesLimitTheLoadBalancerAndTheNetworkPolicy(t *testing.T) {
	r := mustRunOn(t, "gke", map[string]string{
		"loadBalancer": "true", "loadBalancerSourceRanges": `["10.10.0.0/16","192.168.4.0/24"]`,
	})
	var lb corev1.Service
	r.decode(typeService, "redis-master-lb", &lb)
	assert.Equal(t, []string{"10.10.0.0/16", "192.168.4.0/24"}, lb.Spec.LoadBalancerSourceRanges)
	assert.Equal(t, corev1.ServiceExternalTrafficPolicyLocal, lb.Spec.ExternalTrafficPolicy,
		"the NetworkPolicy's ranges can only match clients whose address is kept")

	var policy networkingv1.NetworkPolicy
	r.decode(typeNetworkPolicy, "redis-haproxy", &policy)
	require.Len(t, policy.Spec.Ingress, 2, "labelled clients, and the load balancer's ranges")
	var cidrs []string
	for _, peer := range policy.Spec.Ingress[1].From {
		require.NotNil(t, peer.IPBlock)
		cidrs = append(cidrs, peer.IPBlock.CIDR)
	}
	assert.Equal(t, []string{"10.10.0.0/16", "192.168.4.0/24"}, cidrs)
}

func TestNoLoadBalancerUnlessAskedForAndInternal(t *testing.T) {
	for _, cloud := range []string{"none", "gke", "eks", "aks"} {
		r := mustRunOn(t, cloud, map[string]string{"loadBalancer": "false", "loadBalancerSourceRanges": "[]"})
		for _, svc := range r.ofType(typeService) {
			spec := render.Object(svc, false)["spec"].(map[string]any)
			assert.NotEqual(t, "LoadBalancer", spec["type"], "%s: %s", cloud, svc.Name)
		}
	}
	_, err := runStack(t, map[string]string{"loadBalancer": "true"}, false)
	require.Error(t, err, "cloud none has no internal annotation: a LoadBalancer needs the public opt-in")
	assert.Contains(t, err.Error(), "publicLoadBalancer")
}

func TestAPublicLoadBalancerIsAnExplicitMarkedChoice(t *testing.T) {
	r := mustRunStack(t, map[string]string{"loadBalancer": "true", "publicLoadBalancer": "true", "loadBalancerSourceRanges": `["203.0.113.0/24"]`, "clusterNetworks": `["10.244.0.0/16"]`})
	lb := r.object(typeService, "redis-master-lb")
	assert.Equal(t, map[string]any{components.PublicLoadBalancerAnnotation: "true"}, lb["metadata"].(map[string]any)["annotations"])

	r = mustRunOn(t, "gke", map[string]string{"loadBalancer": "true", "publicLoadBalancer": "true"})
	lb = r.object(typeService, "redis-master-lb")
	assert.Equal(t, map[string]any{components.PublicLoadBalancerAnnotation: "true"}, lb["metadata"].(map[string]any)["annotations"],
		"public on gke means no internal annotation, and the mark")
}

// testPassword and testMonitorPassword are the passwords of the tests that set one.
const (
	testPassword        = "Correct-Horse-Battery-Staple-42"
	testMonitorPassword = "Monitor-Horse-Battery-Staple-43"
)

func TestThePasswordIsOnlyInTheSecretAndTheSecretIsAPulumiSecret(t *testing.T) {
	r := mustRunStack(t, map[string]string{"password": testPassword})
	secret := r.find(typeSecret, "redis-auth")
	assert.True(t, secret.Inputs["stringData"].ContainsSecrets(), "stringData must be a Pulumi secret")
	assert.Equal(t, testPassword, render.Object(secret, true)["stringData"].(map[string]any)["password"])
	// The patch that keeps the Secret's data in place (a rotation changes it) holds it encoded.
	patch := r.find("kubernetes:core/v1:SecretPatch", "redis-auth")
	assert.True(t, patch.Inputs["data"].ContainsSecrets(), "the patch's data must be a Pulumi secret")
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte(testPassword)), render.Object(patch, true)["data"].(map[string]any)["password"])

	for _, res := range r.resources {
		if res.Type == typeSecret {
			continue
		}
		assert.NotContains(t, rendered(t, res, true), testPassword, "%s %s holds the password", res.Type, res.Name)
	}
	for _, res := range r.resources {
		assert.NotContains(t, rendered(t, res, false), testPassword, "rendered %s %s shows the password", res.Type, res.Name)
	}
}

func TestAGeneratedPasswordIsASecretToo(t *testing.T) {
	r := mustRunStack(t, nil)
	secret := r.find(typeSecret, "redis-auth")
	assert.True(t, secret.Inputs["stringData"].ContainsSecrets())
	for _, res := range r.resources {
		assert.NotContains(t, rendered(t, res, false), render.GeneratedPassword, "%s %s", res.Type, res.Name)
	}
}

// rendered is an object's inputs as YAML-ish text, for "does it contain" checks.
func rendered(t *testing.T, res render.Resource, showSecrets bool) string {
	t.Helper()
	files, err := render.Manifests([]render.Resource{res}, showSecrets)
	require.NoError(t, err)
	var all strings.Builder
	for _, body := range files {
		all.Write(body)
	}
	return all.String()
}

func TestQuorumDefaultsToAMajorityOfSentinels(t *testing.T) {
	for replicas, quorum := range map[string]string{"3": "2", "5": "3", "7": "4"} {
		r := mustRunStack(t, map[string]string{"replicas": replicas})
		assert.Contains(t, r.configFile("sentinel.conf"),
			"sentinel monitor mymaster redis-0.redis-headless.redis.svc.cluster.local 6379 "+quorum+"\n", "replicas %s", replicas)
	}
	r := mustRunStack(t, map[string]string{"replicas": "5", "quorum": "5"})
	assert.Contains(t, r.configFile("sentinel.conf"), "6379 5\n", "an explicit quorum is kept")
}

func TestSentinelsAndReplicasAnnounceTheirPodDNSNameNotAnIP(t *testing.T) {
	r := mustRunStack(t, nil)
	conf := r.configFile("sentinel.conf")
	resolve := strings.Index(conf, "\nsentinel resolve-hostnames yes\n")
	monitor := strings.Index(conf, "\nsentinel monitor ")
	assert.True(t, resolve >= 0 && resolve < monitor, "resolve-hostnames must precede the monitor line, which names a host")
	assert.Contains(t, conf, "\nsentinel announce-hostnames yes\n")

	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	for _, c := range sts.Spec.Template.Spec.Containers[:2] { // redis and sentinel; the exporter announces nothing
		assert.Contains(t, c.Env, corev1.EnvVar{Name: "POD_FQDN", Value: "$(POD_NAME).redis-headless.redis.svc.cluster.local"}, c.Name)
		assert.Less(t, envIndex(c.Env, "POD_NAME"), envIndex(c.Env, "POD_FQDN"), "$(POD_NAME) expands only if defined earlier")
	}
	assert.Contains(t, r.configFile("sentinel-start.sh"), `echo "sentinel announce-ip ${POD_FQDN}"`)
	assert.Contains(t, r.configFile("redis-start.sh"), `echo "replica-announce-ip ${POD_FQDN}"`)
}

func envIndex(env []corev1.EnvVar, name string) int {
	for i, e := range env {
		if e.Name == name {
			return i
		}
	}
	return -1
}

func TestRedisRefusesWritesWhenNoReplicaIsInSync(t *testing.T) {
	conf := mustRunStack(t, map[string]string{"minReplicasMaxLagSeconds": "3"}).configFile("redis.conf")
	assert.Contains(t, conf, "\nmin-replicas-to-write 1\n")
	assert.Contains(t, conf, "\nmin-replicas-max-lag 3\n")
	assert.Contains(t, conf, "\nprotected-mode no\n", "protected mode is set explicitly; auth is always on")
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^(requirepass|masterauth)`), conf, "the password is appended at start, from the environment")
}

func TestRedisStaysBelowItsMemoryLimitAndEvictsOnlyAsACache(t *testing.T) {
	conf := mustRunStack(t, map[string]string{"redisMemory": "1Gi"}).configFile("redis.conf")
	assert.Contains(t, conf, "\nmaxmemory 805306368\n", "three quarters of 1Gi: room for buffers and the AOF rewrite's fork")
	assert.Contains(t, conf, "\nmaxmemory-policy noeviction\n", "a data store refuses writes when full")
	conf = mustRunStack(t, map[string]string{"ephemeral": "true"}).configFile("redis.conf")
	assert.Contains(t, conf, "\nmaxmemory 402653184\n")
	assert.Contains(t, conf, "\nmaxmemory-policy allkeys-lru\n", "a cache evicts")
}

func TestAConfigChangeIsANewConfigMapThatRollsOnlyThePodsThatReadIt(t *testing.T) {
	names := func(overrides map[string]string) (redis, haproxy string) {
		r := mustRunStack(t, overrides)
		var sts appsv1.StatefulSet
		r.decode(typeStatefulSet, "redis", &sts)
		var dep appsv1.Deployment
		r.decode(typeDeployment, "redis-haproxy", &dep)
		redis, haproxy = configVolume(t, sts.Spec.Template.Spec), configVolume(t, dep.Spec.Template.Spec)
		assert.Equal(t, r.object(typeConfigMap, "redis-config")["metadata"].(map[string]any)["name"], redis, "the redis pods mount the redis ConfigMap")
		assert.Equal(t, r.object(typeConfigMap, "redis-haproxy-config")["metadata"].(map[string]any)["name"], haproxy, "HAProxy mounts its own")
		assert.Equal(t, true, r.object(typeConfigMap, "redis-config")["immutable"], "a content-addressed ConfigMap never changes")
		return redis, haproxy
	}
	baseRedis, baseHAProxy := names(nil)
	require.Regexp(t, regexp.MustCompile(`^redis-config-[0-9a-f]{10}$`), baseRedis)
	require.Regexp(t, regexp.MustCompile(`^redis-haproxy-config-[0-9a-f]{10}$`), baseHAProxy)
	again, _ := names(nil)
	assert.Equal(t, baseRedis, again, "same config, same name")

	for _, c := range []struct {
		sentence       string
		overrides      map[string]string
		redis, haproxy bool // whether each name must change
	}{
		{"a new image is no config change", map[string]string{"redisImage": "docker.io/library/redis:7.2.6-alpine"}, false, false},
		{"more HAProxy pods lowers each one's maxconn", map[string]string{"haproxyReplicas": "3"}, false, true},
		{"a larger volume is no config change", map[string]string{"storageSize": "20Gi"}, false, false},
		{"down-after is sentinel config", map[string]string{"downAfterMilliseconds": "7000"}, true, false},
		{"the lag bound is redis config", map[string]string{"minReplicasMaxLagSeconds": "5"}, true, false},
		{"ephemeral changes redis.conf (no AOF)", map[string]string{"ephemeral": "true"}, true, false},
		{"the master set name is in sentinel.conf and haproxy.cfg", map[string]string{"masterSetName": "cache"}, true, true},
		{"more pods changes the quorum and HAProxy's servers", map[string]string{"replicas": "5"}, true, true},
	} {
		redis, haproxy := names(c.overrides)
		assert.Equal(t, c.redis, redis != baseRedis, "redis pods: %s", c.sentence)
		assert.Equal(t, c.haproxy, haproxy != baseHAProxy, "HAProxy pods: %s", c.sentence)
	}
}

// configVolume is the ConfigMap a pod mounts.
func configVolume(t *testing.T, spec corev1.PodSpec) string {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			return v.ConfigMap.Name
		}
	}
	t.Fatal("the pod mounts no ConfigMap")
	return ""
}

func TestRedisPodsAreHardenedProbedAndStopGracefully(t *testing.T) {
	r := mustRunStack(t, nil)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	spec := sts.Spec.Template.Spec
	assert.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy)
	assert.Equal(t, "redis-headless", sts.Spec.ServiceName)
	assert.False(t, *spec.AutomountServiceAccountToken)
	assert.False(t, *spec.EnableServiceLinks, "service links would put REDIS_PORT=tcp://... into the environment")
	require.Len(t, spec.Containers, 3, "redis, sentinel and the metrics exporter")
	redis, sentinel := spec.Containers[0], spec.Containers[1]
	assert.Equal(t, []string{"sh", "/etc/redis-sentinel/probe.sh", "redis-ready"}, redis.ReadinessProbe.Exec.Command)
	assert.Equal(t, []string{"sh", "/etc/redis-sentinel/redis-prestop.sh"}, redis.Lifecycle.PreStop.Exec.Command)
	assert.Greater(t, *spec.TerminationGracePeriodSeconds, int64(20), "room for the preStop failover")
	require.NotNil(t, spec.ShareProcessNamespace)
	assert.True(t, *spec.ShareProcessNamespace, "the pause container is PID 1 and reaps orphans; redis-server, as PID 1, left them zombies")
	assert.Equal(t, []string{"sh", "/etc/redis-sentinel/sentinel-start.sh"}, sentinel.Command)
	for _, c := range []corev1.Container{redis, sentinel} {
		assert.NotNil(t, c.StartupProbe, "%s: loading a large AOF may take long", c.Name)
	}
	for _, c := range spec.Containers {
		assert.NotEmpty(t, c.Resources.Requests.Cpu().String(), c.Name)
		assert.False(t, c.Resources.Requests.Memory().IsZero(), c.Name)
		assert.False(t, c.Resources.Limits.Memory().IsZero(), c.Name)
		assert.NotNil(t, c.LivenessProbe, c.Name)
		for _, arg := range append(c.Command, c.Args...) {
			assert.NotContains(t, arg, "PASSWORD", "no password on a command line")
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath == "/etc/redis-sentinel" {
				assert.True(t, m.ReadOnly)
			}
		}
	}
}

// placement is where the pods of one component may run: whether two may share a node, and how
// they spread over zones.
type placement struct {
	requiredHosts, preferredHosts []string // topology keys of the anti-affinity terms
	zones                         []string // topology keys of the spread constraints
}

func placementOf(t *testing.T, spec corev1.PodSpec, selector map[string]string) placement {
	t.Helper()
	var p placement
	if anti := spec.Affinity; anti != nil && anti.PodAntiAffinity != nil {
		for _, term := range anti.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			assert.Equal(t, selector, term.LabelSelector.MatchLabels, "the pods of this component only")
			p.requiredHosts = append(p.requiredHosts, term.TopologyKey)
		}
		for _, term := range anti.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			assert.Equal(t, selector, term.PodAffinityTerm.LabelSelector.MatchLabels)
			p.preferredHosts = append(p.preferredHosts, term.PodAffinityTerm.TopologyKey)
		}
	}
	for _, c := range spec.TopologySpreadConstraints {
		assert.Equal(t, selector, c.LabelSelector.MatchLabels)
		assert.Equal(t, corev1.ScheduleAnyway, c.WhenUnsatisfiable, "%s: a full zone never keeps a pod from starting", c.TopologyKey)
		p.zones = append(p.zones, c.TopologyKey)
	}
	return p
}

// "Spread across nodes" is a guarantee where the README makes it: a topology spread with maxSkew 1
// still puts two of three pods on one of two nodes. The local stack runs on a single node.
func TestEveryPodOfAComponentGetsANodeOfItsOwnUnlessTheStackSharesNodes(t *testing.T) {
	ownNode := placement{requiredHosts: []string{"kubernetes.io/hostname"}, zones: []string{"topology.kubernetes.io/zone"}}
	sharedNode := placement{preferredHosts: []string{"kubernetes.io/hostname"}, zones: []string{"topology.kubernetes.io/zone"}}
	for _, c := range []struct {
		stack     string
		overrides map[string]string
		want      placement
	}{
		{"gke", nil, ownNode},
		{"eks", nil, ownNode},
		{"local", nil, sharedNode},
		{"local", map[string]string{"spreadAcrossNodes": "true"}, ownNode},
	} {
		r := mustRunCloudStack(t, c.stack, c.overrides)
		var sts appsv1.StatefulSet
		r.decode(typeStatefulSet, "redis", &sts)
		assert.Equal(t, c.want, placementOf(t, sts.Spec.Template.Spec, sts.Spec.Selector.MatchLabels), "redis pods: %s %v", c.stack, c.overrides)
		var dep appsv1.Deployment
		r.decode(typeDeployment, "redis-haproxy", &dep)
		assert.Equal(t, c.want, placementOf(t, dep.Spec.Template.Spec, dep.Spec.Selector.MatchLabels), "HAProxy pods: %s %v", c.stack, c.overrides)
	}

	r, err := runComponent(t, &components.RedisSentinelArgs{}, false)
	require.NoError(t, err)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	assert.Equal(t, ownNode, placementOf(t, sts.Spec.Template.Spec, sts.Spec.Selector.MatchLabels), "the component's default")
}

func TestPersistenceIsAVolumeClaimWithAOFUnlessEphemeral(t *testing.T) {
	r := mustRunStack(t, nil)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
	claim := sts.Spec.VolumeClaimTemplates[0]
	assert.Equal(t, "data", claim.Name)
	assert.Equal(t, "1Gi", claim.Spec.Resources.Requests.Storage().String(), "Pulumi.local.yaml sets storageSize 1Gi")
	assert.Nil(t, claim.Spec.StorageClassName, "the cluster's default class")
	assert.Contains(t, r.configFile("redis.conf"), "\nappendonly yes\n")
	assert.Contains(t, r.configFile("redis.conf"), "\nsave \"\"\n",
		"no RDB snapshots on top of AOF: Redis's default save rules fork the server for a file nothing reads")

	r = mustRunStack(t, map[string]string{"ephemeral": "true"})
	sts = appsv1.StatefulSet{}
	r.decode(typeStatefulSet, "redis", &sts)
	assert.Empty(t, sts.Spec.VolumeClaimTemplates)
	var data *corev1.Volume
	for i, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			data = &sts.Spec.Template.Spec.Volumes[i]
		}
	}
	require.NotNil(t, data)
	assert.NotNil(t, data.EmptyDir)
	assert.Contains(t, r.configFile("redis.conf"), "\nappendonly no\n")
	assert.Contains(t, r.configFile("redis.conf"), "\nsave \"\"\n", "a cache writes nothing to disk")
}

func TestServicesGiveStableNamesAndOneMasterAddress(t *testing.T) {
	r := mustRunStack(t, nil)
	var headless corev1.Service
	r.decode(typeService, "redis-headless", &headless)
	assert.Equal(t, "None", headless.Spec.ClusterIP)
	assert.True(t, headless.Spec.PublishNotReadyAddresses, "pods must resolve each other before they are ready")

	var master corev1.Service
	r.decode(typeService, "redis-master", &master)
	assert.Equal(t, "haproxy", master.Spec.Selector["app.kubernetes.io/component"])
	assert.Equal(t, int32(6379), master.Spec.Ports[0].Port)
	assert.Equal(t, int32(6380), master.Spec.Ports[1].Port, "the read endpoint")

	var sentinel corev1.Service
	r.decode(typeService, "redis-sentinel", &sentinel)
	assert.Equal(t, int32(26379), sentinel.Spec.Ports[0].Port)
	assert.True(t, sentinel.Spec.PublishNotReadyAddresses,
		"a pod is ready when its redis is: a resyncing replica's sentinel must stay reachable")

	var haproxy appsv1.Deployment
	r.decode(typeDeployment, "redis-haproxy", &haproxy)
	assert.Equal(t, int32(2), *haproxy.Spec.Replicas)
	assert.Equal(t, "/healthz", haproxy.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path)
}

func TestHAProxyRoutesOnlyToAMasterThatTheSentinelsName(t *testing.T) {
	cfg := mustRunStack(t, nil).configFile("haproxy.cfg")
	assert.Contains(t, cfg, `tcp-check send "AUTH monitor ${MONITOR_PASSWORD}\r\n"`, "the user monitor, its password from the environment")
	assert.NotContains(t, cfg, "REDIS_PASSWORD", "the clients' password never reaches HAProxy")
	assert.Contains(t, cfg, "tcp-check expect string role:master")
	var routable []string
	for i := 0; i < 3; i++ {
		pod := fmt.Sprintf("redis-%d", i)
		condition := fmt.Sprintf("{ srv_is_up(redis_master/%s) } { nbsrv(sentinels_name_%s) ge 2 }", pod, pod)
		routable = append(routable, condition)
		assert.Contains(t, cfg, "use-server "+pod+" if "+condition+"\n")
		assert.Contains(t, cfg, "tcp-check expect min-recv 1 string "+pod+".redis-headless.redis.svc.cluster.local\n")
		assert.Contains(t, cfg, "server "+pod+" "+pod+".redis-headless.redis.svc.cluster.local:6379\n")
	}
	either := strings.Join(routable, " || ")
	assert.Contains(t, cfg, "tcp-request content reject unless "+either+"\n", "no routable master: refuse, never guess")
	assert.Contains(t, cfg, "http-request return status 503 unless "+either+"\n", "/master tells whether a client would reach a master")
	assert.NotContains(t, cfg, "monitor fail", "the pods' readiness (/healthz) is HAProxy's own, not the master's (tools_test.go runs it)")

	// Sentinel has no QUIT command: a check that expects +OK to it never passes.
	for _, backend := range strings.Split(cfg, "\nbackend ")[1:] {
		if strings.HasPrefix(backend, "sentinels_name_") {
			assert.NotContains(t, backend, `send "QUIT`, strings.SplitN(backend, "\n", 2)[0])
		}
	}
}

// The read endpoint reads a replica only while it is in sync with the master that writes go to:
// one that follows any other master may hold writes the new master never got (an old master's).
// Without such a replica the master serves, and nothing while no master is routable.
func TestTheReadEndpointReadsOnlyReplicasOfTheRoutableMaster(t *testing.T) {
	cfg := mustRunStack(t, nil).configFile("haproxy.cfg")
	frontend := section(t, cfg, "frontend redis_read")
	backend := section(t, cfg, "backend redis_read")
	assert.Contains(t, frontend, "bind :6380\n")
	assert.Contains(t, frontend, "default_backend redis_master\n", "no replica in sync: the master, or a refusal")
	for i := 0; i < 3; i++ {
		pod := fmt.Sprintf("redis-%d", i)
		assert.Contains(t, cfg, "tcp-check expect rstring role:slave[^!]*master_host:"+pod+".redis-headless.redis.svc.cluster.local[^!]*master_link_status:up\n")
		for j := 0; j < 3; j++ {
			replica := fmt.Sprintf("redis-%d", j)
			readable := fmt.Sprintf("{ srv_is_up(replicas_of_%s/%s) } { srv_is_up(redis_master/%s) } { nbsrv(sentinels_name_%s) ge 2 }", pod, replica, pod, pod)
			if i == j {
				assert.NotContains(t, cfg, "replicas_of_"+pod+"/"+replica, "a master is not its own replica")
				continue
			}
			assert.Contains(t, frontend, "use_backend redis_read if "+readable+"\n")
			assert.Contains(t, backend, fmt.Sprintf("use-server %s if { var(txn.pick) -m int %d } %s\n", replica, j, readable))
			assert.Contains(t, backend, fmt.Sprintf("use-server %s if %s\n", replica, readable))
		}
	}
	assert.Contains(t, backend, "default-server weight 0 ", "load balancing never picks a replica the rules did not")
	assert.Contains(t, backend, "on-marked-down shutdown-sessions", "a replica out of sync loses its connections")
}

// section returns the lines of haproxy.cfg from the one that starts with header to the next
// blank line.
func section(t *testing.T, cfg, header string) string {
	t.Helper()
	_, after, found := strings.Cut(cfg, "\n"+header+"\n")
	require.True(t, found, "haproxy.cfg has %s", header)
	body, _, _ := strings.Cut(after, "\n\n")
	return body + "\n"
}

func TestHAProxyPodsTogetherStayBelowRedisMaxClients(t *testing.T) {
	for replicas, maxconn := range map[string]string{"2": "4000", "4": "2000", "20": "400"} {
		cfg := mustRunStack(t, map[string]string{"haproxyReplicas": replicas}).configFile("haproxy.cfg")
		assert.Contains(t, cfg, "\n    maxconn "+maxconn+"\n", "%s HAProxy pods", replicas)
	}
}

func TestTheConfigMapsHoldExactlyTheConfigFilesAndScriptsReadablyForDiffs(t *testing.T) {
	r := mustRunStack(t, nil)
	for name, files := range map[string][]string{
		"redis-config":         {"redis.conf", "sentinel.conf", "common.sh", "lib.sh", "redis-start.sh", "sentinel-start.sh", "redis-prestop.sh", "probe.sh", "credentials.sh"},
		"redis-haproxy-config": {"haproxy.cfg"},
	} {
		data := r.object(typeConfigMap, name)["data"].(map[string]any)
		assert.ElementsMatch(t, files, keysOf(data), name)
		manifest := rendered(t, r.find(typeConfigMap, name), false)
		for key := range data {
			assert.Contains(t, manifest, "\n  "+key+": |\n", "%s is a YAML block, so that a change shows line by line", key)
		}
	}
}

func TestDisruptionBudgetsAndNetworkPolicies(t *testing.T) {
	r := mustRunStack(t, nil)
	for _, name := range []string{"redis", "redis-haproxy"} {
		var pdb policyv1.PodDisruptionBudget
		r.decode(typePDB, name, &pdb)
		assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue(), name)
		require.NotNil(t, pdb.Spec.UnhealthyPodEvictionPolicy, "%s: the default (IfHealthyBudget) lets a pod that never gets ready block every node drain", name)
		assert.Equal(t, policyv1.AlwaysAllow, *pdb.Spec.UnhealthyPodEvictionPolicy, name)
	}

	var policy networkingv1.NetworkPolicy
	r.decode(typeNetworkPolicy, "redis", &policy)
	require.Len(t, policy.Spec.Ingress, 2, "redis and sentinel ports; the metrics port (metrics_test.go)")
	rule := policy.Spec.Ingress[0]
	var ports []int
	for _, p := range rule.Ports {
		ports = append(ports, p.Port.IntValue())
	}
	assert.Equal(t, []int{6379, 26379}, ports)
	var from []map[string]string
	for _, peer := range rule.From {
		require.NotNil(t, peer.PodSelector)
		from = append(from, peer.PodSelector.MatchLabels)
	}
	clients := rule.From[3]
	require.NotNil(t, clients.NamespaceSelector, "labelled clients in other namespaces are let in too")
	assert.Empty(t, clients.NamespaceSelector.MatchLabels)
	for _, own := range rule.From[:3] {
		assert.Nil(t, own.NamespaceSelector, "the release's own pods: this namespace only")
	}
	assert.Equal(t, []map[string]string{
		{"app.kubernetes.io/name": "redis-sentinel", "app.kubernetes.io/instance": "redis", "app.kubernetes.io/component": "redis"},
		{"app.kubernetes.io/name": "redis-sentinel", "app.kubernetes.io/instance": "redis", "app.kubernetes.io/component": "haproxy"},
		{"app.kubernetes.io/name": "redis-sentinel", "app.kubernetes.io/instance": "redis", "app.kubernetes.io/component": "credentials"},
		{"redis-client": "true"},
	}, from, "peers, HAProxy, the credentials Job and labelled clients; nobody else")

	var account corev1.ServiceAccount
	r.decode(typeAccount, "redis", &account)
	assert.False(t, *account.AutomountServiceAccountToken)
}

// In a preview, outputs of resources not yet created are unknown. Pulumi's mock monitor drops
// unknown inputs (it unmarshals without KeepUnknowns) and rejects a secret that wraps one, so the
// unknown password of a first preview cannot be expressed here; unknown images can.
func TestAPreviewWithUnknownValuesSucceeds(t *testing.T) {
	unknown := func() pulumi.StringOutput {
		return pulumi.UnsafeUnknownOutput(nil).ApplyT(func(any) string { return "" }).(pulumi.StringOutput)
	}
	r, err := runComponent(t, &components.RedisSentinelArgs{ReleaseArgs: components.ReleaseArgs{RedisImage: unknown(), MetricsImage: unknown()}, HAProxyImage: unknown()}, true)
	require.NoError(t, err)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	for _, c := range sts.Spec.Template.Spec.Containers {
		assert.Empty(t, c.Image, "%s: the unknown image reached the mock as unknown", c.Name)
	}
	var dep appsv1.Deployment
	r.decode(typeDeployment, "redis-haproxy", &dep)
	assert.Empty(t, dep.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, int32(3), *sts.Spec.Replicas, "everything known is still rendered")
}

func TestTheComponentExposesItsEndpoints(t *testing.T) {
	var got []string
	cfg := &render.StackConfig{Project: "consumer", Stack: "test", Values: map[string]string{}}
	_, err := render.Run(func(ctx *pulumi.Context) error {
		rs, err := components.NewRedisSentinel(ctx, "cache", &components.RedisSentinelArgs{ReleaseArgs: components.ReleaseArgs{Namespace: "apps"}})
		if err != nil {
			return err
		}
		// Awaited inside the program: an apply may still be pending when the run returns.
		for _, out := range []pulumi.StringOutput{rs.MasterEndpoint, rs.ReadEndpoint, rs.SentinelEndpoint, rs.MasterSetName, rs.SecretName, rs.Namespace, rs.LoadBalancerAddress} {
			v, err := internals.UnsafeAwaitOutput(ctx.Context(), out)
			if err != nil {
				return err
			}
			got = append(got, v.Value.(string))
		}
		return nil
	}, cfg, false)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"cache-master.apps.svc.cluster.local:6379",
		"cache-master.apps.svc.cluster.local:6380",
		"cache-sentinel.apps.svc.cluster.local:26379",
		"mymaster", "cache-auth", "apps", "",
	}, got)
}

// Found with real processes: for about a second after the promotion the old master still had a
// replica and took writes that were then lost. The preStop makes it refuse writes first.
func TestPreStopStopsWritesBeforeItAsksForTheFailover(t *testing.T) {
	script := mustRunStack(t, nil).configFile("redis-prestop.sh")
	refuse := strings.Index(script, `CONFIG SET min-replicas-to-write "$REPLICAS"`)
	failover := strings.Index(script, "if ! request_failover")
	require.GreaterOrEqual(t, refuse, 0)
	require.GreaterOrEqual(t, failover, 0)
	assert.Less(t, refuse, failover)
	restore := strings.LastIndex(script, `CONFIG SET min-replicas-to-write "${required:-1}"`)
	assert.Greater(t, restore, failover, "the bound is restored on every path, after the failover")
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^\s*cli .*REPLICAOF`), script, "a forced resync made redis refuse the SIGTERM after the hook")
}

// The start scripts write redis.conf and sentinel.conf, with the password, into RUN_DIR. On an
// emptyDir on the node's disk it would stay there after the pod is gone.
func TestThePasswordIsWrittenOnlyToMemory(t *testing.T) {
	for _, overrides := range []map[string]string{nil, {"ephemeral": "true"}} {
		r := mustRunStack(t, overrides)
		var sts appsv1.StatefulSet
		r.decode(typeStatefulSet, "redis", &sts)
		spec := sts.Spec.Template.Spec
		runDir := ""
		for _, e := range spec.Containers[0].Env {
			if e.Name == "RUN_DIR" {
				runDir = e.Value
			}
		}
		require.NotEmpty(t, runDir)
		assert.Contains(t, r.configFile("redis-start.sh"), `exec "$SERVER_BIN" "${RUN_DIR}/redis.conf"`)
		assert.Contains(t, r.configFile("sentinel-start.sh"), `exec "$SERVER_BIN" "${RUN_DIR}/sentinel.conf" --sentinel`)
		mounted := 0
		for _, c := range spec.Containers {
			for _, m := range c.VolumeMounts {
				if m.MountPath != runDir {
					continue
				}
				mounted++
				for _, v := range spec.Volumes {
					if v.Name == m.Name {
						require.NotNil(t, v.EmptyDir, "%v: %s", overrides, v.Name)
						assert.Equal(t, corev1.StorageMediumMemory, v.EmptyDir.Medium, "%v: %s is tmpfs", overrides, v.Name)
						require.NotNil(t, v.EmptyDir.SizeLimit, "%v: tmpfs counts against memory: bounded", overrides)
						assert.Equal(t, "1Mi", v.EmptyDir.SizeLimit.String())
					}
				}
			}
		}
		assert.Equal(t, 2, mounted, "redis and sentinel write their configs there")
	}
}
