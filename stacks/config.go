package stacks

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/d3ad221e/redis-sentinel/components"
)

// Config is the stack configuration: one key per field, declared with its type, description and
// default in Pulumi.yaml. A key that is present but malformed is an error, never replaced by a
// default. Only the keys of the stack's own cloud are read and checked.
type Config struct {
	Name            string
	Namespace       string
	CreateNamespace bool
	Password        string
	// PreviousPassword is accepted too while a rotation is under way; MonitorPassword is the
	// user monitor's (components.ReleaseArgs). Empty: none, and a generated one.
	PreviousPassword, MonitorPassword string
	// Topology chooses the kind of release: TopologySentinel (Release) or TopologyCluster
	// (Release's shared arguments, and Cluster's shape).
	Topology     string
	Release      components.RedisSentinelArgs
	Cluster      components.RedisClusterArgs
	RedisImage   string
	HAProxyImage string
	MetricsImage string
	// Kubeconfig of an existing cluster (cloud none or aks); empty uses the ambient one.
	// KubeconfigCluster is the name of the cluster its current context uses.
	Kubeconfig, KubeconfigCluster string
	// AllowPublicControlPlane is the explicit opt-in to a cluster API reachable from 0.0.0.0/0.
	AllowPublicControlPlane bool
	GKE                     GKEConfig
	EKS                     EKSConfig
}

// Defaults of the keys that only the stack has; Pulumi.yaml declares the same values (a test
// holds the two together). Keys of the release default to components.DefaultArgs; the cloud
// keys have their defaults in Pulumi.yaml alone.
const (
	DefaultName            = "redis"
	DefaultNamespace       = "redis"
	DefaultCreateNamespace = true
)

// reader reads typed config keys and collects every problem, so that all are reported at once.
type reader struct {
	ctx  *pulumi.Context
	errs []error
}

func (r *reader) fail(key string, value any, allowed string) {
	r.errs = append(r.errs, &components.FieldError{Field: key, Value: value, Allowed: allowed})
}

// string reads a key whose empty value means something (no password, the default class, ...).
func (r *reader) string(key string, out *string) {
	if v, err := config.Try(r.ctx, key); err == nil {
		*out = v
	}
}

// nonEmpty reads a key that has no meaning when empty: "" is refused, not read as "default".
func (r *reader) nonEmpty(key string, out *string) {
	v, err := config.Try(r.ctx, key)
	if err != nil {
		return
	}
	if v == "" {
		r.fail(key, v, "a value (leave the key out for the default)")
		return
	}
	*out = v
}

// positiveInt reads a whole number of at least 1. Zero is refused rather than read as "default":
// a user who writes 0 means something, and it is not the default.
func (r *reader) positiveInt(key string, out *int) {
	r.int(key, out, 1, "a whole number of at least 1 (leave the key out for the default)")
}

func (r *reader) int(key string, out *int, min int, allowed string) {
	v, err := config.Try(r.ctx, key)
	if err != nil {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		r.fail(key, v, allowed)
		return
	}
	*out = n
}

func (r *reader) bool(key string, out *bool) {
	v, err := config.Try(r.ctx, key)
	if err != nil {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(key, v, "true or false")
		return
	}
	*out = b
}

func (r *reader) object(key string, out any, allowed string) {
	err := config.TryObject(r.ctx, key, out)
	if err != nil && !errors.Is(err, config.ErrMissingVar) {
		v, _ := config.Try(r.ctx, key)
		r.fail(key, v, allowed)
	}
}

func (r *reader) strings(key string, out *[]string) {
	r.object(key, out, `a list of strings such as ["a", "b"]`)
}

// match fails key unless value matches pattern.
func (r *reader) match(key, value string, pattern *regexp.Regexp, allowed string) {
	if !pattern.MatchString(value) {
		r.fail(key, value, allowed)
	}
}

// cidrs checks a list of IPv4 client ranges of a control plane. The whole internet is refused
// unless allowEverything.
func (r *reader) cidrs(key string, list []string, allowEverything bool, optIn string) {
	r.errs = append(r.errs, components.CheckCIDRs(key, list, true, allowEverything, optIn)...)
}

// room is how many nodes the release needs, and why.
type room struct {
	nodes int
	why   string
}

