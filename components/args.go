package components

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Cloud names where the cluster runs. It decides which annotations make the
// LoadBalancer Service internal.
type Cloud string

const (
	CloudNone Cloud = "none"
	CloudGKE  Cloud = "gke"
	CloudEKS  Cloud = "eks"
	CloudAKS  Cloud = "aks"
)

// Clouds lists every accepted Cloud value, in the order error messages show them.
var Clouds = []Cloud{CloudNone, CloudGKE, CloudEKS, CloudAKS}

// ReleaseArgs are the arguments that RedisSentinel and RedisCluster share: where the release
// lives, its images, password, storage and resources, its clients and its metrics. Both argument
// types embed it, and both components build these parts with the same code.
//
// Plain Go fields decide which resources exist and what the rendered configuration says; they are
// validated before anything is registered. A zero value means "use the default"; a negative or
// otherwise malformed value is an error, never replaced by a default. Pulumi inputs (images,
// password) only flow through into the resources.
type ReleaseArgs struct {
	// Namespace the release lives in. It is part of every pod's DNS name.
	Namespace string
	// CreateNamespace registers the namespace, labelled to enforce the "restricted" Pod Security Standard.
	CreateNamespace bool
	// ClusterDomain is the cluster's DNS suffix, used in the pods' fully qualified names.
	ClusterDomain string

	// Engine is the server: EngineRedis (the default) or EngineValkey.
	Engine Engine
	// RedisImage is the server's image, DefaultRedisImage or DefaultValkeyImage by default. It
	// must provide the engine's server and cli (redis-server and redis-cli, or valkey-server and
	// valkey-cli), sh, awk, sed and timeout (the official Debian and Alpine images do).
	RedisImage pulumi.StringInput
	// Password is the clients' password, of redis and, in a RedisSentinel, of the sentinels.
	// When nil, a random one is generated. Give it as a secret (pulumi.ToSecret); it is only ever
	// stored in the Secret. It must contain no whitespace, quotes or backslashes.
	Password pulumi.StringInput
	// PreviousPassword, while set, is accepted too: the first step of a rotation sets Password
	// to the new password and PreviousPassword to the old one; once every client uses the new
	// one, the second step removes PreviousPassword. Neither step restarts a pod (README:
	// rotating the password).
	PreviousPassword pulumi.StringInput
	// MonitorPassword is the password of the user "monitor", which HAProxy's health checks and
	// the exporter log in as: it may only read the servers' state, and the clients' password
	// never reaches them. When nil, a random one is generated. Same rules as Password.
	MonitorPassword pulumi.StringInput

	// Ephemeral keeps data in an emptyDir instead of a PersistentVolumeClaim with AOF: a pure cache.
	Ephemeral bool
	// StorageSize is the PVC size (a Kubernetes quantity); StorageClass the PVC's class ("" = cluster default).
	StorageSize  string
	StorageClass string
	// RedisCPU and RedisMemory are the redis container's requests; the memory is also its limit.
	RedisCPU    string
	RedisMemory string
	// MinReplicasMaxLagSeconds: a master refuses writes when no replica has acknowledged within
	// this many seconds, which bounds what a cut-off master can accept and then lose.
	MinReplicasMaxLagSeconds int

	// ShareNodes lets pods of one component share a node when there are fewer nodes than pods,
	// such as a single node for development. By default every redis pod (and every HAProxy pod)
	// needs a node of its own (required pod anti-affinity), and waits Pending for one.
	ShareNodes bool
	// ClientLabels are the pod labels (in any namespace) that the NetworkPolicy lets reach redis
	// (and the sentinels and HAProxy of a RedisSentinel).
	ClientLabels map[string]string

	// DisableMetrics leaves out the redis_exporter sidecar and its port; by default every redis pod
	// runs one. MetricsImage must provide /redis_exporter, v1.83.0 or later.
	DisableMetrics bool
	MetricsImage   pulumi.StringInput
	// ServiceMonitor registers a Prometheus Operator ServiceMonitor for the exporters. Set it only
	// where the monitoring.coreos.com/v1 CRDs are installed: without them the creation fails.
	ServiceMonitor bool
	// MetricsScraperNamespaceLabels and MetricsScraperPodLabels select the pods (Prometheus) that the
	// NetworkPolicy lets reach the metrics port, and only that port. Nil takes the default
	// (namespace "monitoring", pods labelled app.kubernetes.io/name=prometheus); an empty map
	// matches every namespace, or every pod of the selected namespaces. Not both may be empty.
	MetricsScraperNamespaceLabels map[string]string
	MetricsScraperPodLabels       map[string]string

	// TLS encrypts every connection of the release (TLSArgs). A running release cannot turn it
	// on or off (CheckChange): every client and peer would have to switch at the same moment.
	TLS TLSArgs
}

