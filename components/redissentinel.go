// Package components holds RedisSentinel, a Pulumi component that runs highly available Redis
// (replication + Sentinel) on Kubernetes with safe defaults.
package components

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
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

// builder carries what every child needs while NewRedisSentinel registers them.
type builder struct {
	ctx   *pulumi.Context
	args  RedisSentinelArgs
	names names
	opts  []pulumi.ResourceOption
	// What the pods read. They name these objects with plain strings, known in a preview, and
	// depend on the resources for the order of creation. A name taken from an output would be
	// unknown while its object is replaced, and with it the pod template, which makes the engine
	// replace the StatefulSet: every pod down at once.
	secret, redisConfig, haproxyConfig pulumi.Resource
	redisConfigName, haproxyConfigName string
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
	b := &builder{ctx: ctx, args: a, names: n, opts: []pulumi.ResourceOption{pulumi.Parent(c)}}

	if a.CreateNamespace {
		ns, err := corev1.NewNamespace(ctx, name+"-namespace", &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(a.Namespace),
				Labels: pulumi.StringMap{
					"pod-security.kubernetes.io/enforce": pulumi.String("restricted"),
					"pod-security.kubernetes.io/warn":    pulumi.String("restricted"),
				},
			},
		}, pulumi.Parent(c))
		if err != nil {
			return nil, err
		}
		b.opts = append(b.opts, pulumi.DependsOn([]pulumi.Resource{ns}))
	}

	if b.secret, err = b.newSecret(); err != nil {
		return nil, err
	}
	redisFiles, haproxyFiles := splitConfigFiles(files)
	b.redisConfigName = contentName(n.config, redisFiles)
	if b.redisConfig, err = b.configMap(n.config, b.redisConfigName, componentRedis, redisFiles); err != nil {
		return nil, err
	}
	b.haproxyConfigName = contentName(n.haproxyConfig, haproxyFiles)
	if b.haproxyConfig, err = b.configMap(n.haproxyConfig, b.haproxyConfigName, componentHAProxy, haproxyFiles); err != nil {
		return nil, err
	}
	if _, err := corev1.NewServiceAccount(ctx, n.serviceAccount, &corev1.ServiceAccountArgs{
		Metadata:                     b.meta(n.serviceAccount, b.labels(componentRedis)),
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, b.opts...); err != nil {
		return nil, err
	}
	if err := b.statefulSet(); err != nil {
		return nil, err
	}
	if err := b.haproxy(); err != nil {
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

	c.MasterEndpoint = pulumi.Sprintf("%s:%d", serviceHost(n.master, a), RedisPort)
	c.SentinelEndpoint = pulumi.Sprintf("%s:%d", serviceHost(n.sentinel, a), SentinelPort)
	c.MasterSetName = pulumi.String(a.MasterSetName).ToStringOutput()
	c.SecretName = pulumi.String(n.secret).ToStringOutput()
	c.Namespace = pulumi.String(a.Namespace).ToStringOutput()
	c.LoadBalancerAddress = lbAddress
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"masterEndpoint":      c.MasterEndpoint,
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

// configMap registers one of the release's ConfigMaps under its content-addressed name. Its
// Pulumi name is the fixed prefix: a new digest is a replacement of the same resource, which the
// engine does create-before-delete (the Kubernetes names differ), and it deletes the old object
// at the end of the update, once the pods have rolled onto the new one.
func (b *builder) configMap(resourceName, name, component string, files map[string]string) (pulumi.Resource, error) {
	return corev1.NewConfigMap(b.ctx, resourceName, &corev1.ConfigMapArgs{
		Metadata:  b.meta(name, b.labels(component)),
		Data:      pulumi.ToStringMap(files),
		Immutable: pulumi.Bool(true),
	}, b.opts...)
}

// newSecret registers the Secret with the password, generating one when none is given.
func (b *builder) newSecret() (pulumi.Resource, error) {
	password := b.args.Password
	if password == nil {
		generated, err := random.NewRandomPassword(b.ctx, b.names.base+"-password", &random.RandomPasswordArgs{
			Length: pulumi.Int(32),
			// Letters and digits only: HAProxy's health checks send the password in an inline
			// AUTH command, where a space or a quote would break it.
			Special: pulumi.Bool(false),
		}, b.opts...)
		if err != nil {
			return nil, err
		}
		password = generated.Result
	}
	return corev1.NewSecret(b.ctx, b.names.secret, &corev1.SecretArgs{
		Metadata:   b.meta(b.names.secret, b.labels(componentRedis)),
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{passwordKey: password},
	}, b.opts...)
}

// passwordKey is the key of the password in the Secret.
const passwordKey = "password"

// Values of the app.kubernetes.io/component label.
const (
	componentRedis   = "redis"
	componentHAProxy = "haproxy"
)

// selector selects the pods of one component of this release; it is also part of their labels.
func (b *builder) selector(component string) pulumi.StringMap {
	return pulumi.StringMap{
		"app.kubernetes.io/name":      pulumi.String("redis-sentinel"),
		"app.kubernetes.io/instance":  pulumi.String(b.names.base),
		"app.kubernetes.io/component": pulumi.String(component),
	}
}

// labels are the labels of every object of one component: the selector plus part-of and managed-by.
func (b *builder) labels(component string) pulumi.StringMap {
	labels := b.selector(component)
	labels["app.kubernetes.io/part-of"] = pulumi.String("redis-sentinel")
	labels["app.kubernetes.io/managed-by"] = pulumi.String("pulumi")
	return labels
}

func (b *builder) meta(name string, labels pulumi.StringMap) *metav1.ObjectMetaArgs {
	return &metav1.ObjectMetaArgs{
		Name:      pulumi.String(name),
		Namespace: pulumi.String(b.args.Namespace),
		Labels:    labels,
	}
}

// warnPublic tells the user, in the Pulumi output, that the load balancer they opted into is public.
func (b *builder) warnPublic(service pulumi.Resource) error {
	return b.ctx.Log.Warn(fmt.Sprintf(
		"%s: publicLoadBalancer is true: Service %s has no internal load balancer annotation and may get a public address",
		b.names.base, b.names.loadBalancer), &pulumi.LogArgs{Resource: service})
}
