package lab

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clusterManifests is TestClusterLab's -lab.manifests: the Sentinel lab's flag names a render of
// the local stack, this one of the local-cluster stack.
var clusterManifests = flag.String("lab.cluster-manifests", "", "directory of a `cmd/render -stack local-cluster` output to run (default: render the local-cluster stack)")

// TestClusterLab runs the RedisCluster's scenarios as TestFailoverLab runs the Sentinel
// release's, with the same flags (-lab or REDIS_SENTINEL_LAB, -lab.baseline, -lab.report, whose
// directory gets a cluster/ of its own, and -lab.benchmarks, whose page gets the cluster's
// section).
func TestClusterLab(t *testing.T) {
	if *mode == "" {
		t.Skip("the cluster lab runs with -lab fast|full or REDIS_SENTINEL_LAB=fast|full (root, redis-server or valkey-server)")
	}
	scenarios, err := SelectCluster(*mode)
	if err != nil {
		t.Fatal(err)
	}
	requireLabTools(t)
	setups, err := ClusterSetups(repoRoot, *clusterManifests, stackValues(), *withTLS)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if *reportDir != "" {
		out = filepath.Join(*reportDir, "cluster")
	}
	began := time.Now()
	var results []*ClusterResult
	for _, s := range scenarios {
		setupNames := []string{SetupOurs}
		if *withTLS {
			setupNames = append(setupNames, SetupOursTLS)
		}
		if *withBaseline {
			setupNames = append(setupNames, SetupBaseline)
		}
		for _, setup := range setupNames {
			t.Run(s.Name+"/"+setup, func(t *testing.T) {
				dir := filepath.Join(out, "runs", s.Name, setup)
				runStart := time.Now()
				r, err := RunCluster(s, setup, setups[setup], dir)
				results = append(results, r)
				if err != nil {
					r.Error = err.Error()
					t.Errorf("%v (logs in %s)\n%s", err, dir, clusterDiagnosis(dir))
					return
				}
				t.Logf("%s in %.0f s: hit shard gap %.2f s, other shards %.2f s, lost %d/%d, unreadable %d, uncovered %.2f s, two masters %.2f s, converged %.2f s",
					setup, time.Since(runStart).Seconds(), r.HitGap, r.OtherGap, r.Lost, r.Acked, r.Unreadable, r.Uncovered, r.TwoMasters, r.Converge)
				for _, n := range r.Notes {
					t.Logf("%s: %s", setup, n)
				}
				missedAny := false
				for _, miss := range r.Missed() {
					missedAny = true
					t.Errorf("target missed: %s: want %s, got %s (logs in %s)", miss.Name, miss.Want, miss.Got, dir)
				}
				if missedAny {
					t.Logf("why:\n%s", clusterDiagnosis(dir))
				}
			})
		}
	}
	took := time.Since(began)
	table := ClusterMarkdown(results)
	t.Logf("cluster lab, %d runs in %.0f s (also in %s):\n%s", len(results), took.Seconds(), out, table)
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if *benchmarks != "" {
		old, err := os.ReadFile(*benchmarks)
		if err != nil {
			t.Fatal(err)
		}
		l, err := setups[SetupOurs].limits()
		if err != nil {
			t.Fatal(err)
		}
		page := withSection(string(old), clusterSection, clusterBenchmarks(*mode, took, setups[SetupOurs], l, results))
		if err := os.WriteFile(*benchmarks, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// clusterBenchmarks is BENCHMARKS.md's section of the cluster lab: what ran, the table, the
// notes, and what the lab does not show.
func clusterBenchmarks(mode string, took time.Duration, ours *clusterRelease, l clusterLimits, results []*ClusterResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, `## Redis Cluster lab: ours vs the hand-made StatefulSet

Regenerate with (as root, from the repository root):

    REDIS_SENTINEL_LAB=full go test ./tests/lab -run TestClusterLab -timeout 60m -v -lab.tls -lab.benchmarks "$PWD/BENCHMARKS.md"

Ran %s, mode %q, %.0f s in all, on %s; %s.

**Ours** is the `+"`local-cluster`"+` stack's render (components.NewRedisCluster): %d shards of %d pods
(a master and its replicas), cluster-node-timeout %d ms, min-replicas-to-write 1,
min-replicas-max-lag %.0f s, AOF; its start script, keeper and preStop hook run as rendered.
**Ours, TLS** (run with -lab.tls) is the same stack rendered with `+"`tls: true`"+`, its certificate a
Secret that the lab makes with a CA of its own: clients, replication and the bus speak TLS.
**Baseline** is the Redis Cluster StatefulSet that blog posts show, in the same pods
(tests/lab/baseline/cluster): a start script that writes the pod's new IP into the `+"`myself`"+` line
of nodes.conf, `+"`redis-cli --cluster create ... --cluster-replicas 1`"+` run by the lab once after the
first start, nodes that announce their IPs, no min-replicas-to-write,
cluster-require-full-coverage at its default (yes), the same node timeout, no preStop. The lab
never steps in afterwards: what a person would repair by hand stays broken.

The client writes through the cluster as a cluster-aware library does (CLUSTER SLOTS from the seed
Service, MOVED and ASK followed, the map re-read after a MOVED, a connection error or a
CLUSTERDOWN): one writer per shard, each a new key every %.0f ms into the next slot of its part of
the slot space. Every 50 ms it asks every node for its own view (CLUSTER NODES, CLUSTER INFO, a
replica's link). At the end it reads every acknowledged key back through the cluster. Each
scenario hits the master of the shard that serves slot 0; shards are numbered by their lowest
slot. Columns, all from the event to the end of the run: *hit shard: no write*, the longest
stretch without an acknowledged write to that shard (to any shard when every pod is hit); *other
shards*, the same for the shards not hit; *lost*, acknowledged writes missing at the end;
*unreadable*, acknowledged writes whose slot's node answered an error or nothing at the end; *lost
writes span*, from the first to the last lost write's acknowledgement; *slots uncovered*, the time
some slot had no answering master in cluster_state ok; *two masters*, the time some slot had two
answering nodes that each said they were its master; *converged*, when every node answered ok,
every slot had one master and every master its replicas in sync, for good.

Scaling (shards 3 -> 4, and 4 -> 3 after a 3 -> 4 that is not measured) is done as each setup's
users do it. Ours as `+"`pulumi up`"+` does: the drain Job of the new shape's render (with the running
topology mounted), the topology ConfigMap's new data written into every pod's volume, the
StatefulSet's pods started or deleted (all at once, gracefully: Parallel pod management), then the
fill Job; both Jobs run the rendered cluster-reshard.sh in a pod of their own. The baseline by the
steps of Redis's scaling tutorial, each run by the lab as soon as the one before succeeded, in
the best case: to grow, the new pods, `+"`redis-cli --cluster add-node`"+` for each (as an empty
master), `+"`CLUSTER REPLICATE`"+` on the new replica (`+"`add-node --cluster-slave`"+` met a new node that
had not heard of its master yet), a wait until every node knows every other (run at once, the
rebalance met a node that did not know the new master and left a slot half-moved), and
`+"`--cluster rebalance --cluster-use-empty-masters`"+`; to shrink,
`+"`--cluster rebalance --cluster-weight ID=0`"+` for the master among the pods that go,
`+"`--cluster del-node`"+` for both, then the pods deleted. A shard's gap counts the slots it served
before the event, wherever they moved.

Redis itself shapes some figures: a master that starts again refuses writes for its first 2 s in
the cluster, so a crash with a restart a second later costs about 3 s in both setups, and no
replica is promoted; a replica is promoted only after cluster-node-timeout and an election of up
to a second or two.
`, time.Now().UTC().Format("2006-01-02 15:04 MST"), mode, took.Seconds(), machine(), version("redis-server", "--version"),
		ours.shards, 1+ours.replicasPerShard, l.nodeTimeout.Milliseconds(), l.maxLag.Seconds(), float64(clusterWriteInterval.Milliseconds()))
	if ours.replicasPerShard == 1 {
		b.WriteString(`With min-replicas-to-write 1 and one replica per shard, a master without its replica in sync
refuses writes (NOREPLICAS): a promoted replica until the pod that was lost is back and synced,
the majority side of a partition until the partition heals.
`)
	}
	b.WriteString("\n")
	b.WriteString(ClusterMarkdown(results))
	b.WriteString("\n")
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s, %s: %s\n", r.Title, r.Setup, n)
		}
	}
	b.WriteString(`
What the lab does not show: its userland is the host's (Debian's redis-server and redis-cli, not
the image's); there is no kubelet, so no probe acts (a pod is never restarted for failing its
liveness probe, never left out of the seed Service for failing its readiness probe) and every
restart is the lab's, a container's after a fixed second; there is one machine, so no node or zone
is lost, and a "lost" pod's volume is deleted by the lab; NetworkPolicies are not enforced; no
Pulumi runs the scaling (the real-node section does), and the Jobs run once, never retried.
`)
	return b.String()
}
