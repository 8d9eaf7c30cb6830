package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClusterScenario is one thing that happens to a running Redis Cluster.
type ClusterScenario struct {
	Name  string
	Title string
	Fast  bool // part of the subset CI runs on every change
	// scaling are the shards the cluster is scaled to in turn (scale), the last change by act;
	// the changes before it prepare the run.
	scaling []int
	// act does it to the cluster that sample shows, and returns the ordinal of the pod it hit,
	// or -1 when it hit every pod. A nil act is the bootstrap itself.
	act func(c *clusterRun, sample event) (int, error)
	// targets are checked for our release only; the baseline is measured, not judged.
	targets func(r *ClusterResult, l clusterLimits) []Target
}

// Timing of the cluster scenarios.
const (
	// clusterWarmUp lets every lane write to its shard for a while before the event, so that the
	// gaps are measured from a cluster at rest.
	clusterWarmUp = 3 * time.Second
	// kubeletRestartDelay is how long the kubelet takes to notice that a container exited (its
	// PLEG relists the runtime every second) before it starts the container again.
	kubeletRestartDelay = time.Second
	// otherShardsGap: a shard that is not hit must not notice. Writes to it are every 10 ms; a
	// second allows for a loaded two-core machine.
	otherShardsGap = time.Second
)

// ClusterScenarios lists every scenario of the cluster lab, in the order they run.
var ClusterScenarios = []ClusterScenario{
	{Name: "bootstrap", Title: "bootstrap from empty",
		targets: func(r *ClusterResult, _ clusterLimits) []Target {
			return []Target{converges(r.Converge), noneLost(r.Lost, r.Acked)}
		}},
	{Name: "master-crash", Title: "master crash (SIGKILL of redis-server, restarted 1 s later with its volume)", Fast: true, act: crashClusterMaster,
		targets: func(r *ClusterResult, l clusterLimits) []Target {
			return []Target{hitShardWithin(r.HitGap, l.nodeTimeout+2*time.Second), otherShardsWithin(r.OtherGap), converges(r.Converge)}
		}},
	{Name: "recreate-empty-quick", Title: "master pod lost, re-created empty before its replica took over", Fast: true,
		act: func(c *clusterRun, s event) (int, error) { return recreateEmptyClusterMaster(c, s, false) },
		targets: func(r *ClusterResult, _ clusterLimits) []Target {
			return []Target{noneLost(r.Lost, r.Acked), allReadable(r), noTwoMasters(r.TwoMasters), otherShardsWithin(r.OtherGap), converges(r.Converge)}
		}},
	{Name: "recreate-empty-after-failover", Title: "master pod lost, re-created empty after its replica took over",
		act: func(c *clusterRun, s event) (int, error) { return recreateEmptyClusterMaster(c, s, true) },
		targets: func(r *ClusterResult, _ clusterLimits) []Target {
			return []Target{noneLost(r.Lost, r.Acked), allReadable(r), noTwoMasters(r.TwoMasters), otherShardsWithin(r.OtherGap), converges(r.Converge)}
		}},
	{Name: "full-restart", Title: "every pod restarted at once, new IPs, persistence on", Fast: true,
		act: func(c *clusterRun, _ event) (int, error) { return -1, c.forEachRedisPod(c.restartRedisPod) },
		targets: func(r *ClusterResult, _ clusterLimits) []Target {
			return []Target{converges(r.Converge), noneLost(r.Lost, r.Acked), allReadable(r)}
		}},
	{Name: "partition", Title: "master partitioned from the other pods for 30 s, the client still reaches it", act: partitionClusterMaster,
		targets: func(r *ClusterResult, l clusterLimits) []Target {
			return []Target{lossBoundedBy(r.LostSpan, r.Lost, l.maxLag), otherShardsWithin(r.OtherGap), converges(r.Converge)}
		}},
	// Writes are attributed to shards by the slot map before the event: a shard's gap is the
	// longest stretch without a write to the slots it served then, wherever they moved.
	{Name: "scale-up", Title: "shards 3 to 4 under load", scaling: []int{4}, act: scaleToTarget, targets: plannedTargets},
	{Name: "scale-down", Title: "shards 4 to 3 under load (after 3 to 4)", scaling: []int{4, 3}, act: scaleToTarget, targets: plannedTargets},
}

// scaleToTarget scales the cluster to the shape the scenario ends with.
func scaleToTarget(c *clusterRun, _ event) (int, error) { return -1, c.scale(c.target) }

// SelectCluster returns the cluster scenarios of a mode, as Select does the Sentinel ones.
func SelectCluster(mode string) ([]ClusterScenario, error) {
	return selectScenarios(mode, ClusterScenarios, func(s ClusterScenario) (string, bool) { return s.Name, s.Fast })
}