// RedisSentinelArgs configures a RedisSentinel: the shared ReleaseArgs, and what only a release
// with Sentinel has. A zero value means "use the default" (see DefaultArgs).
type RedisSentinelArgs struct {
	ReleaseArgs

	// Cloud decides the LoadBalancer annotations: none, gke, eks or aks.
	Cloud Cloud
	// Replicas is the number of pods, each running one redis and one sentinel: odd, at least 3.
	Replicas int
	// Quorum is the number of sentinels that must agree the master is down. Default: a majority.
	Quorum int
	// MasterSetName is the name sentinels know the master by (SENTINEL get-master-addr-by-name).
	MasterSetName string

	// HAProxyImage must provide haproxy 2.x.
	HAProxyImage pulumi.StringInput

	// DownAfterMilliseconds is how long a master may be unreachable before sentinels fail over.
	DownAfterMilliseconds int
	// FailoverTimeoutMilliseconds bounds a failover attempt (sentinel failover-timeout).
	FailoverTimeoutMilliseconds int

	// HAProxyReplicas is the number of HAProxy pods behind the single master endpoint.
	HAProxyReplicas int
	// LoadBalancer puts a LoadBalancer Service in front of HAProxy. It is internal for gke, eks and
	// aks; any other cloud needs PublicLoadBalancer, an explicit opt-in to a public address.
	LoadBalancer bool
	// LoadBalancerSourceRanges are the client CIDRs the load balancer and the NetworkPolicy admit;
	// at least one with LoadBalancer (0.0.0.0/0, for everyone, only with PublicLoadBalancer).
	LoadBalancerSourceRanges []string
	// ClusterNetworks are the address ranges of the cluster's own pods and nodes; needed with
	// LoadBalancer. The NetworkPolicy admits the load balancer's clients by address, and leaves
	// these out of LoadBalancerSourceRanges (ipBlock except), so that no pod or node of the cluster
	// passes for a client outside it. Where pods get addresses of the network's subnets (the AWS
	// VPC CNI, Azure CNI), those subnets are the pods' ranges.
	ClusterNetworks []string
	// PublicLoadBalancer accepts a LoadBalancer without internal annotations.
	PublicLoadBalancer bool
	// AWSInTreeLoadBalancer (cloud eks only) uses the annotations of Kubernetes' in-tree AWS
	// cloud provider instead of those of the AWS Load Balancer Controller: set it when the
	// cluster has no such controller, which the default EKS annotations need to take effect.
	AWSInTreeLoadBalancer bool
}

// defaultRelease returns the value every zero field of ReleaseArgs takes. ClientLabels is left
// nil: its default needs the component's name (withDefaults).
func defaultRelease() ReleaseArgs {
	return ReleaseArgs{
		Namespace:                "default",
		ClusterDomain:            "cluster.local",
		Engine:                   EngineRedis,
		RedisImage:               pulumi.String(DefaultRedisImage),
		StorageSize:              "8Gi",
		RedisCPU:                 "100m",
		RedisMemory:              "512Mi",
		MinReplicasMaxLagSeconds: 2,
		MetricsImage:             pulumi.String(DefaultMetricsImage),
		// kubernetes.io/metadata.name is set on every namespace by Kubernetes itself (1.22+).
		MetricsScraperNamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"},
		// The label of the Prometheus pods of the Prometheus Operator and of the community chart.
		MetricsScraperPodLabels: map[string]string{"app.kubernetes.io/name": "prometheus"},
	}
}