// nodesNeeded is the least number of nodes that the release's pods need while each must have a
// node of its own: one per redis pod, and for a Sentinel release one per HAProxy pod plus one,
// since a rolling update of the Deployment starts a new pod before it stops an old one (a
// StatefulSet stops a pod before it starts its successor). Zero when pods may share nodes.
func nodesNeeded(c *Config) room {
	if c.Release.ShareNodes {
		return room{}
	}
	if c.Topology == TopologyCluster {
		a := c.Cluster.WithDefaults(c.Name)
		return room{
			nodes: a.Pods(),
			why: fmt.Sprintf("while spreadAcrossNodes is true, each of the shards (%d) x (1 + replicasPerShard (%d)) = %d redis pods needs a node of its own; or set spreadAcrossNodes: false",
				a.Shards, a.ReplicasPerShard, a.Pods()),
		}
	}
	a := c.Release.WithDefaults(c.Name)
	return room{
		nodes: max(a.Replicas, a.HAProxyReplicas+1),
		why: fmt.Sprintf("while spreadAcrossNodes is true, each of the replicas (%d) redis pods, and each of the haproxyReplicas (%d) HAProxy pods and one more for a rolling update, needs a node of its own; or set spreadAcrossNodes: false",
			a.Replicas, a.HAProxyReplicas),
	}
}

// addNetworks appends to the configured cluster networks those that the stack creates for the
// cluster and so knows itself, each once.
func addNetworks(configured, created []string) []string {
	for _, n := range created {
		if !slices.Contains(configured, n) {
			configured = append(configured, n)
		}
	}
	return configured
}

var imagePattern = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

var passwordPattern = regexp.MustCompile(`^[!#-&(-\[\]-~]{16,512}$`)

