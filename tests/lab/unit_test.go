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
	from, to := gapSpan(writes, "endpoint", 0, 6*s)
	assert.Equal(t, [2]int64{1 * s, 5 * s}, [2]int64{from, to}, "the stretch lies between the successes around it")
}

func TestSelectRefusesUnknownScenarios(t *testing.T) {
	fast, err := Select("fast")
	require.NoError(t, err)
	var names []string
	for _, s := range fast {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"recreate-empty-quick", "password-rotation", "certificate-renewal"}, names, "the crash and the planned restart run on the real node in CI; the renewal with -lab.tls only")
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

func TestKeySlotIsRedisClusters(t *testing.T) {
	assert.Equal(t, uint16(0x31c3), crc16("123456789"), "CRC-16/XMODEM check value")
	// CLUSTER KEYSLOT of redis-server 7.0.15.
	assert.Equal(t, 12182, keySlot("foo"))
	assert.Equal(t, 11058, keySlot("somekey"))
	assert.Equal(t, keySlot("user1000"), keySlot("{user1000}.following"), "the hash tag decides")
	assert.Equal(t, int(crc16("foo{}{bar}"))%clusterSlots, keySlot("foo{}{bar}"), "an empty tag does not count")
	for _, slot := range []int{0, 5460, 5461, 10922, 16383} {
		assert.Equal(t, slot, keySlot(clusterKey(slot, 42)), "a key of slot %d", slot)
	}
}

func TestLanesCoverTheirPartAwayFromTheShardEdges(t *testing.T) {
	var parts [][2]int
	for g := range 3 {
		lo, hi := laneSlots(g, 3)
		parts = append(parts, [2]int{lo, hi})
		seen := map[int]bool{}
		stride := laneStride(hi - lo)
		for k := range hi - lo {
			seen[lo+k*stride%(hi-lo)] = true
		}
		assert.Len(t, seen, hi-lo, "lane %d visits each of its slots once per round", g)
		// Slots moved by a rebalance leave a shard stretches of a lane's part: each is written
		// to within a few writes of the last.
		stretch := (hi - lo) / 8
		for first := lo; first+stretch <= hi; first += 97 {
			last, longest := -1, 0
			for k := range 3 * (hi - lo) {
				if slot := lo + k*stride%(hi-lo); first <= slot && slot < first+stretch {
					if last >= 0 {
						longest = max(longest, k-last)
					}
					last = k
				}
			}
			assert.LessOrEqual(t, longest, 20, "lane %d, slots %d to %d: writes from one to the next", g, first, first+stretch-1)
		}
	}
	assert.Equal(t, [][2]int{{0, 5459}, {5463, 10920}, {10924, 16384}}, parts,
		"10922 is shard 1's for redis-cli and shard 2's for the release: no lane writes near it")
}

func TestParseClusterSlotsAndRedirections(t *testing.T) {
	reply := []any{
		[]any{int64(0), int64(5460), []any{"redis-0.h", int64(6379), "id0", []any{}}, []any{"redis-1.h", int64(6379), "id1", []any{}}},
		[]any{int64(5461), int64(16383), []any{"10.123.0.12", int64(6379), "id2"}},
	}
	owners := parseClusterSlots(reply)
	require.Len(t, owners, clusterSlots)
	assert.Equal(t, "redis-0.h:6379", owners[5460])
	assert.Equal(t, "10.123.0.12:6379", owners[5461])
	assert.Nil(t, parseClusterSlots([]any{}), "no slots: ask another seed")

	kind, addr := redirection(errReply("MOVED 3999 redis-2.h:6379"), "redis-0.h:6379")
	assert.Equal(t, [2]string{"MOVED", "redis-2.h:6379"}, [2]string{kind, addr})
	kind, addr = redirection(errReply("ASK 3999 :6380"), "10.123.0.10:6379")
	assert.Equal(t, [2]string{"ASK", "10.123.0.10:6380"}, [2]string{kind, addr}, "an empty host is the one that answered")
	kind, _ = redirection(errReply("CLUSTERDOWN The cluster is down"), "x:1")
	assert.Empty(t, kind)
}

