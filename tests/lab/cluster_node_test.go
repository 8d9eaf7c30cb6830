package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/tests/enginestack"
)

// TestClusterOnARealNode runs the RedisCluster release (the local stack with topology cluster) on
// the real node, as TestOnARealNode runs the Sentinel release: `pulumi up` through the real engine
// (the fill Job run by the kubelet and awaited), then, under the cluster lab's client load, a
// rolling update, and in the full set shards 3 to 4 and back (the resharding Jobs moving slots)
// and every pod deleted at once: CI's budget does not hold them.
func TestClusterOnARealNode(t *testing.T) {
	onARealNode(t, "TestClusterOnARealNode", runClusterOnNode)
}

// clusterNodeRelease is the cluster applied to the node.
type clusterNodeRelease struct {
	*nodeFixture
	rel    *clusterRelease // as rendered with the stack's shape before any scenario
	engine *enginestack.Stack
	out    string
}

// clusterNodeScenario is one thing that happens to the cluster on the node. shards is the shape
// the cluster has once it is done.
type clusterNodeScenario struct {
	Name, Title string
	Fast        bool
	shards      int
	act         func(t *testing.T, r *clusterNodeRelease, res *ClusterResult) error
	targets     func(r *ClusterResult, l clusterLimits) []Target
}

// Planned changes (a rolling update, resharding) lose no acknowledged write and keep every shard
// writable; their gaps are gated at the Sentinel release's planned restart (plannedRestartGate).
// A rolling update's writes refused for want of a replica in sync (NOREPLICAS) are reported: each
// preStop lowers min-replicas-to-write where a handover or a replica's stop would leave a master
// with none (cluster-prestop.sh).
var clusterNodeScenarios = []clusterNodeScenario{
	{Name: "rolling-update", Title: "rolling update from a config change applied with pulumi up", Fast: true, shards: 3,
		act: func(t *testing.T, r *clusterNodeRelease, _ *ClusterResult) error {
			return r.apply(t, map[string]any{"clusterNodeTimeoutMilliseconds": 6000})
		},
		targets: func(r *ClusterResult, l clusterLimits) []Target {
			// Reported, not gating: a handover's stale bound showed as 175 refusals over 1.79 s
			// (the shard gate catches that); 4 refusals, with no shard gap over 0.25 s, came in 2
			// of 2 runs before the fix and in 1 of 7 after it, cause not found.
			return append(plannedTargets(r, l), Target{Name: "no write refused for want of a replica in sync (reported)", Want: "0 NOREPLICAS",
				Got: fmt.Sprintf("%d", r.NoReplicas), Met: r.NoReplicas == 0})
		}},
	{Name: "scale-up", Title: "shards 3 to 4 with pulumi up (fill Job) under load", shards: 4,
		act: func(t *testing.T, r *clusterNodeRelease, _ *ClusterResult) error {
			return r.apply(t, map[string]any{"shards": 4})
		},
		targets: plannedTargets},
	{Name: "scale-down", Title: "shards 4 to 3 with pulumi up (drain Job first) under load", shards: 3,
		act: func(t *testing.T, r *clusterNodeRelease, _ *ClusterResult) error {
			return r.apply(t, map[string]any{"shards": 3})
		},
		targets: plannedTargets},
	{Name: "full-restart", Title: "every pod deleted at once (kubectl delete pods), new IPs", shards: 3,
		act: func(_ *testing.T, r *clusterNodeRelease, _ *ClusterResult) error {
			_, err := r.kubectl("delete", "pods", "-n", r.rel.namespace, "--wait=false", "-l", "app.kubernetes.io/instance="+r.rel.statefulSet.Name)
			return err
		},
		targets: func(r *ClusterResult, _ clusterLimits) []Target {
			return []Target{noneLost(r.Lost, r.Acked), allReadable(r), converges(r.Converge)}
		}},
}