// LoadConfig reads and validates the stack configuration. It returns every problem at once, and
// registers nothing.
func LoadConfig(ctx *pulumi.Context) (*Config, error) {
	c := &Config{
		Name:            DefaultName,
		Namespace:       DefaultNamespace,
		CreateNamespace: DefaultCreateNamespace,
		HAProxyImage:    components.DefaultHAProxyImage,
		MetricsImage:    components.DefaultMetricsImage,
		Topology:        TopologySentinel,
	}
	rel := &c.Release
	cloud := string(components.CloudNone)
	engine := string(components.EngineRedis)
	r := &reader{ctx: ctx}
	r.nonEmpty("name", &c.Name)
	r.nonEmpty("namespace", &c.Namespace)
	r.bool("createNamespace", &c.CreateNamespace)
	r.nonEmpty("cloud", &cloud)
	r.nonEmpty("topology", &c.Topology)
	r.positiveInt("shards", &c.Cluster.Shards)
	r.positiveInt("replicasPerShard", &c.Cluster.ReplicasPerShard)
	r.positiveInt("clusterNodeTimeoutMilliseconds", &c.Cluster.NodeTimeoutMilliseconds)
	r.positiveInt("replicas", &rel.Replicas)
	r.int("quorum", &rel.Quorum, 0, "0 (a majority of the sentinels) or a whole number from a majority to replicas")
	r.nonEmpty("masterSetName", &rel.MasterSetName)
	r.nonEmpty("clusterDomain", &rel.ClusterDomain)
	r.nonEmpty("engine", &engine)
	r.string("redisImage", &c.RedisImage) // empty: the engine's pinned image
	r.nonEmpty("haproxyImage", &c.HAProxyImage)
	r.string("password", &c.Password)
	r.string("previousPassword", &c.PreviousPassword)
	r.string("monitorPassword", &c.MonitorPassword)
	r.bool("ephemeral", &rel.Ephemeral)
	r.nonEmpty("storageSize", &rel.StorageSize)
	r.string("storageClass", &rel.StorageClass)
	r.nonEmpty("redisCPU", &rel.RedisCPU)
	r.nonEmpty("redisMemory", &rel.RedisMemory)
	r.positiveInt("downAfterMilliseconds", &rel.DownAfterMilliseconds)
	r.positiveInt("failoverTimeoutMilliseconds", &rel.FailoverTimeoutMilliseconds)
	r.positiveInt("minReplicasMaxLagSeconds", &rel.MinReplicasMaxLagSeconds)
	r.positiveInt("haproxyReplicas", &rel.HAProxyReplicas)
	spread := true
	r.bool("spreadAcrossNodes", &spread)
	rel.ShareNodes = !spread
	r.bool("loadBalancer", &rel.LoadBalancer)
	r.object("loadBalancerSourceRanges", &rel.LoadBalancerSourceRanges, `a list of CIDRs such as ["10.0.0.0/8"]`)
	r.bool("publicLoadBalancer", &rel.PublicLoadBalancer)
	r.object("clusterNetworks", &rel.ClusterNetworks, `a list of CIDRs such as ["10.244.0.0/16"]`)
	r.object("clientLabels", &rel.ClientLabels, `a map of label keys to values such as {"redis-client": "true"}`)
	metrics := true
	r.bool("metrics", &metrics)
	rel.DisableMetrics = !metrics
	r.nonEmpty("metricsImage", &c.MetricsImage)
	r.bool("serviceMonitor", &rel.ServiceMonitor)
	r.object("metricsScraperNamespaceLabels", &rel.MetricsScraperNamespaceLabels, `a map of namespace label keys to values such as {"kubernetes.io/metadata.name": "monitoring"}, or {} for every namespace`)
	r.object("metricsScraperPodLabels", &rel.MetricsScraperPodLabels, `a map of pod label keys to values such as {"app.kubernetes.io/name": "prometheus"}, or {} for every pod`)
	r.bool("tls", &rel.TLS.Enabled)
	r.string("tlsSecretName", &rel.TLS.SecretName)
	r.string("tlsIssuerName", &rel.TLS.IssuerName)
	r.string("tlsIssuerKind", &rel.TLS.IssuerKind)
	r.strings("tlsDnsNames", &rel.TLS.DNSNames)
	r.string("kubeconfig", &c.Kubeconfig)
	r.bool("allowPublicControlPlane", &c.AllowPublicControlPlane)

	checkTopologyKeys(r, c, rel.ClusterNetworks)
	rel.Cloud = components.Cloud(cloud)
	rel.Engine = components.Engine(engine)
	if c.RedisImage == "" {
		c.RedisImage = rel.Engine.DefaultImage()
	}
	rel.Namespace = c.Namespace
	rel.CreateNamespace = c.CreateNamespace
	c.Cluster.ReleaseArgs = rel.ReleaseArgs
	need := nodesNeeded(c)
	switch rel.Cloud {
	case components.CloudGKE:
		c.GKE = readGKEConfig(r, c.Name, c.AllowPublicControlPlane)
		rel.ClusterNetworks = addNetworks(rel.ClusterNetworks, c.GKE.createdNetworks())
		c.GKE.checkRoom(r, need)
	case components.CloudEKS:
		c.EKS = readEKSConfig(r, c.AllowPublicControlPlane)
		rel.AWSInTreeLoadBalancer = !c.EKS.LoadBalancerController
		rel.ClusterNetworks = addNetworks(rel.ClusterNetworks, c.EKS.createdNetworks())
		c.EKS.checkRoom(r, need)
	}
	if c.Kubeconfig != "" && rel.Cloud != components.CloudNone && rel.Cloud != components.CloudAKS {
		r.fail("kubeconfig", "(a secret)", fmt.Sprintf("empty for cloud %s, whose stack creates the cluster; a kubeconfig is for cloud none or aks", rel.Cloud))
	} else if c.Kubeconfig != "" {
		if c.KubeconfigCluster = currentCluster(c.Kubeconfig); c.KubeconfigCluster == "" {
			r.fail("kubeconfig", "(a secret)", "a kubeconfig whose current-context names one of its clusters")
		}
	}
	for key, image := range map[string]string{"redisImage": c.RedisImage, "haproxyImage": c.HAProxyImage, "metricsImage": c.MetricsImage} {
		r.match(key, image, imagePattern, "an image reference such as "+components.DefaultRedisImage)
	}
	for key, password := range map[string]string{"password": c.Password, "previousPassword": c.PreviousPassword, "monitorPassword": c.MonitorPassword} {
		if password != "" && !passwordPattern.MatchString(password) {
			// The value itself is secret: name only what is wrong with it.
			r.fail(key, fmt.Sprintf("(a secret of %d characters)", len(password)),
				`16 to 512 printable ASCII characters without spaces, quotes or backslashes, or none`)
		}
	}
	switch {
	case c.PreviousPassword != "" && c.Password == "":
		r.fail("previousPassword", "(a secret)", "only with password set: a rotation goes from previousPassword to password")
	case c.PreviousPassword != "" && c.PreviousPassword == c.Password:
		r.fail("previousPassword", "(the same secret as password)", "the password that password replaces, or none")
	case c.MonitorPassword != "" && (c.MonitorPassword == c.Password || c.MonitorPassword == c.PreviousPassword):
		r.fail("monitorPassword", "(the same secret as a client password)", "a password of its own, so that the clients' password never reaches HAProxy or the exporter")
	}
	switch c.Topology {
	case TopologySentinel:
		if err := rel.WithDefaults(c.Name).Validate(c.Name); err != nil {
			r.errs = append(r.errs, err)
		}
	case TopologyCluster:
		// The stack's own check: a RedisCluster has no cloud, which the sentinel's Validate checks.
		if !slices.Contains(components.Clouds, rel.Cloud) {
			r.fail("cloud", cloud, fmt.Sprintf("one of %v", components.Clouds))
		}
		if err := c.Cluster.WithDefaults(c.Name).Validate(c.Name); err != nil {
			r.errs = append(r.errs, err)
		}
	default:
		r.fail("topology", c.Topology, fmt.Sprintf("%s (one master, Sentinel, HAProxy) or %s (sharded Redis Cluster)", TopologySentinel, TopologyCluster))
	}
	if err := errors.Join(r.errs...); err != nil {
		return nil, fmt.Errorf("invalid configuration of stack %q:\n%w", ctx.Stack(), err)
	}
	return c, nil
}