// masterOfSlot returns the ordinal of the pod that sample shows as the master serving slot.
func (c *clusterRun) masterOfSlot(sample event, slot int) (int, error) {
	for pod, n := range sample.Nodes {
		if n.Role != "master" {
			continue
		}
		for _, r := range slotRanges(n.Slots) {
			if r[0] <= slot && slot <= r[1] {
				return strconv.Atoi(pod[strings.LastIndexByte(pod, '-')+1:])
			}
		}
	}
	return 0, fmt.Errorf("lab: no master serves slot %d in the latest sample", slot)
}

// crashClusterMaster kills the redis-server of shard 0's master; the container starts again
// kubeletRestartDelay later, with its volumes, as the kubelet restarts a container that exited.
func crashClusterMaster(c *clusterRun, s event) (int, error) {
	m, err := c.masterOfSlot(s, 0)
	if err != nil {
		return m, err
	}
	redis := c.redis[m].container("redis")
	return m, redis.recreate(func() error {
		time.Sleep(kubeletRestartDelay)
		return nil
	})
}

// recreateEmptyClusterMaster loses shard 0's master with its node and its volume: the pod comes
// back with an empty disk and a new IP, a second later or once another node serves its slots.
func recreateEmptyClusterMaster(c *clusterRun, s event, afterFailover bool) (int, error) {
	m, err := c.masterOfSlot(s, 0)
	if err != nil {
		return m, err
	}
	if err := c.deleteRedisPod(m, false); err != nil {
		return m, err
	}
	if err := os.RemoveAll(c.claimDir(m)); err != nil {
		return m, err
	}
	if afterFailover {
		tookOver := func(e event) bool {
			if e.Kind != "sample" {
				return false
			}
			n, err := c.masterOfSlot(e, 0)
			return err == nil && n != m && e.Nodes[c.podName(n)].State == "ok"
		}
		if _, err := c.waitFor("", convergeTimeout, tookOver); err != nil {
			return m, fmt.Errorf("no replica took over: %v", err)
		}
	} else {
		time.Sleep(quickRecreate)
	}
	return m, c.startRedisPod(m)
}

// partitionClusterMaster cuts shard 0's master off from every other pod, both ways, while the
// client still reaches it, and heals the partition partitionHold later.
func partitionClusterMaster(c *clusterRun, s event) (int, error) {
	m, err := c.masterOfSlot(s, 0)
	if err != nil {
		return m, err
	}
	master := c.redis[m]
	cut := func(on bool) error {
		for i, p := range c.redis {
			if i == m {
				continue
			}
			if err := blackhole(master.ns, p.ip, on); err != nil {
				return err
			}
			if err := blackhole(p.ns, master.ip, on); err != nil {
				return err
			}
		}
		return nil
	}
	if err := cut(true); err != nil {
		return m, err
	}
	time.Sleep(partitionHold)
	return m, cut(false)
}

// slotRanges parses the slot ranges of CLUSTER NODES ("0-5460", "7") into [first, last] pairs.
func slotRanges(ranges []string) [][2]int {
	var out [][2]int
	for _, r := range ranges {
		first, last, found := strings.Cut(r, "-")
		lo, err1 := strconv.Atoi(first)
		hi, err2 := lo, error(nil)
		if found {
			hi, err2 = strconv.Atoi(last)
		}
		if err1 == nil && err2 == nil && 0 <= lo && lo <= hi && hi < clusterSlots {
			out = append(out, [2]int{lo, hi})
		}
	}
	return out
}

// converged reports whether a sample shows the cluster at rest: every node answers with the
// release's password and says cluster_state ok, every slot has exactly one master, every master
// serves slots and has its replicas, and every replica's link to its master is up.
func (r *clusterRelease) converged(e event) bool {
	if e.Kind != "sample" || len(e.Nodes) != r.replicas() {
		return false
	}
	claims := make([]int, clusterSlots)
	replicas := map[string]int{}
	masters := map[string]bool{}
	for _, n := range e.Nodes {
		if n.State != "ok" {
			return false
		}
		if n.Role != "master" {
			if n.Link != "up" {
				return false
			}
			replicas[n.Master]++
			continue
		}
		ranges := slotRanges(n.Slots)
		if len(ranges) == 0 {
			return false
		}
		masters[n.ID] = true
		for _, rg := range ranges {
			for s := rg[0]; s <= rg[1]; s++ {
				claims[s]++
			}
		}
	}
	for _, n := range claims {
		if n != 1 {
			return false
		}
	}
	for id := range masters {
		if replicas[id] != r.replicasPerShard {
			return false
		}
	}
	return len(masters) == r.shards
}

