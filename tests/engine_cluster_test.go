package tests

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/tests/enginestack"
)

// clusterDay2Changes are the changes of a RedisCluster release that its own keys and its pods
// take, in an order in which each accepted change stays applied for the next ones. The keys that
// both kinds of release read the same way (names, labels, metrics) are the Sentinel matrix's.
var clusterDay2Changes = []day2Change{
	// First, while every key is at a value a Sentinel release accepts: otherwise their refusals
	// come first.
	{"topology", map[string]any{"topology": "sentinel"}, "another kind of release", ""},
	{"shards", map[string]any{"shards": 4}, "a shard group more: the topology, the StatefulSet's replicas, the fill Job", ""},
	{"shards", map[string]any{"shards": 3}, "a shard group less: the drain Job, then the StatefulSet", ""},
	{"clusterNodeTimeoutMilliseconds", map[string]any{"clusterNodeTimeoutMilliseconds": 7000}, "cluster.conf", ""},
	{"minReplicasMaxLagSeconds", map[string]any{"minReplicasMaxLagSeconds": 3}, "cluster.conf", ""},
	{"redisMemory", map[string]any{"redisMemory": "1Gi"}, "maxmemory", ""},
	{"redisImage", map[string]any{"redisImage": "docker.io/library/redis:7.2.6-alpine"}, "", ""},
	{"engine", map[string]any{"engine": "valkey", "redisImage": nil}, "Redis to Valkey: the pods and the Jobs' programs", ""},
	{"storageSize", map[string]any{"storageSize": "2Gi"}, "grow: the claims are patched", ""},
	{"replicasPerShard", map[string]any{"replicasPerShard": 2}, "the shard groups would change", ""},
	{"password", map[string]any{"password": "engine-test-password-0003"}, "a new password in one step", classRefused},
	{"password", map[string]any{"password": "engine-test-password-0003", "previousPassword": "engine-test-password-0001"}, "a rotation's first step", ""},
	{"previousPassword", map[string]any{"previousPassword": nil}, "its last step", ""},
}

// TestEveryClusterConfigChangeIsARollingUpdateInPlaceOrARefusal is the day-2 matrix of a
// RedisCluster release (topology cluster): as TestEveryConfigChangeIsARollingUpdateInPlaceOrARefusal,
// every change previewed, classified, checked against the README, applied, and followed by an
// empty preview. A change of shards runs the drain Job, the topology, the StatefulSet and the
// fill Job in that order.
func TestEveryClusterConfigChangeIsARollingUpdateInPlaceOrARefusal(t *testing.T) {
	e := enginestack.New(t, repoRoot, map[string]any{"kubernetes:renderYamlToDirectory": filepath.Join(t.TempDir(), "rendered")})
	classes := day2Table(t)
	e.Set(map[string]any{"topology": "cluster"})
	first := e.Up()
	require.NoError(t, first.Err, "first pulumi up:\n%s", first.Log)
	again := e.Preview()
	require.NoError(t, again.Err, again.Log)
	assert.Empty(t, again.Changed(), "a preview right after the first up changes nothing:\n%s", again)

	for _, c := range clusterDay2Changes {
		want := classes[c.key]
		require.NotEmpty(t, want, "README's day-2 table has no row for %s", c.key)
		if c.class != "" {
			want = c.class
		}
		applied := applyDay2Change(t, e, c, want)
		if c.key != "shards" {
			continue
		}
		// The drain Job runs first, then the topology and the StatefulSet change, then fill.
		order := []string{"kubernetes:batch/v1:Job/redis-drain", "kubernetes:core/v1:ConfigMapPatch/redis-topology",
			"kubernetes:apps/v1:StatefulSet/redis", "kubernetes:batch/v1:Job/redis-fill"}
		last := -1
		for _, step := range order {
			typ, name, _ := strings.Cut(step, "/redis")
			i := applied.Index(typ, "redis"+name)
			require.GreaterOrEqual(t, i, 0, "%s: %s does not change:\n%s", c.key, step, applied)
			assert.Greater(t, i, last, "%s: %s comes after what it waits for:\n%s", c.key, step, applied)
			last = i
		}
	}
}