func runClusterOnNode(t *testing.T, dir, mode string) {
	require.NoError(t, noRouteOut(), "checked before any traffic")
	n, err := openNodeFixture(dir)
	require.NoError(t, err)
	t.Setenv("KUBECONFIG", filepath.Join(dir, "kubeconfig"))
	if os.Getenv(enginestack.Env) == "" {
		t.Setenv(enginestack.Env, "1")
	}
	setups, err := ClusterSetups(repoRoot, "", map[string]string{"engine": string(components.EngineRedis)}, false)
	require.NoError(t, err)
	out, err := os.MkdirTemp("", "cluster-node-report-")
	require.NoError(t, err)
	r := &clusterNodeRelease{nodeFixture: n, rel: setups[SetupOurs], engine: enginestack.New(t, repoRoot, nil), out: out}
	r.removeWhenShared(t, r.rel.namespace)
	t.Cleanup(func() {
		if t.Failed() {
			r.diagnose(t, r.rel.workload, out)
			return
		}
		assert.NoError(t, os.RemoveAll(out))
	})
	// The local stack as the local-cluster stack has it: the same namespace, name and storage.
	r.engine.Set(map[string]any{"topology": "cluster"})
	start := time.Now()
	up := r.engine.Up()
	upTook := time.Since(start)
	require.NoError(t, up.Err, "pulumi up of the cluster on the node:\n%s", up.Log)
	t.Logf("pulumi up: %d resources in %.1fs (the fill Job awaited); pods:\n%s", len(up.Changed()), time.Since(start).Seconds(), r.podTable(t))

	var results []*ClusterResult
	for _, s := range clusterNodeScenarios {
		if mode != "full" && !s.Fast {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			res, err := r.run(t, s)
			results = append(results, res)
			if err != nil {
				res.Error = err.Error()
				t.Fatalf("%s: %v", s.Name, err)
			}
			t.Logf("longest gap of a shard %.2f s, lost %d/%d, unreadable %d, slots uncovered %.2f s, two masters %.2f s, converged %.2f s",
				res.HitGap, res.Lost, res.Acked, res.Unreadable, res.Uncovered, res.TwoMasters, res.Converge)
			for _, n := range res.Notes {
				t.Log(n)
			}
			for _, miss := range res.Missed() {
				t.Errorf("target missed: %s: want %s, got %s", miss.Name, miss.Want, miss.Got)
			}
		})
	}
	// The redis pods only: the resharding Jobs' pods have completed.
	zombies, unasked, err := r.zombies(r.rel.namespace, "app.kubernetes.io/instance="+r.rel.statefulSet.Name+",app.kubernetes.io/component=redis")
	require.NoError(t, err)
	t.Logf("zombies %.1f min after the release started: %v (not asked, no shell: %v)", time.Since(start).Minutes(), zombies, unasked)
	for container, count := range zombies {
		assert.Zero(t, count, "defunct processes in %s", container)
	}
	table := ClusterMarkdown(results)
	t.Logf("the cluster on the real node:\n%s", table)
	js, err := json.MarshalIndent(results, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(r.out, "results.json"), js, 0o644))
	if path := os.Getenv(nodeBenchmarksEnv); path != "" && !t.Failed() {
		old, err := os.ReadFile(path)
		require.NoError(t, err)
		body := fmt.Sprintf(`## Redis Cluster on a real node

Regenerate with (as root, from the repository root, after `+"`hack/node-fixture.sh build`"+` and `+"`hack/engine-fixture.sh build`"+`):

    REDIS_SENTINEL_NODE=full REDIS_SENTINEL_NODE_BENCHMARKS="$PWD/BENCHMARKS.md" go test ./tests/lab -run TestClusterOnARealNode -timeout 60m -v

Ran %s, mode %q, %.0f s in all, on the node of the section above: the local stack with
`+"`topology: cluster`"+` (3 shards x 1 replica), applied with `+"`pulumi up`"+` through the real engine
(%d resources, the fill Job awaited, %.1f s). The client is the cluster lab's (one writer per
shard, a new key every 10 ms each, every acknowledged key read back), from the node's network
namespace through CoreDNS and the seed Service. Rows are ours only: the hand-made StatefulSet has
no resharding to compare with. *hit shard* is every shard here (each scenario touches them all).

%s
- %s

What this does not show: more than one node (each pod on a node of its own, zones), a pod lost with
its disk (the cluster lab has that), data larger than a few thousand keys for the Jobs to move.
`, time.Now().UTC().Format("2006-01-02 15:04 MST"), mode, time.Since(start).Seconds(), len(up.Changed()), upTook.Seconds(),
			table, zombieNote(zombies, unasked, start))
		require.NoError(t, os.WriteFile(path, []byte(withSection(string(old), clusterNodeSection, body)), 0o644))
	}
}

