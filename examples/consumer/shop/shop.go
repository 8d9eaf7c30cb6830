// Package shop is the program of the consumer example: a shop's cache, a RedisSentinel release
// with a few choices of its own, and optionally the settings of a Redis that the redis-sentinel
// program runs in another stack (see mainstack.go).
package shop

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/d3ad221e/redis-sentinel/components"
)

// namespace holds the shop's objects.
const namespace = "shop"

// Program creates the shop's cache and exports where its clients find it.
func Program(ctx *pulumi.Context) error {
	cache, err := components.NewRedisSentinel(ctx, "cache", &components.RedisSentinelArgs{
		ReleaseArgs: components.ReleaseArgs{
			Namespace:       namespace,
			CreateNamespace: true,
			// Sessions and carts that can be rebuilt: no volumes, no AOF.
			Ephemeral:    true,
			RedisMemory:  "1Gi",
			ClientLabels: map[string]string{"shop.example.com/cache-client": "true"},
		},
		// Five pods survive the loss of two; a quorum of 3 is their majority.
		Replicas:      5,
		Quorum:        3,
		MasterSetName: "shop-cache",
		// Fail over sooner than the default 5 s; above 2 s, which the component requires.
		DownAfterMilliseconds: 3000,
		HAProxyReplicas:       3,
	})
	if err != nil {
		return err
	}
	ctx.Export("masterEndpoint", cache.MasterEndpoint)
	ctx.Export("sentinelEndpoint", cache.SentinelEndpoint)
	ctx.Export("masterSetName", cache.MasterSetName)
	ctx.Export("secretName", cache.SecretName)
	ctx.Export("namespace", cache.Namespace)

	if mainStack := config.Get(ctx, "mainStack"); mainStack != "" {
		return connectToMainStack(ctx, mainStack, cache)
	}
	return nil
}
