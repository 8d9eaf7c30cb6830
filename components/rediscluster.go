package components

import (
	"fmt"
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ClusterTypeToken is the RedisCluster component's Pulumi type.
const ClusterTypeToken = "redis-sentinel:index:RedisCluster"

// componentReshard is the app.kubernetes.io/component label of the resharding Jobs' pods.
const componentReshard = "reshard"

// BusPort is the cluster bus port of a RedisCluster's nodes (Redis's default: the client port
// plus 10000).
const BusPort = RedisPort + 10000

// RedisCluster is a sharded Redis Cluster: one StatefulSet of Shards groups of pods, each group
// a master and its replicas, with a headless Service for the pods' stable names and a Service
// that seeds cluster-aware clients.
type RedisCluster struct {
	pulumi.ResourceState

	// SeedEndpoint is host:port of the Service over every ready node: a cluster-aware client
	// connects there first and then follows the cluster's map (CLUSTER SHARDS, MOVED) to each node.
	SeedEndpoint pulumi.StringOutput `pulumi:"seedEndpoint"`
	// SeedNodes are host:port of every node by its stable name, for clients that want several seeds.
	SeedNodes pulumi.StringArrayOutput `pulumi:"seedNodes"`
	// SecretName is the Secret whose key "password" holds the password.
	SecretName pulumi.StringOutput `pulumi:"secretName"`
	// Namespace of every namespaced object of the release.
	Namespace pulumi.StringOutput `pulumi:"namespace"`
}

// clusterBuilder registers what only a RedisCluster has.
type clusterBuilder struct {
	*builder
	args RedisClusterArgs
}

// NewRedisCluster validates args, then registers the component and its children. Invalid args
// are reported all at once, and then nothing is registered.
func NewRedisCluster(ctx *pulumi.Context, name string, args *RedisClusterArgs, opts ...pulumi.ResourceOption) (*RedisCluster, error) {
	if args == nil {
		args = &RedisClusterArgs{}
	}
	a := args.WithDefaults(name)
	if err := a.Validate(name); err != nil {
		return nil, err
	}
	n := newNames(name)
	files, err := renderClusterFiles(n, a)
	if err != nil {
		return nil, err
	}

	c := &RedisCluster{}
	if err := ctx.RegisterComponentResource(ClusterTypeToken, name, c, opts...); err != nil {
		return nil, err
	}
	common, err := newBuilder(ctx, c, n, appCluster, a.ReleaseArgs, []string{n.headless, n.base}, files)
	if err != nil {
		return nil, err
	}
	b := &clusterBuilder{builder: common, args: a}
	// The order of a change of shards: the drain Job reads the running shards from the topology
	// ConfigMap before the update changes it, and moves the slots off the groups that go; then
	// the topology, then the StatefulSet, then the fill Job.
	topology, err := b.topology()
	if err != nil {
		return nil, err
	}
	drain, err := b.reshardJob(reshardDrain, topology)
	if err != nil {
		return nil, err
	}
	shape, err := b.topologyPatch(drain)
	if err != nil {
		return nil, err
	}
	sts, err := b.statefulSet(shape)
	if err != nil {
		return nil, err
	}
	if _, err := b.reshardJob(reshardFill, sts); err != nil {
		return nil, err
	}
	if _, err := b.credentialsJob(corev1.EnvVarArray{envVar("PODS", strconv.Itoa(a.Pods())), envVar("KEEPER", "1")}, sts); err != nil {
		return nil, err
	}
	if err := b.services(); err != nil {
		return nil, err
	}
	if err := b.serviceMonitor(); err != nil {
		return nil, err
	}
	if err := b.policies(); err != nil {
		return nil, err
	}

	var seeds []string
	for i := 0; i < a.Pods(); i++ {
		seeds = append(seeds, fmt.Sprintf("%s-%d.%s:%d", n.base, i, peerDomain(n, a.ReleaseArgs), RedisPort))
	}
	c.SeedEndpoint = pulumi.Sprintf("%s:%d", serviceHost(n.base, a.ReleaseArgs), RedisPort)
	c.SeedNodes = pulumi.ToStringArray(seeds).ToStringArrayOutput()
	c.SecretName = pulumi.String(n.secret).ToStringOutput()
	c.Namespace = pulumi.String(a.Namespace).ToStringOutput()
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"seedEndpoint": c.SeedEndpoint,
		"seedNodes":    c.SeedNodes,
		"secretName":   c.SecretName,
		"namespace":    c.Namespace,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// renderClusterFiles returns a RedisCluster's ConfigMap data: its redis config and scripts.
func renderClusterFiles(n names, a RedisClusterArgs) (map[string]string, error) {
	memory := mustQuantity(a.RedisMemory)
	return renderFiles(clusterFiles, templateValues{
		Name:                     n.base,
		RedisPort:                RedisPort,
		BusPort:                  BusPort,
		Ephemeral:                a.Ephemeral,
		MinReplicasMaxLagSeconds: a.MinReplicasMaxLagSeconds,
		DataDir:                  dataDir,
		ShutdownTimeoutSeconds:   shutdownTimeoutSeconds,
		MaxMemoryBytes:           memory.Value() * 3 / 4,
		NodeTimeoutMilliseconds:  a.NodeTimeoutMilliseconds,
		TLSDir:                   tlsDirOf(a.ReleaseArgs),
	})
}

// topologyDir is where the pods find the topology ConfigMap.
const topologyDir = "/etc/redis-cluster-topology"

// topology registers the ConfigMap that tells running pods the cluster's shape. Unlike the
// content-addressed config, it is changed in place and mounted rather than copied into the pod
// template: a change of shards must reach the pods without restarting them all, and Kubernetes
// updates a mounted ConfigMap in running pods (within about a minute; the keepers also learn
// new nodes from the nodes themselves). The kubernetes provider replaces a ConfigMap whose data
// changes, delete first when its name is fixed (seen under the real engine), and a pod starting
// in between would find no topology: so this resource only creates it, and topologyPatch
// changes its data in place.
func (b *clusterBuilder) topology() (pulumi.Resource, error) {
	return corev1.NewConfigMap(b.ctx, b.names.topology, &corev1.ConfigMapArgs{
		Metadata: b.meta(b.names.topology, b.labels(componentRedis)),
		Data:     b.topologyData(),
	}, append(b.opts, pulumi.IgnoreChanges([]string{"data"}))...)
}

// topologyPatch holds the topology ConfigMap's data at the args' shape, with a server-side apply
// patch, after dependsOn (the drain Job, which reads the running shape first).
func (b *clusterBuilder) topologyPatch(dependsOn ...pulumi.Resource) (pulumi.Resource, error) {
	return corev1.NewConfigMapPatch(b.ctx, b.names.topology, &corev1.ConfigMapPatchArgs{
		Metadata: &metav1.ObjectMetaPatchArgs{
			Name: pulumi.String(b.names.topology), Namespace: pulumi.String(b.args.Namespace),
			// The ConfigMap resource created the data and owns it as a field manager: without
			// force the API server refuses the new values as a conflict.
			Annotations: pulumi.StringMap{"pulumi.com/patchForce": pulumi.String("true")},
		},
		Data: b.topologyData(),
	}, append(b.opts, pulumi.DependsOn(dependsOn))...)
}

func (b *clusterBuilder) topologyData() pulumi.StringMap {
	return pulumi.StringMap{
		"shards":             pulumi.String(strconv.Itoa(b.args.Shards)),
		"replicas-per-shard": pulumi.String(strconv.Itoa(b.args.ReplicasPerShard)),
	}
}

func (b *clusterBuilder) statefulSet(dependsOn ...pulumi.Resource) (pulumi.Resource, error) {
	a := b.args
	redis := corev1.ContainerArgs{
		Name:    pulumi.String("redis"),
		Image:   a.RedisImage,
		Command: scriptCommand("cluster-start.sh"),
		Ports: corev1.ContainerPortArray{
			containerPort("redis", RedisPort),
			containerPort("bus", BusPort),
		},
		Env: b.podEnv(
			envVar("REDIS_PORT", strconv.Itoa(RedisPort)),
			envVar("BUS_PORT", strconv.Itoa(BusPort)),
			envVar("TOPOLOGY_DIR", topologyDir),
		),
		Resources:       resources(a.RedisCPU, a.RedisMemory, a.RedisMemory),
		StartupProbe:    execProbe("cluster-probe.sh", "alive", 5, 30),
		LivenessProbe:   execProbe("cluster-probe.sh", "alive", 10, 3),
		ReadinessProbe:  execProbe("cluster-probe.sh", "ready", 5, 2),
		Lifecycle:       preStop("cluster-prestop.sh"),
		SecurityContext: restrictedContainer(),
		VolumeMounts:    append(b.podMounts(true), topologyMount()),
	}
	return b.redisStatefulSet(a.Pods(), corev1.ContainerArray{redis}, corev1.VolumeArray{b.topologyVolume()}, dependsOn...)
}

// topologyVolume mounts the topology ConfigMap.
func (b *clusterBuilder) topologyVolume() corev1.VolumeArgs {
	return corev1.VolumeArgs{
		Name:      pulumi.String(volumeTopology),
		ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(b.names.topology)},
	}
}

// topologyMount is where the containers read the topology.
func topologyMount() corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(volumeTopology), MountPath: pulumi.String(topologyDir), ReadOnly: pulumi.Bool(true)}
}

