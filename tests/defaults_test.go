package tests

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/internal/render"
	"github.com/d3ad221e/redis-sentinel/stacks"
)

// defaultRow is one field of defaulted args, with the value it must have.
type defaultRow struct {
	field     string
	got, want any
}

// releaseDefaults are the rows of the fields that both kinds of release share, of args named
// "cache" with defaults applied.
func releaseDefaults(got components.ReleaseArgs) []defaultRow {
	return []defaultRow{
		{"Namespace", got.Namespace, "default"},
		{"CreateNamespace", got.CreateNamespace, false},
		{"ClusterDomain", got.ClusterDomain, "cluster.local"},
		{"Engine", got.Engine, components.EngineRedis},
		{"RedisImage", got.RedisImage, pulumi.String(components.DefaultRedisImage)},
		{"Password", got.Password, nil},
		{"Ephemeral", got.Ephemeral, false},
		{"StorageSize", got.StorageSize, "8Gi"},
		{"StorageClass", got.StorageClass, ""},
		{"RedisCPU", got.RedisCPU, "100m"},
		{"RedisMemory", got.RedisMemory, "512Mi"},
		{"MinReplicasMaxLagSeconds", got.MinReplicasMaxLagSeconds, 2},
		{"ShareNodes", got.ShareNodes, false},
		{"ClientLabels", got.ClientLabels, map[string]string{"cache-client": "true"}},
		{"DisableMetrics", got.DisableMetrics, false},
		{"MetricsImage", got.MetricsImage, pulumi.String(components.DefaultMetricsImage)},
		{"ServiceMonitor", got.ServiceMonitor, false},
		{"MetricsScraperNamespaceLabels", got.MetricsScraperNamespaceLabels, map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		{"MetricsScraperPodLabels", got.MetricsScraperPodLabels, map[string]string{"app.kubernetes.io/name": "prometheus"}},
	}
}

func assertDefaults(t *testing.T, rows []defaultRow) {
	t.Helper()
	for _, r := range rows {
		assert.Equal(t, r.want, r.got, r.field)
	}
}

func TestZeroArgsTakeTheDocumentedDefaults(t *testing.T) {
	got := components.RedisSentinelArgs{}.WithDefaults("cache")
	assertDefaults(t, append(releaseDefaults(got.ReleaseArgs), []defaultRow{
		{"Cloud", got.Cloud, components.CloudNone},
		{"Replicas", got.Replicas, 3},
		{"Quorum", got.Quorum, 2},
		{"MasterSetName", got.MasterSetName, "mymaster"},
		{"HAProxyImage", got.HAProxyImage, pulumi.String(components.DefaultHAProxyImage)},
		{"DownAfterMilliseconds", got.DownAfterMilliseconds, 5000},
		{"FailoverTimeoutMilliseconds", got.FailoverTimeoutMilliseconds, 10000},
		{"HAProxyReplicas", got.HAProxyReplicas, 2},
		{"LoadBalancer", got.LoadBalancer, false},
		{"PublicLoadBalancer", got.PublicLoadBalancer, false},
		{"ClusterNetworks", got.ClusterNetworks, []string(nil)},
	}...))
	assert.NoError(t, got.Validate("cache"), "the defaults are valid")
	assert.Equal(t, 3, components.RedisSentinelArgs{Replicas: 5}.WithDefaults("x").Quorum, "quorum follows replicas")
}

func TestZeroClusterArgsTakeTheDocumentedDefaults(t *testing.T) {
	got := components.RedisClusterArgs{}.WithDefaults("cache")
	assertDefaults(t, append(releaseDefaults(got.ReleaseArgs), []defaultRow{
		{"Shards", got.Shards, 3},
		{"ReplicasPerShard", got.ReplicasPerShard, 1},
		{"NodeTimeoutMilliseconds", got.NodeTimeoutMilliseconds, 5000},
	}...))
	assert.NoError(t, got.Validate("cache"), "the defaults are valid")
	assert.Equal(t, 6, got.Pods(), "three masters, each with a replica")
	assert.Equal(t, components.DefaultClusterArgs().ReleaseArgs, components.DefaultArgs().ReleaseArgs, "both kinds share their defaults")
}

// Pulumi.yaml declares a default for every key, which the CLI hands the program; the program
// has the same defaults for when a key is absent. The two must not drift apart.
func TestPulumiYamlDeclaresTheProgramsDefaults(t *testing.T) {
	project, err := render.LoadProject(repoRoot)
	require.NoError(t, err)
	d := components.RedisSentinelArgs{}.WithDefaults(stacks.DefaultName)
	cluster := components.DefaultClusterArgs()
	want := map[string]any{
		"name":                           stacks.DefaultName,
		"namespace":                      stacks.DefaultNamespace,
		"createNamespace":                stacks.DefaultCreateNamespace,
		"cloud":                          string(d.Cloud),
		"topology":                       stacks.TopologySentinel,
		"shards":                         cluster.Shards,
		"replicasPerShard":               cluster.ReplicasPerShard,
		"clusterNodeTimeoutMilliseconds": cluster.NodeTimeoutMilliseconds,
		"replicas":                       d.Replicas,
		"quorum":                         0, // 0 means a majority
		"masterSetName":                  d.MasterSetName,
		"clusterDomain":                  d.ClusterDomain,
		"engine":                         string(d.Engine),
		"redisImage":                     "", // empty means the engine's image
		"haproxyImage":                   components.DefaultHAProxyImage,
		"password":                       "", // empty means generated
		"ephemeral":                      d.Ephemeral,
		"storageSize":                    d.StorageSize,
		"storageClass":                   d.StorageClass,
		"redisCPU":                       d.RedisCPU,
		"redisMemory":                    d.RedisMemory,
		"downAfterMilliseconds":          d.DownAfterMilliseconds,
		"failoverTimeoutMilliseconds":    d.FailoverTimeoutMilliseconds,
		"minReplicasMaxLagSeconds":       d.MinReplicasMaxLagSeconds,
		"haproxyReplicas":                d.HAProxyReplicas,
		"spreadAcrossNodes":              !d.ShareNodes,
		"loadBalancer":                   d.LoadBalancer,
		"loadBalancerSourceRanges":       []string{},
		"publicLoadBalancer":             d.PublicLoadBalancer,
		"clusterNetworks":                []string{},
		"clientLabels":                   d.ClientLabels,
		"metrics":                        !d.DisableMetrics,
		"metricsImage":                   components.DefaultMetricsImage,
		"serviceMonitor":                 d.ServiceMonitor,
		"metricsScraperNamespaceLabels":  d.MetricsScraperNamespaceLabels,
		"metricsScraperPodLabels":        d.MetricsScraperPodLabels,
		"tls":                            d.TLS.Enabled,
		"tlsSecretName":                  d.TLS.SecretName,
		"tlsIssuerName":                  d.TLS.IssuerName,
		"tlsIssuerKind":                  d.TLS.IssuerKind,
		"tlsDnsNames":                    []string{},
	}
	assert.Subset(t, keysOf(project.Config), keysOf(want), "every key of the release is declared")
	for key, decl := range project.Config {
		// pulumi/pulumi#21865: since CLI 3.202.0, a secret key with a default fails every pulumi up
		// that does not set it. Secret keys are wrapped as secrets by the program instead.
		assert.False(t, decl.Secret && decl.Default != nil, "%s is secret and has a default", key)
		assert.NotEmpty(t, decl.Description, key)
		assert.NotEmpty(t, decl.Type, key)
		if w, ok := want[key]; ok {
			assert.JSONEq(t, jsonOf(t, w), jsonOf(t, decl.Default), "default of %s", key)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err, fmt.Sprint(v))
	return string(b)
}