func TestMyselfStateReadsTheNodesOwnLine(t *testing.T) {
	nodes := "id1 10.123.0.11:6379@16379,redis-1.h slave id0 0 1 1 connected\n" +
		"id0 10.123.0.10:6379@16379,redis-0.h myself,master - 0 0 1 connected 0-5460 7 [9->-id2]\n"
	s, ok := myselfState(nodes)
	require.True(t, ok)
	assert.Equal(t, nodeState{ID: "id0", Role: "master", Slots: []string{"0-5460", "7"}}, s)
	s, ok = myselfState("id1 10.123.0.11:6379@16379 myself,slave id0 0 1 1 connected\n")
	require.True(t, ok)
	assert.Equal(t, nodeState{ID: "id1", Role: "slave", Master: "id0"}, s)
	_, ok = myselfState("")
	assert.False(t, ok)
}

func TestClusterConvergedNeedsEverySlotOnceAndEveryMastersReplicas(t *testing.T) {
	replicas := int32(4)
	rel := &clusterRelease{workload: workload{statefulSet: appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: &replicas}}}, shards: 2, replicasPerShard: 1}
	good := event{Kind: "sample", Nodes: map[string]nodeState{
		"r-0": {ID: "a", Role: "master", Slots: []string{"0-8191"}, State: "ok"},
		"r-1": {ID: "b", Role: "slave", Master: "a", Link: "up", State: "ok"},
		"r-2": {ID: "c", Role: "master", Slots: []string{"8192-16382", "16383"}, State: "ok"},
		"r-3": {ID: "d", Role: "slave", Master: "c", Link: "up", State: "ok"},
	}}
	assert.True(t, rel.converged(good))
	change := func(pod string, f func(*nodeState)) event {
		e := event{Kind: "sample", Nodes: map[string]nodeState{}}
		for p, n := range good.Nodes {
			e.Nodes[p] = n
		}
		n := e.Nodes[pod]
		f(&n)
		e.Nodes[pod] = n
		return e
	}
	assert.False(t, rel.converged(change("r-3", func(n *nodeState) { n.Link = "down" })), "a replica not in sync")
	assert.False(t, rel.converged(change("r-2", func(n *nodeState) { n.Slots = []string{"8192-16382"} })), "slot 16383 uncovered")
	assert.False(t, rel.converged(change("r-1", func(n *nodeState) { n.State = "fail" })), "a node that says fail")
	assert.False(t, rel.converged(change("r-3", func(n *nodeState) { n.Master = "a" })), "one master with two replicas, one with none")
	assert.False(t, rel.converged(change("r-1", func(n *nodeState) { *n = nodeState{ID: "b", Role: "master", Slots: []string{"0-10"}, State: "ok"} })), "two masters for slots 0-10")
	delete(good.Nodes, "r-3")
	assert.False(t, rel.converged(good), "a node that does not answer (our empty node refuses the password)")
}