// The modes of cluster-reshard.sh, and the Jobs that run them.
const (
	reshardDrain = "drain"
	reshardFill  = "fill"
)

// Bounds of a resharding Job: how long it waits for a healthy cluster, per attempt, and how long
// Pulumi waits for it (moving the slots of a large dataset takes a while).
const (
	reshardHealthyWaitSeconds = 600
	reshardTimeout            = "60m"
)

// reshardJob registers the Job that runs cluster-reshard.sh in mode after dependsOn (job).
func (b *clusterBuilder) reshardJob(mode string, dependsOn ...pulumi.Resource) (pulumi.Resource, error) {
	a := b.args
	return b.job(jobSpec{
		name: b.names.base + "-" + mode, component: componentReshard, script: "cluster-reshard.sh", args: []string{mode},
		env: corev1.EnvVarArray{
			envVar("SHARDS", strconv.Itoa(a.Shards)),
			envVar("REPLICAS_PER_SHARD", strconv.Itoa(a.ReplicasPerShard)),
			envVar("HEALTHY_WAIT_SECONDS", strconv.Itoa(reshardHealthyWaitSeconds)),
			envVar("TOPOLOGY_DIR", topologyDir),
		},
		volumes: corev1.VolumeArray{b.topologyVolume()},
		mounts:  corev1.VolumeMountArray{topologyMount()},
		timeout: reshardTimeout,
	}, dependsOn)
}