// withDefaults returns a copy of r in which every zero field holds its default.
// ClientLabels defaults to {"<name>-client": "true"}, so it needs the component's name.
func (r ReleaseArgs) withDefaults(name string) ReleaseArgs {
	d := defaultRelease()
	setDefault(&r.Namespace, d.Namespace)
	setDefault(&r.ClusterDomain, d.ClusterDomain)
	setDefault(&r.Engine, d.Engine)
	// The image's default follows the engine.
	setDefault(&r.RedisImage, pulumi.StringInput(pulumi.String(r.Engine.DefaultImage())))
	setDefault(&r.StorageSize, d.StorageSize)
	setDefault(&r.RedisCPU, d.RedisCPU)
	setDefault(&r.RedisMemory, d.RedisMemory)
	setDefault(&r.MinReplicasMaxLagSeconds, d.MinReplicasMaxLagSeconds)
	setDefault(&r.MetricsImage, d.MetricsImage)
	if r.ClientLabels == nil {
		r.ClientLabels = map[string]string{name + "-client": "true"}
	}
	if r.MetricsScraperNamespaceLabels == nil {
		r.MetricsScraperNamespaceLabels = d.MetricsScraperNamespaceLabels
	}
	if r.MetricsScraperPodLabels == nil {
		r.MetricsScraperPodLabels = d.MetricsScraperPodLabels
	}
	r.TLS = r.TLS.withDefaults()
	return r
}

// DefaultArgs returns the value every zero field of RedisSentinelArgs takes. Quorum is left zero:
// its default depends on Replicas (a majority), see WithDefaults.
func DefaultArgs() RedisSentinelArgs {
	return RedisSentinelArgs{
		ReleaseArgs:                 defaultRelease(),
		Cloud:                       CloudNone,
		Replicas:                    3,
		MasterSetName:               "mymaster",
		HAProxyImage:                pulumi.String(DefaultHAProxyImage),
		DownAfterMilliseconds:       5000,
		FailoverTimeoutMilliseconds: 10000,
		HAProxyReplicas:             2,
	}
}

