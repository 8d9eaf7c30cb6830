// Package stacks wires the program per environment: it reads and validates the stack's
// configuration, provisions what the stack needs, creates the RedisSentinel release and exports
// the outputs that other stacks read with a StackReference.
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
	args := cfg.Release
	args.RedisImage = pulumi.String(cfg.RedisImage)
	args.HAProxyImage = pulumi.String(cfg.HAProxyImage)
	if cfg.Password != "" {
		args.Password = pulumi.ToSecret(pulumi.String(cfg.Password)).(pulumi.StringOutput)
	}
	release, err := components.NewRedisSentinel(ctx, cfg.Name, &args)
	if err != nil {
		return err
	}
	ctx.Export("masterEndpoint", release.MasterEndpoint)
	ctx.Export("sentinelEndpoint", release.SentinelEndpoint)
	ctx.Export("masterSetName", release.MasterSetName)
	ctx.Export("secretName", release.SecretName)
	ctx.Export("namespace", release.Namespace)
	ctx.Export("loadBalancerAddress", release.LoadBalancerAddress)
	return nil
}
