package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// The lab's own logic, without root or processes: these run in every `go test ./...`.

func TestExpandFollowsKubernetesRules(t *testing.T) {
	vars := map[string]string{"POD_NAME": "redis-1"}
	assert.Equal(t, "redis-1.redis-headless", expand("$(POD_NAME).redis-headless", vars))
	assert.Equal(t, "$(POD_NAME)", expand("$$(POD_NAME)", vars), "$$ escapes")
	assert.Equal(t, "$(UNKNOWN)", expand("$(UNKNOWN)", vars), "an unknown reference stays")
}

func TestMountOrderMountsWhatHidesASourceLast(t *testing.T) {
	binds := [][2]string{
		{"/tmp/lab/pod/tmp", "/tmp"},
		{"/tmp/lab/pod/data", "/data"},
		{"/tmp/lab/pod/config", "/etc/redis-sentinel"},
		{"/tmp/lab/pod/run", "/tmp"},
	}
	got, err := mountOrder(binds)
	require.NoError(t, err)
	assert.Equal(t, [][2]string{
		{"/tmp/lab/pod/data", "/data"},
		{"/tmp/lab/pod/config", "/etc/redis-sentinel"},
		{"/tmp/lab/pod/tmp", "/tmp"},
	}, got, "one mount per target, /tmp last because the sources are under it")

	_, err = mountOrder([][2]string{{"/tmp/lab/a", "/tmp"}, {"/tmp/lab/b", "/tmp/x"}})
	assert.ErrorContains(t, err, "cannot mount /tmp")
}

func TestTheClientDialsOnlyInsideTheLab(t *testing.T) {
	assert.NoError(t, mustBeAllowed("10.123.0.10:6379"))
	for _, addr := range []string{"10.0.0.1:6379", "127.0.0.1:6379", "8.8.8.8:53", "redis:6379"} {
		assert.Error(t, mustBeAllowed(addr), addr)
	}
	_, err := dial("192.168.1.1:6379", "", time.Second)
	assert.ErrorContains(t, err, "refusing to dial")
}

func TestTheClientDialsOnlyTheSubnetsItIsTold(t *testing.T) {
	t.Cleanup(func() { allowedSubnets = []netip.Prefix{labSubnet} })
	require.NoError(t, allowSubnets([]string{"10.244.0.0/24", "10.0.0.0/24"}))
	assert.NoError(t, mustBeAllowed("10.244.0.7:6379"))
	assert.NoError(t, mustBeAllowed("10.0.0.12:6379"))
	for _, addr := range []string{"10.123.0.10:6379", "10.245.0.1:6379", "192.0.2.1:53"} {
		assert.Error(t, mustBeAllowed(addr), addr)
	}
	assert.Error(t, allowSubnets(nil))
	assert.Error(t, allowSubnets([]string{"10.244.0.0"}))
}

func TestLongestGapCountsTheEdges(t *testing.T) {
	s := int64(time.Second)
	writes := []event{
		{Writer: "endpoint", OK: true, Time: 1 * s},
		{Writer: "endpoint", OK: false, Time: 2 * s},
		{Writer: "sentinel", OK: true, Time: 3 * s},
		{Writer: "endpoint", OK: true, Time: 5 * s},
	}
	assert.Equal(t, 4.0, longestGap(writes, "endpoint", 0, 6*s), "1 s to 5 s: failures and the other writer do not count")
	assert.Equal(t, 7.0, longestGap(writes, "endpoint", 0, 12*s), "the stretch after the last success counts")
	assert.Equal(t, 3.0, longestGap(writes, "sentinel", 0, 5*s), "the stretch before the first success counts")
}

func TestSelectRefusesUnknownScenarios(t *testing.T) {
	fast, err := Select("fast")
	require.NoError(t, err)
	var names []string
	for _, s := range fast {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"master-crash", "recreate-empty-quick", "planned-restart"}, names)
	full, err := Select("full")
	require.NoError(t, err)
	assert.Len(t, full, len(Scenarios))
	_, err = Select("master-crash,typo")
	assert.ErrorContains(t, err, `lab mode "master-crash,typo": not allowed`)
}

func TestConvergedNeedsOneMasterFollowedByAllAndNamedByAllSentinels(t *testing.T) {
	replicas := int32(3)
	c := &release{workload: workload{headless: "h", namespace: "ns", statefulSet: appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: &replicas}}}}
	fqdn := func(p string) string { return p + ".h.ns.svc.cluster.local" }
	good := event{Kind: "sample", Health: 200,
		Nodes: map[string]nodeState{
			"r-0": {Role: "master"},
			"r-1": {Role: "slave", Master: fqdn("r-0"), Link: "up"},
			"r-2": {Role: "slave", Master: fqdn("r-0"), Link: "up"},
		},
		Sentinels: map[string]string{"r-0": fqdn("r-0"), "r-1": fqdn("r-0"), "r-2": fqdn("r-0")},
	}
	assert.True(t, c.converged(good))
	chained := good
	chained.Nodes = map[string]nodeState{"r-0": {Role: "master"}, "r-1": {Role: "slave", Master: fqdn("r-0"), Link: "up"}, "r-2": {Role: "slave", Master: fqdn("r-1"), Link: "up"}}
	assert.False(t, c.converged(chained), "a replica chained behind another")
	split := good
	split.Sentinels = map[string]string{"r-0": fqdn("r-0"), "r-1": fqdn("r-0"), "r-2": fqdn("r-1")}
	assert.False(t, c.converged(split), "a sentinel naming another master")
	unhealthy := good
	unhealthy.Health = 503
	assert.False(t, c.converged(unhealthy))
}

func TestASectionIsReplacedInPlaceAndKeptByTheLabsPage(t *testing.T) {
	begin, end := markers(nodeSection)
	page := withSection("# lab\n\n| table |\n", nodeSection, "## node\nfigures 1")
	assert.Equal(t, "# lab\n\n| table |\n\n"+begin+"\n## node\nfigures 1\n"+end+"\n", page)
	again := withSection(page, nodeSection, "## node\nfigures 2")
	assert.Contains(t, again, "figures 2")
	assert.NotContains(t, again, "figures 1")
	assert.Equal(t, 1, strings.Count(again, begin))
	assert.Equal(t, begin+"\n## node\nfigures 2\n"+end, section(again, nodeSection))
	assert.Empty(t, section("# lab only", nodeSection))

	both := withSection(again, clusterSection, "## cluster\nfigures 3")
	assert.Equal(t, "# lab\n\n| new table |\n\n"+section(both, nodeSection)+"\n\n"+section(both, clusterSection)+"\n",
		withSectionsOf("# lab\n\n| new table |\n", both), "the lab's page keeps every section, in order")
	assert.Equal(t, "# lab\n", withSectionsOf("# lab\n", "# old lab only\n"))
}