func TestClusterMeasureSplitsTheHitShardFromTheOthers(t *testing.T) {
	s := int64(time.Second)
	before := event{Kind: "sample", Nodes: map[string]nodeState{
		"r-0": {ID: "a", Role: "master", Slots: []string{"0-8191"}, State: "ok"},
		"r-1": {ID: "c", Role: "master", Slots: []string{"8192-16383"}, State: "ok"},
	}}
	w := func(at int64, slot int, ok bool) event {
		return event{Kind: "write", Writer: clusterWriter, Time: at, Slot: slot, OK: ok, Seq: int(at / s)}
	}
	refused := w(3*s, 5, false)
	refused.Err = "NOREPLICAS Not enough good replicas to write."
	writes := []event{w(1*s, 5, true), w(2*s, 9000, true), refused, w(4*s, 9000, true), w(7*s, 6, true), w(8*s, 9001, true)}
	samples := []event{
		{Kind: "sample", Time: 1 * s, Nodes: before.Nodes},
		{Kind: "sample", Time: 3 * s, Nodes: map[string]nodeState{"r-1": before.Nodes["r-1"]}},
		{Kind: "sample", Time: 5 * s, Nodes: map[string]nodeState{
			"r-0": {ID: "a", Role: "master", Slots: []string{"0-8191"}, State: "fail"},
			"r-2": {ID: "b", Role: "master", Slots: []string{"0-8191"}, State: "ok"},
			"r-1": before.Nodes["r-1"]}},
		{Kind: "sample", Time: 6 * s, Nodes: before.Nodes},
		{Kind: "sample", Time: 8 * s, Nodes: before.Nodes},
	}
	check := &checkResult{Acked: map[string]int{"cluster/plain": 5}, Lost: map[string]int{"cluster/plain": 1}, Unreadable: map[string]int{},
		LostSpan: map[string][2]int64{"cluster": {1 * s, 1 * s}}, LostSeqs: []int{1}}
	var r ClusterResult
	r.measure(writes, samples, check, time.Unix(0, 0), time.Unix(9, 0), before, "r-0", func(e event) bool { return len(e.Nodes) == 2 })
	assert.Equal(t, 6.0, r.HitGap, "shard 0: acknowledged at 1 s and 7 s (the failure at 3 s does not count)")
	assert.Equal(t, 4.0, r.OtherGap, "shard 1: 4 s to 8 s")
	assert.Equal(t, 2.0, r.Uncovered, "3 s to 5 s nobody answers for shard 0; from 5 s another master serves it")
	assert.Equal(t, 1.0, r.TwoMasters, "5 s to 6 s: two nodes claim slots 0-8191")
	assert.Equal(t, 6.0, r.Converge)
	assert.Equal(t, []string{"failed writes to the hit shard after the event, by answer: NOREPLICAS 1",
		"lost writes by shard (numbered by lowest slot; -1: a slot no master served before the event): shard 0: 1"}, r.Notes)

	var every ClusterResult
	every.measure(writes, samples, check, time.Unix(0, 0), time.Unix(9, 0), before, "", func(e event) bool { return len(e.Nodes) == 2 })
	assert.Equal(t, 6.0, every.HitGap, "every shard is hit: the longest of both")
	assert.Contains(t, every.Notes, "longest gap: shard 0, 1.00 s to 7.00 s after the event; its failed writes by answer: NOREPLICAS 1")
}

// The scaling scenarios derive a shape from the release; that must be what the component renders
// for it, or the lab would scale something else than users get.
func TestReshapedIsTheRenderOfThatShape(t *testing.T) {
	parse := func(shards string) *clusterRelease {
		files, err := renderStack(repoRoot, "local-cluster", map[string]string{"engine": "redis", "shards": shards})
		require.NoError(t, err)
		rel, err := parseClusterRelease(files)
		require.NoError(t, err)
		return rel
	}
	three, four := parse("3"), parse("4")
	for _, c := range []struct{ from, to *clusterRelease }{{three, four}, {four, three}} {
		got := c.from.reshaped(c.to.shards)
		assert.Equal(t, c.to.statefulSet, got.statefulSet)
		assert.Equal(t, c.to.configMap, got.configMap)
		assert.Equal(t, c.to.credentialsJob, got.credentialsJob)
		assert.Equal(t, c.to.reshardJobs, got.reshardJobs)
		assert.Equal(t, c.to.shards, got.shards)
	}
}

func TestHAProxysDownsAreCountedByBackendAndKind(t *testing.T) {
	downs := []string{
		`[pod/h-1/haproxy] Server redis_master/redis-0 is DOWN, reason: Layer6 timeout, info: " at step 1 of tcp-check (connect)", check duration: 252ms. 0 active`,
		`[pod/h-2/haproxy] Server redis_master/redis-0 is DOWN, reason: Layer4 connection problem, info: "Connection refused at step 1 of tcp-check (connect)", check duration: 0ms.`,
		`[pod/h-2/haproxy] Server redis_master/redis-1 is DOWN, reason: Layer7 timeout, info: " at step 1 of tcp-check (connect)", check duration: 260ms.`,
		`[pod/h-1/haproxy] Server sentinels_name_redis-0/sentinel_redis-1 is DOWN, reason: Layer7 invalid response, info: "TCPCHK did not match content 'x' at step 5", check duration: 2ms.`,
		`[pod/h-1/haproxy] Server redis_read/redis-2 is DOWN, reason: Socket error, info: "Broken pipe at step 2 of tcp-check (send)", check duration: 1ms.`,
	}
	assert.Equal(t, "redis_master 1 refused, 2 timed out; redis_read 1 other; sentinels_name_redis-0 1 answered otherwise", summarizeDowns(downs))
	assert.Equal(t, "none", summarizeDowns(nil))
}
