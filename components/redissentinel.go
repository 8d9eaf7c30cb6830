// Package components holds RedisSentinel, a Pulumi component that runs highly available Redis
// (replication + Sentinel) on Kubernetes with safe defaults.
package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// TypeToken is the RedisSentinel component's Pulumi type.
const TypeToken = "redis-sentinel:index:RedisSentinel"

// RedisSentinel is a release of Redis with Sentinel: a StatefulSet whose pods each run a redis
// and a sentinel, Services for both, an HAProxy master endpoint and optionally an internal
// LoadBalancer.
type RedisSentinel struct {
	pulumi.ResourceState

	// MasterEndpoint is host:port of the HAProxy Service that always leads to the master.
	MasterEndpoint pulumi.StringOutput `pulumi:"masterEndpoint"`
	// ReadEndpoint is host:port of the same Service's read port: a replica in sync with the
	// master, or the master while none is (slightly stale reads).
	ReadEndpoint pulumi.StringOutput `pulumi:"readEndpoint"`
	// SentinelEndpoint is host:port of the sentinels, for Sentinel-aware clients.
	SentinelEndpoint pulumi.StringOutput `pulumi:"sentinelEndpoint"`
	// MasterSetName is the name to ask the sentinels for (SENTINEL get-master-addr-by-name).
	MasterSetName pulumi.StringOutput `pulumi:"masterSetName"`
	// SecretName is the Secret whose key "password" holds the password.
	SecretName pulumi.StringOutput `pulumi:"secretName"`
	// Namespace of every namespaced object of the release.
	Namespace pulumi.StringOutput `pulumi:"namespace"`
	// LoadBalancerAddress is the IP or hostname the cloud gave the LoadBalancer; empty without one.
	LoadBalancerAddress pulumi.StringOutput `pulumi:"loadBalancerAddress"`
}

// sentinelBuilder registers what only a RedisSentinel has: sentinels, HAProxy and the load balancer.
type sentinelBuilder struct {
	*builder
	args              RedisSentinelArgs
	haproxyConfig     pulumi.Resource
	haproxyConfigName string
}

// NewRedisSentinel validates args, then registers the component and its children. Invalid args
// are reported all at once, and then nothing is registered.
func NewRedisSentinel(ctx *pulumi.Context, name string, args *RedisSentinelArgs, opts ...pulumi.ResourceOption) (*RedisSentinel, error) {
	if args == nil {
		args = &RedisSentinelArgs{}
	}
	a := args.WithDefaults(name)
	if err := a.Validate(name); err != nil {
		return nil, err
	}
	n := newNames(name)
	files, err := renderConfigFiles(n, a)
	if err != nil {
		return nil, err
	}

	c := &RedisSentinel{}
	if err := ctx.RegisterComponentResource(TypeToken, name, c, opts...); err != nil {
		return nil, err
	}
	redisFiles, haproxyFiles := splitConfigFiles(files)
	common, err := newBuilder(ctx, c, n, appSentinel, a.ReleaseArgs, []string{n.headless, n.sentinel, n.master, n.loadBalancer}, redisFiles)
	if err != nil {
		return nil, err
	}
	b := &sentinelBuilder{builder: common, args: a}
	b.haproxyConfigName = contentName(n.haproxyConfig, haproxyFiles)
	if b.haproxyConfig, err = b.configMap(n.haproxyConfig, b.haproxyConfigName, componentHAProxy, haproxyFiles); err != nil {
		return nil, err
	}
	credentials, err := b.statefulSet()
	if err != nil {
		return nil, err
	}
	if err := b.haproxy(credentials); err != nil {
		return nil, err
	}
	if err := b.services(); err != nil {
		return nil, err
	}
	if err := b.serviceMonitor(); err != nil {
		return nil, err
	}
	lbAddress, err := b.loadBalancer()
	if err != nil {
		return nil, err
	}
	if err := b.policies(); err != nil {
		return nil, err
	}

	c.MasterEndpoint = pulumi.Sprintf("%s:%d", serviceHost(n.master, a.ReleaseArgs), RedisPort)
	c.ReadEndpoint = pulumi.Sprintf("%s:%d", serviceHost(n.master, a.ReleaseArgs), ReadPort)
	c.SentinelEndpoint = pulumi.Sprintf("%s:%d", serviceHost(n.sentinel, a.ReleaseArgs), SentinelPort)
	c.MasterSetName = pulumi.String(a.MasterSetName).ToStringOutput()
	c.SecretName = pulumi.String(n.secret).ToStringOutput()
	c.Namespace = pulumi.String(a.Namespace).ToStringOutput()
	c.LoadBalancerAddress = lbAddress
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"masterEndpoint":      c.MasterEndpoint,
		"readEndpoint":        c.ReadEndpoint,
		"sentinelEndpoint":    c.SentinelEndpoint,
		"masterSetName":       c.MasterSetName,
		"secretName":          c.SecretName,
		"namespace":           c.Namespace,
		"loadBalancerAddress": c.LoadBalancerAddress,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// warnPublic tells the user, in the Pulumi output, that the load balancer they opted into is public.
func (b *sentinelBuilder) warnPublic(service pulumi.Resource) error {
	return b.ctx.Log.Warn(fmt.Sprintf(
		"%s: publicLoadBalancer is true: Service %s has no internal load balancer annotation and may get a public address",
		b.names.base, b.names.loadBalancer), &pulumi.LogArgs{Resource: service})
}
