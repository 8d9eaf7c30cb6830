// Package stacks wires the program per environment: it reads and validates the stack's
// configuration, creates the cluster where the stack says so (gke, eks), creates the
// RedisSentinel release on it, and exports the outputs that other stacks read with a
// StackReference.
package stacks

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/d3ad221e/redis-sentinel/components"
)

// Run is the Pulumi program of every stack.
func Run(ctx *pulumi.Context) error {
	cfg, err := LoadConfig(ctx)
	if err != nil {
		return err
	}
	recorded := settingsOf(cfg)
	if err := checkChange(ctx, recorded); err != nil {
		return err
	}

	var c *cluster
	switch cfg.Release.Cloud {
	case components.CloudGKE:
		c, err = newGKECluster(ctx, cfg.Name, cfg.GKE)
	case components.CloudEKS:
		c, err = newEKSCluster(ctx, cfg.Name, cfg.EKS)
	default:
		c, err = existingCluster(ctx, cfg)
	}
	if err != nil {
		return err
	}

	shared := cfg.Release.ReleaseArgs
	shared.RedisImage = pulumi.String(cfg.RedisImage)
	shared.MetricsImage = pulumi.String(cfg.MetricsImage)
	for _, p := range []struct {
		value string
		input *pulumi.StringInput
	}{{cfg.Password, &shared.Password}, {cfg.PreviousPassword, &shared.PreviousPassword}, {cfg.MonitorPassword, &shared.MonitorPassword}} {
		if p.value != "" {
			*p.input = pulumi.ToSecret(pulumi.String(p.value)).(pulumi.StringOutput)
		}
	}
	var opts []pulumi.ResourceOption
	if c.provider != nil {
		opts = append(opts, pulumi.Providers(c.provider))
	}
	ctx.Export("clusterName", c.name)
	ctx.Export("kubeconfig", c.kubeconfig)
	if cfg.Topology == TopologyCluster {
		args := cfg.Cluster
		args.ReleaseArgs = shared
		release, err := components.NewRedisCluster(ctx, cfg.Name, &args, opts...)
		if err != nil {
			return err
		}
		ctx.Export("seedEndpoint", release.SeedEndpoint)
		ctx.Export("seedNodes", release.SeedNodes)
		ctx.Export("secretName", release.SecretName)
		ctx.Export("namespace", release.Namespace)
	} else {
		args := cfg.Release
		args.ReleaseArgs = shared
		args.HAProxyImage = pulumi.String(cfg.HAProxyImage)
		release, err := components.NewRedisSentinel(ctx, cfg.Name, &args, opts...)
		if err != nil {
			return err
		}
		ctx.Export("masterEndpoint", release.MasterEndpoint)
		ctx.Export("readEndpoint", release.ReadEndpoint)
		ctx.Export("sentinelEndpoint", release.SentinelEndpoint)
		ctx.Export("masterSetName", release.MasterSetName)
		ctx.Export("secretName", release.SecretName)
		ctx.Export("namespace", release.Namespace)
		ctx.Export("loadBalancerAddress", release.LoadBalancerAddress)
	}
	settings, err := RecordedSettings(cfg)
	ctx.Export(settingsOutput, pulumi.ToSecret(pulumi.ToMap(settings)))
	return err
}

// existingCluster is the cluster of cloud none or aks: the one the kubeconfig config key names,
// or, without it, the ambient kubeconfig (Pulumi's default Kubernetes provider).
func existingCluster(ctx *pulumi.Context, cfg *Config) (*cluster, error) {
	c := &cluster{
		name:       pulumi.String("").ToStringOutput(),
		kubeconfig: pulumi.ToSecret(pulumi.String(cfg.Kubeconfig)).(pulumi.StringOutput),
	}
	if cfg.Kubeconfig == "" {
		return c, nil
	}
	provider, err := newClusterProvider(ctx, cfg.Name+"-cluster", c.kubeconfig, pulumi.String(cfg.KubeconfigCluster).ToStringOutput())
	c.provider = provider
	return c, err
}