// WithDefaults returns a copy of a in which every zero field holds its default.
func (a RedisSentinelArgs) WithDefaults(name string) RedisSentinelArgs {
	d := DefaultArgs()
	a.ReleaseArgs = a.ReleaseArgs.withDefaults(name)
	setDefault(&a.Cloud, d.Cloud)
	setDefault(&a.Replicas, d.Replicas)
	setDefault(&a.MasterSetName, d.MasterSetName)
	setDefault(&a.HAProxyImage, d.HAProxyImage)
	setDefault(&a.DownAfterMilliseconds, d.DownAfterMilliseconds)
	setDefault(&a.FailoverTimeoutMilliseconds, d.FailoverTimeoutMilliseconds)
	setDefault(&a.HAProxyReplicas, d.HAProxyReplicas)
	setDefault(&a.Quorum, a.Replicas/2+1)
	return a
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// FieldError says that one argument is invalid: which field, the value given, and what is allowed.
type FieldError struct {
	Field   string
	Value   any
	Allowed string
}

func (e *FieldError) Error() string {
	value := fmt.Sprintf("%v", e.Value)
	if s, ok := e.Value.(string); ok {
		value = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%s: %s is not allowed: %s", e.Field, value, e.Allowed)
}

// maxNameLength keeps every derived name a valid DNS label: the StatefulSet's
// controller-revision-hash label is "<name>-<10 characters>" and must fit in 63.
const maxNameLength = 52

var masterSetNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate reports every problem of the component name and the (defaulted) args at once.
// Field names are those of the stack configuration keys, which mirror the Go fields.
func (a RedisSentinelArgs) Validate(name string) error {
	var errs []error
	fail := func(field string, value any, allowed string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Allowed: allowed})
	}
	a.ReleaseArgs.validate(name, fail)
	if !slices.Contains(Clouds, a.Cloud) {
		fail("cloud", string(a.Cloud), fmt.Sprintf("one of %v", Clouds))
	}
	if a.Replicas < 3 || a.Replicas%2 == 0 {
		fail("replicas", a.Replicas, "an odd number of at least 3, so that a majority of sentinels survives the loss of a pod")
	} else if a.Quorum <= a.Replicas/2 || a.Quorum > a.Replicas {
		fail("quorum", a.Quorum, fmt.Sprintf("a majority of the %d sentinels: from %d to %d", a.Replicas, a.Replicas/2+1, a.Replicas))
	}
	if !masterSetNamePattern.MatchString(a.MasterSetName) {
		fail("masterSetName", a.MasterSetName, "1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	if a.DownAfterMilliseconds < 2000 || a.DownAfterMilliseconds > 600000 {
		fail("downAfterMilliseconds", a.DownAfterMilliseconds, "from 2000 to 600000; below 2000 sentinels mark a master down falsely while it starts")
	}
	if a.FailoverTimeoutMilliseconds < a.DownAfterMilliseconds || a.FailoverTimeoutMilliseconds > 3600000 {
		fail("failoverTimeoutMilliseconds", a.FailoverTimeoutMilliseconds, fmt.Sprintf("from downAfterMilliseconds (%d) to 3600000", a.DownAfterMilliseconds))
	}
	if a.HAProxyReplicas < 1 || a.HAProxyReplicas > 20 {
		fail("haproxyReplicas", a.HAProxyReplicas, "from 1 to 20")
	}
	errs = append(errs, CheckCIDRs("clusterNetworks", a.ClusterNetworks, false, true, "")...)
	errs = append(errs, a.validateLoadBalancer(fail)...)
	return errors.Join(errs...)
}

// validate reports through fail every problem of the component name and the shared args.
func (r ReleaseArgs) validate(name string, fail func(field string, value any, allowed string)) {
	if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 || len(name) > maxNameLength {
		fail("name", name, fmt.Sprintf("a lowercase DNS label of at most %d characters (a-z, 0-9, '-', starting with a letter)", maxNameLength))
	}
	if !slices.Contains(Engines, r.Engine) {
		fail("engine", string(r.Engine), fmt.Sprintf("one of %v", Engines))
	}
	if msgs := validation.IsDNS1123Label(r.Namespace); len(msgs) > 0 {
		fail("namespace", r.Namespace, "a lowercase DNS label of at most 63 characters (a-z, 0-9, '-')")
	}
	if msgs := validation.IsDNS1123Subdomain(r.ClusterDomain); len(msgs) > 0 {
		fail("clusterDomain", r.ClusterDomain, "a DNS domain such as cluster.local")
	}
	checkQuantity := func(field, value string) {
		q, err := resource.ParseQuantity(value)
		if err != nil || q.Sign() <= 0 {
			fail(field, value, "a positive Kubernetes quantity such as 8Gi, 512Mi or 250m")
		}
	}
	checkQuantity("storageSize", r.StorageSize)
	checkQuantity("redisCPU", r.RedisCPU)
	checkQuantity("redisMemory", r.RedisMemory)
	if r.StorageClass != "" && len(validation.IsDNS1123Subdomain(r.StorageClass)) > 0 {
		fail("storageClass", r.StorageClass, "empty (the cluster's default class) or a StorageClass name")
	}
	if r.Ephemeral && r.StorageClass != "" {
		fail("storageClass", r.StorageClass, "empty when ephemeral is true: there is no volume claim")
	}
	if r.MinReplicasMaxLagSeconds < 1 || r.MinReplicasMaxLagSeconds > 60 {
		fail("minReplicasMaxLagSeconds", r.MinReplicasMaxLagSeconds, "from 1 to 60 seconds")
	}
	if len(r.ClientLabels) == 0 {
		fail("clientLabels", r.ClientLabels, "at least one label, which the NetworkPolicy requires of client pods")
	}
	checkLabels := func(field string, labels map[string]string) {
		for _, key := range sortedKeys(labels) {
			if len(validation.IsQualifiedName(key)) > 0 || len(validation.IsValidLabelValue(labels[key])) > 0 {
				fail(field, key+"="+labels[key], "Kubernetes label keys and values (such as app.example.com/redis-client=true)")
			}
		}
	}
	checkLabels("clientLabels", r.ClientLabels)
	checkLabels("metricsScraperNamespaceLabels", r.MetricsScraperNamespaceLabels)
	checkLabels("metricsScraperPodLabels", r.MetricsScraperPodLabels)
	if len(r.MetricsScraperNamespaceLabels) == 0 && len(r.MetricsScraperPodLabels) == 0 {
		fail("metricsScraperPodLabels", r.MetricsScraperPodLabels,
			"at least one label here or in metricsScraperNamespaceLabels: with both empty every pod of the cluster could scrape the exporters")
	}
	if r.DisableMetrics && r.ServiceMonitor {
		fail("serviceMonitor", true, "true only together with metrics: true; there is nothing to scrape without the exporters")
	}
	r.TLS.validate(fail)
}

// validateLoadBalancer reports through fail, and returns the source ranges' own errors.
func (a RedisSentinelArgs) validateLoadBalancer(fail func(field string, value any, allowed string)) []error {
	if !a.LoadBalancer {
		if a.PublicLoadBalancer {
			fail("publicLoadBalancer", true, "true only together with loadBalancer: true")
		}
		if len(a.LoadBalancerSourceRanges) > 0 {
			fail("loadBalancerSourceRanges", a.LoadBalancerSourceRanges, "empty unless loadBalancer is true")
		}
		return nil
	}
	if a.AWSInTreeLoadBalancer && a.Cloud != CloudEKS {
		fail("awsInTreeLoadBalancer", true, fmt.Sprintf("true only with cloud eks, not %q", a.Cloud))
	}
	if _, internal := internalLoadBalancerAnnotations[a.Cloud]; !internal && !a.PublicLoadBalancer {
		fail("loadBalancer", true, fmt.Sprintf("false for cloud %q, which has no internal load balancer annotation; use gke, eks or aks, or set publicLoadBalancer: true to accept a public address", a.Cloud))
	}
	// Without ranges a load balancer admits every address that reaches it: the whole network for
	// an internal one, the internet for a public one. Nobody should get that by leaving a key out.
	if len(a.LoadBalancerSourceRanges) == 0 {
		fail("loadBalancerSourceRanges", a.LoadBalancerSourceRanges,
			`at least one client CIDR when loadBalancer is true, such as ["10.0.0.0/8"]; to admit every address, write ["0.0.0.0/0"] with publicLoadBalancer: true`)
	}
	if len(a.ClusterNetworks) == 0 {
		fail("clusterNetworks", a.ClusterNetworks,
			`the address ranges of the cluster's pods and nodes when loadBalancer is true, such as ["10.244.0.0/16", "192.168.1.0/24"]: the NetworkPolicy admits loadBalancerSourceRanges by address and leaves these out of them, so that no pod passes for an outside client`)
	}
	for i, source := range a.LoadBalancerSourceRanges {
		for _, own := range a.ClusterNetworks {
			if cidrInside(source, own) {
				fail(fmt.Sprintf("loadBalancerSourceRanges[%d]", i), source, fmt.Sprintf(
					"a range of clients outside the cluster; it lies inside clusterNetworks entry %s, whose pods reach HAProxy through its Service with the client labels, not by address", own))
			}
		}
	}
	return CheckCIDRs("loadBalancerSourceRanges", a.LoadBalancerSourceRanges, false, a.PublicLoadBalancer, "publicLoadBalancer")
}

// cidrInside says whether network inner lies within network outer (or is it); false when either
// is not a CIDR, which CheckCIDRs reports.
func cidrInside(inner, outer string) bool {
	_, in, errIn := net.ParseCIDR(inner)
	_, out, errOut := net.ParseCIDR(outer)
	if errIn != nil || errOut != nil {
		return false
	}
	innerOnes, innerBits := in.Mask.Size()
	outerOnes, outerBits := out.Mask.Size()
	return innerBits == outerBits && innerOnes >= outerOnes && out.Contains(in.IP)
}

// CheckCIDRs reports every entry of list (as field[i]) that is not a network in CIDR notation
// (IPv4 only when ipv4Only), or that is the whole address space while allowEverything is false;
// optIn names the key that allows it. The stacks check their control planes' ranges with it.
func CheckCIDRs(field string, list []string, ipv4Only, allowEverything bool, optIn string) []error {
	family := "a"
	if ipv4Only {
		family = "an IPv4"
	}
	var errs []error
	for i, cidr := range list {
		fail := func(allowed string) {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Value: cidr, Allowed: allowed})
		}
		ip, network, err := net.ParseCIDR(cidr)
		switch {
		case err != nil || (ipv4Only && ip.To4() == nil):
			fail(family + " network in CIDR notation such as 10.0.0.0/8")
		case !ip.Equal(network.IP):
			fail(fmt.Sprintf("a network address: %s", network))
		case isEverything(network) && !allowEverything:
			fail("a range narrower than the whole internet unless " + optIn + " is true")
		}
	}
	return errs
}

func isEverything(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