// volumeTopology is the volume of the topology ConfigMap.
const volumeTopology = "topology"

// services registers the headless Service (stable pod DNS names, which the nodes announce) and
// the seed Service over the ready nodes.
func (b *clusterBuilder) services() error {
	if err := b.headlessService(servicePort("redis", RedisPort), servicePort("bus", BusPort)); err != nil {
		return err
	}
	return b.service(b.names.base, componentRedis, &corev1.ServiceSpecArgs{
		Type:     pulumi.String("ClusterIP"),
		Selector: b.selector(componentRedis),
		Ports:    corev1.ServicePortArray{servicePort("redis", RedisPort)},
	})
}

// policies registers the PodDisruptionBudget (one pod down at a time) and the NetworkPolicy: the
// client port from peers, the resharding and credentials Jobs and labelled clients, the bus port
// from peers only.
func (b *clusterBuilder) policies() error {
	if err := b.disruptionBudget(b.names.disruptionBudget, componentRedis); err != nil {
		return err
	}
	rules := networkingv1.NetworkPolicyIngressRuleArray{
		networkingv1.NetworkPolicyIngressRuleArgs{
			From: networkingv1.NetworkPolicyPeerArray{
				podsPeer(b.selector(componentRedis)), podsPeer(b.selector(componentReshard)), podsPeer(b.selector(componentCredentials)), b.clientsPeer(),
			},
			Ports: policyPorts(RedisPort),
		},
		networkingv1.NetworkPolicyIngressRuleArgs{
			From:  networkingv1.NetworkPolicyPeerArray{podsPeer(b.selector(componentRedis))},
			Ports: policyPorts(BusPort),
		},
	}
	if rule := b.scraperRule(); rule != nil {
		rules = append(rules, rule)
	}
	return b.networkPolicy(b.names.networkPolicy, componentRedis, rules)
}