// apply sets values and runs pulumi up, which returns once the StatefulSet has rolled and the
// resharding Jobs have completed.
func (r *clusterNodeRelease) apply(t *testing.T, values map[string]any) error {
	before := r.engine.Set(values)
	start := time.Now()
	up := r.engine.Up()
	if up.Err != nil {
		return fmt.Errorf("pulumi up (%v): %v\n%s", values, up.Err, up.Log)
	}
	t.Logf("pulumi up %v (from %v) in %.1fs:\n%s", values, before, time.Since(start).Seconds(), up)
	// Measured without this wait, the scenario ended mid-roll.
	if err := r.awaitRollout(r.rel.namespace, r.rel.statefulSet.Name); err != nil {
		return fmt.Errorf("after pulumi up (%v): %v", values, err)
	}
	t.Logf("rollout done %.1fs after pulumi up began", time.Since(start).Seconds())
	for _, job := range []string{"drain", "fill"} {
		logs, _ := r.kubectl("logs", "-n", r.rel.namespace, "job/"+r.rel.statefulSet.Name+"-"+job, "--tail=8")
		t.Logf("the %s Job's last lines:\n%s", job, dropProgress(logs))
	}
	return nil
}

// dropProgress leaves out redis-cli's progress lines (a '#' per key moved).
func dropProgress(log string) string {
	var keep []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Trim(line, "#") != "" {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// run runs one scenario with a client of its own, as RunCluster does in the lab.
func (r *clusterNodeRelease) run(t *testing.T, s clusterNodeScenario) (*ClusterResult, error) {
	res := &ClusterResult{Scenario: s.Name, Title: s.Title, Setup: "ours, real node"}
	// The shape before the event and after it.
	now, rel := r.rel, r.rel.reshaped(s.shards)
	cfg := now.clientConfigFor(rel)
	cfg.DNSServer, cfg.Subnets, cfg.Password = r.env["NODE_IP"], []string{r.env["POD_RANGE"], r.env["SERVICE_RANGE"]}, r.engine.Password()
	cfg.SampleInterval = Duration(nodeSampleInterval)
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	dir := filepath.Join(r.out, s.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	c, err := startClientProcess(exec.Command(self), cfg, dir)
	if err != nil {
		return res, err
	}
	defer c.kill()
	if _, err := c.waitFor("", bootstrapTimeout, now.converged); err != nil {
		return res, fmt.Errorf("not converged before the scenario: %v", err)
	}
	time.Sleep(clusterWarmUp)
	_, samples := c.events()
	before := samples[len(samples)-1]
	eventStart := time.Now()
	if err := s.act(t, r, res); err != nil {
		return res, err
	}
	r.rel = rel
	c.awaitSettled(rel.converged)
	end := time.Now()
	check, err := c.stopAndCheck()
	if err != nil {
		return res, err
	}
	writes, samples := c.events()
	res.measure(writes, samples, check, eventStart, end, before, "", rel.converged)
	l, err := rel.limits()
	if err != nil {
		return res, err
	}
	res.Targets = s.targets(res, l)
	return res, nil
}