// RunCluster runs one cluster scenario against one setup and measures it. dir keeps the pods'
// logs, the client's events and, at the end, every node's CLUSTER NODES (cluster-nodes.txt).
func RunCluster(s ClusterScenario, setup string, rel *clusterRelease, dir string) (r *ClusterResult, err error) {
	r = &ClusterResult{Scenario: s.Name, Title: s.Title, Setup: setup}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	shapes := []*clusterRelease{rel}
	for _, shards := range s.scaling {
		shapes = append(shapes, rel.reshaped(shards))
	}
	start := time.Now()
	c, err := startClusterRun(rel, rel.clientConfigFor(shapes...), dir)
	defer func() {
		if werr := os.WriteFile(filepath.Join(dir, "cluster-nodes.txt"), []byte(c.clusterNodes()), 0o644); err == nil && werr != nil {
			err = werr
		}
		if cerr := c.close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err != nil {
		return r, err
	}
	if _, err := c.waitFor("", bootstrapTimeout, rel.converged); err != nil {
		return r, fmt.Errorf("bootstrap: %v", err)
	}
	r.Bootstrap = time.Since(start).Seconds()
	c.target = shapes[len(shapes)-1]
	for i := 1; i < len(shapes)-1; i++ {
		shape := shapes[i]
		if err := c.scale(shape); err != nil {
			return r, fmt.Errorf("scaling to %d shards first: %v", shape.shards, err)
		}
		if _, err := c.waitFor("", convergeTimeout, shape.converged); err != nil {
			return r, fmt.Errorf("scaling to %d shards first: %v", shape.shards, err)
		}
	}
	eventStart, hit := start, -1
	var before event
	if s.act != nil {
		time.Sleep(clusterWarmUp)
		_, samples := c.events()
		before = samples[len(samples)-1]
		eventStart = time.Now()
		if hit, err = s.act(c, before); err != nil {
			return r, fmt.Errorf("%s: %v", s.Name, err)
		}
	}
	c.awaitSettled(c.target.converged)
	end := time.Now()
	check, err := c.stopAndCheck()
	if err != nil {
		return r, err
	}
	writes, samples := c.events()
	if s.act == nil {
		before = samples[len(samples)-1]
	}
	r.measure(writes, samples, check, eventStart, end, before, hitPod(c, hit), c.target.converged)
	if check.Error != "" {
		r.Notes = append(r.Notes, "check: "+check.Error)
	}
	if setup != SetupBaseline {
		l, err := rel.limits()
		if err != nil {
			return r, err
		}
		r.Targets = s.targets(r, l)
	}
	return r, nil
}

// hitPod is the name of the pod a scenario hit, or "" when it hit every pod.
func hitPod(c *clusterRun, hit int) string {
	if hit < 0 {
		return ""
	}
	return c.podName(hit)
}

// ClusterSetups returns our RedisCluster as rendered (the local-cluster stack, or the render in
// manifests) and the baseline derived from it.
func ClusterSetups(repoRoot, manifests string, values map[string]string, withTLS bool) (map[string]*clusterRelease, error) {
	var files map[string][]byte
	var err error
	if manifests != "" {
		files, err = readRender(manifests)
	} else {
		files, err = renderStack(repoRoot, "local-cluster", values)
	}
	if err != nil {
		return nil, err
	}
	ours, err := parseClusterRelease(files)
	if err != nil {
		return nil, err
	}
	baseline, err := ours.asBaseline()
	if err != nil {
		return nil, err
	}
	setups := map[string]*clusterRelease{SetupOurs: ours, SetupBaseline: baseline}
	if !withTLS {
		return setups, nil
	}
	if files, err = renderWithTLS(repoRoot, manifests, "local-cluster", values); err != nil {
		return nil, err
	}
	if setups[SetupOursTLS], err = parseClusterRelease(files); err != nil {
		return nil, err
	}
	return setups, nil
}

// clusterDiagnosis is what a failed cluster run left to read: every node's CLUSTER NODES at the
// end, and the last lines of the redis container's log of every pod's latest incarnation.
func clusterDiagnosis(dir string) string {
	var b strings.Builder
	if nodes, err := os.ReadFile(filepath.Join(dir, "cluster-nodes.txt")); err == nil {
		fmt.Fprintf(&b, "CLUSTER NODES of every node at the end:\n%s\n", nodes)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "pods", "*", "redis.log"))
	latest := map[string]string{} // pod -> its latest incarnation's log
	for _, log := range logs {
		incarnation := filepath.Base(filepath.Dir(log))
		pod := incarnation[:strings.LastIndexByte(incarnation, '-')]
		if log > latest[pod] {
			latest[pod] = log
		}
	}
	pods := make([]string, 0, len(latest))
	for pod := range latest {
		pods = append(pods, pod)
	}
	slices.Sort(pods)
	for _, pod := range pods {
		body, _ := os.ReadFile(latest[pod])
		lines := strings.Split(strings.TrimRight(string(body), "\n"), "\n")
		fmt.Fprintf(&b, "the end of %s:\n%s\n", latest[pod], strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
	return b.String()
}
