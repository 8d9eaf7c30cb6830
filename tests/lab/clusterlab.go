package lab

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The cluster lab runs the `local-cluster` stack's render (components.NewRedisCluster) in the
// lab's pods, like the Sentinel lab runs the `local` stack's, and the hand-made Redis Cluster
// StatefulSet of blog posts as its baseline.

// clusterRelease is what the lab runs of a RedisCluster's render.
type clusterRelease struct {
	workload
	seedService      string // the Service in front of every node
	shards           int    // the topology ConfigMap's values
	replicasPerShard int
	// reshardJobs are the drain and fill Jobs, by mode (nil in the baseline, which has none).
	reshardJobs map[string]*batchv1.Job
	// createByHand: the cluster exists only once someone runs `redis-cli --cluster create`, and
	// changes shape only by the redis-cli steps of Redis's scaling tutorial (scaleByHand).
	createByHand bool
}

// parseClusterRelease picks out of rendered files the objects the lab runs of a RedisCluster.
func parseClusterRelease(files map[string][]byte) (*clusterRelease, error) {
	o, err := parseObjects(files)
	if err != nil {
		return nil, err
	}
	w, err := o.workload()
	if err != nil {
		return nil, err
	}
	rel := clusterRelease{workload: w}
	for _, svc := range o.services {
		if svc.Spec.ClusterIP != corev1.ClusterIPNone && svc.Spec.Selector["app.kubernetes.io/component"] == "redis" {
			rel.seedService = fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, w.namespace)
		}
	}
	if rel.seedService == "" {
		return nil, fmt.Errorf("lab: the render has no seed Service")
	}
	rel.extraNames = []string{rel.seedService}
	rel.reshardJobs = map[string]*batchv1.Job{}
	for i, job := range o.jobs {
		if job.Labels["app.kubernetes.io/component"] == "reshard" {
			command := job.Spec.Template.Spec.Containers[0].Command
			rel.reshardJobs[command[len(command)-1]] = &o.jobs[i]
		}
	}
	if rel.reshardJobs["drain"] == nil || rel.reshardJobs["fill"] == nil {
		return nil, fmt.Errorf("lab: the render lacks the drain or the fill Job")
	}
	if rel.shards, err = strconv.Atoi(w.configMap["shards"]); err != nil {
		return nil, fmt.Errorf("lab: the topology ConfigMap's shards: %v", err)
	}
	if rel.replicasPerShard, err = strconv.Atoi(w.configMap["replicas-per-shard"]); err != nil {
		return nil, fmt.Errorf("lab: the topology ConfigMap's replicas-per-shard: %v", err)
	}
	if rel.shards*(1+rel.replicasPerShard) != rel.replicas() {
		return nil, fmt.Errorf("lab: %d shards of 1+%d pods, but the StatefulSet has %d", rel.shards, rel.replicasPerShard, rel.replicas())
	}
	return &rel, nil
}

// clusterLimits are the release's settings that bound the cluster lab's targets.
type clusterLimits struct {
	nodeTimeout time.Duration // cluster-node-timeout
	maxLag      time.Duration // min-replicas-max-lag
}

func (r *clusterRelease) limits() (clusterLimits, error) {
	timeout, err := r.configValue("cluster.conf", "cluster-node-timeout")
	if err != nil {
		return clusterLimits{}, err
	}
	maxLag, err := r.configValue("cluster.conf", "min-replicas-max-lag")
	if err != nil {
		return clusterLimits{}, err
	}
	return clusterLimits{nodeTimeout: time.Duration(timeout) * time.Millisecond, maxLag: time.Duration(maxLag) * time.Second}, nil
}

// asBaseline returns the hand-made setup in the same pods: the baseline's config and start
// script (tests/lab/baseline/cluster) with the release's node timeout, the pod's IP and the
// password in its environment (the script writes the IP into nodes.conf), and no preStop hook.
func (r *clusterRelease) asBaseline() (*clusterRelease, error) {
	timeout, err := r.configValue("cluster.conf", "cluster-node-timeout")
	if err != nil {
		return nil, err
	}
	out := *r
	out.statefulSet = *r.statefulSet.DeepCopy()
	spec := &out.statefulSet.Spec.Template.Spec
	for i := range spec.Containers {
		spec.Containers[i].Lifecycle = nil
	}
	spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: "POD_IP",
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}})
	passwordEnv(spec)
	out.credentialsJob, out.reshardJobs = nil, nil
	files, err := renderBaseline("baseline/cluster", map[string]any{"NodeTimeoutMilliseconds": timeout})
	if err != nil {
		return nil, err
	}
	// The topology ConfigMap is still mounted; nothing of the baseline reads it.
	out.configMap = merge(files, map[string]string{"shards": r.configMap["shards"], "replicas-per-shard": r.configMap["replicas-per-shard"]})
	out.createByHand = true
	return &out, nil
}

// reshaped is the release as its render with shards shards has it: the StatefulSet's replicas,
// the topology's shards, the Jobs' SHARDS and PODS (TestReshapedIsTheRenderOfThatShape holds it
// to such a render).
func (r *clusterRelease) reshaped(shards int) *clusterRelease {
	out := *r
	out.statefulSet = *r.statefulSet.DeepCopy()
	pods := int32(shards * (1 + r.replicasPerShard))
	out.statefulSet.Spec.Replicas = &pods
	out.shards = shards
	out.configMap = merge(maps.Clone(r.configMap), map[string]string{"shards": strconv.Itoa(shards)})
	withEnv := func(job *batchv1.Job) *batchv1.Job {
		if job == nil {
			return nil
		}
		job = job.DeepCopy()
		env := job.Spec.Template.Spec.Containers[0].Env
		for i := range env {
			switch env[i].Name {
			case "SHARDS":
				env[i].Value = strconv.Itoa(shards)
			case "PODS":
				env[i].Value = strconv.Itoa(int(pods))
			}
		}
		return job
	}
	out.credentialsJob = withEnv(r.credentialsJob)
	if r.reshardJobs != nil {
		out.reshardJobs = map[string]*batchv1.Job{}
		for mode, job := range r.reshardJobs {
			out.reshardJobs[mode] = withEnv(job)
		}
	}
	return &out
}

// clientConfigFor is the client of a run that starts with the release's shape and goes through
// shapes: it samples every pod of the widest (a pod that does not exist is missing from a
// sample, and a shape converges only with exactly its own pods there), and its writers split the
// slot space as many ways as the release has shards, whatever the shape.
func (r *clusterRelease) clientConfigFor(shapes ...*clusterRelease) clientConfig {
	widest := r
	for _, s := range shapes {
		if s.replicas() > widest.replicas() {
			widest = s
		}
	}
	cfg := widest.clientConfig()
	cfg.Cluster.Lanes = r.shards
	return cfg
}

// clientConfig is what the client needs to know of the release.
func (r *clusterRelease) clientConfig() clientConfig {
	port, _ := strconv.Atoi(r.env("REDIS_PORT"))
	var pods []string
	for i := range r.replicas() {
		pods = append(pods, fmt.Sprintf("%s-%d", r.statefulSet.Name, i))
	}
	return clientConfig{
		Pods: pods, PodDomain: r.podDomain(), RedisPort: port,
		WriteInterval: Duration(clusterWriteInterval), SampleInterval: Duration(sampleInterval),
		Cluster: &clusterClientConfig{SeedService: r.seedService, Lanes: r.shards},
		CACert:  r.certificate["ca.crt"],
	}
}

// clusterWriteInterval is each lane's: with three shards, 300 writes a second in all, a write to
// every shard every 10 ms.
const clusterWriteInterval = writeInterval

// clusterRun is one run of a RedisCluster release (or the baseline): its pods and the client.
type clusterRun struct {
	*podSet
	rel *clusterRelease // the shape the pods run now
	// target is the shape the scenario ends with (the release's own unless it scales).
	target *clusterRelease
	*clientProcess
}

// startClusterRun starts every pod and a client of cfg; for the baseline it then creates the
// cluster by hand, as its users do once.
func startClusterRun(rel *clusterRelease, cfg clientConfig, dir string) (*clusterRun, error) {
	c := &clusterRun{rel: rel, target: rel}
	register(c)
	var err error
	if c.podSet, err = startPodSet(&rel.workload, dir); err != nil {
		return c, err
	}
	if c.clientProcess, err = c.startClient(cfg); err != nil {
		return c, err
	}
	if rel.createByHand {
		return c, c.createByHand()
	}
	return c, nil
}

// createByHand runs, in pod 0, what the baseline's users run once all pods are up:
// `redis-cli --cluster create IP:6379 ... --cluster-replicas N`, the pods' IPs in ordinal order.
// It retries until every server answers (redis-cli checks them all before it changes anything).
func (c *clusterRun) createByHand() error {
	args := []string{c.rel.env("CLI_BIN"), "--cluster", "create"}
	for _, p := range c.redis {
		args = append(args, p.ip+":"+c.rel.env("REDIS_PORT"))
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(c.rel.replicasPerShard), "--cluster-yes")
	_, err := c.byHand(args...)
	return err
}

// byHand runs a redis-cli step in pod 0 as a person would: again until it succeeds (a server
// that is not up yet, nodes that do not agree yet), for up to bootstrapTimeout. redis-cli exits 0
// when a command gets an error reply: that fails the step too. Its output goes to by-hand.log.
func (c *clusterRun) byHand(args ...string) ([]byte, error) {
	deadline := time.Now().Add(bootstrapTimeout)
	for {
		out, err := c.exec(0, args...)
		if werr := appendFile(filepath.Join(c.dir, "by-hand.log"), fmt.Sprintf("$ %s\n%s(%v)\n", strings.Join(args, " "), out, err)); werr != nil {
			return out, werr
		}
		if err == nil && !bytes.HasPrefix(out, []byte("ERR ")) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%s: %v: %s", strings.Join(args[1:], " "), err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// awaitKnownNodes waits until every pod's CLUSTER INFO counts n known nodes.
func (c *clusterRun) awaitKnownNodes(n int) error {
	deadline := time.Now().Add(convergeTimeout)
	for i := 0; i < len(c.redis); {
		out, err := c.exec(i, c.rel.env("CLI_BIN"), "-h", c.redis[i].ip, "-p", c.rel.env("REDIS_PORT"), "CLUSTER", "INFO")
		if err == nil && strings.Contains(string(out), fmt.Sprintf("cluster_known_nodes:%d\r", n)) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not know %d nodes after %s: %v\n%s", c.podName(i), n, convergeTimeout, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// appendFile adds text at the end of the file at path.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// scale changes the cluster to the shape of to, as its setup does.
//
// Ours as `pulumi up` does (NewRedisCluster's order): the drain Job of the new render, with the
// running topology mounted; the topology ConfigMap's new data in every pod; the StatefulSet's
// replicas; then the fill Job.
//
// The baseline by the steps of Redis's scaling tutorial, each run as soon as the one before
// succeeds (scaleByHand).
func (c *clusterRun) scale(to *clusterRelease) error {
	if c.rel.createByHand {
		return c.scaleByHand(to)
	}
	if err := c.runJob(to.reshardJobs["drain"]); err != nil {
		return err
	}
	if err := c.reshape(to); err != nil {
		return err
	}
	return c.runJob(to.reshardJobs["fill"])
}

// reshape makes to the release the pods run, and its StatefulSet's size theirs.
func (c *clusterRun) reshape(to *clusterRelease) error {
	if err := c.update(&to.workload); err != nil {
		return err
	}
	c.rel = to
	return c.resize()
}

// scaleByHand, for the baseline: to add shards, the StatefulSet's new pods are started and join
// as empty masters (`--cluster add-node`), each new group's others are made its first pod's
// replicas (`CLUSTER REPLICATE`, the tutorial's other way: with `--cluster-slave` add-node met a
// new node that had not heard of its master yet, "ERR Unknown node", and left it an empty master
// that no later add-node would take), and `--cluster rebalance --cluster-use-empty-masters` moves
// slots to the new masters. To remove shards, `--cluster rebalance --cluster-weight ID=0`
// empties the masters among the pods that go, `--cluster del-node` removes every node of them,
// and then the StatefulSet deletes the pods.
func (c *clusterRun) scaleByHand(to *clusterRelease) error {
	cli, port := c.rel.env("CLI_BIN"), c.rel.env("REDIS_PORT")
	entry := c.redis[0].ip + ":" + port
	had, want := c.rel.replicas(), to.replicas()
	if want > had {
		if err := c.reshape(to); err != nil {
			return err
		}
		group := 1 + to.replicasPerShard
		var masterID string
		for i := had; i < want; i++ {
			if _, err := c.byHand(cli, "--cluster", "add-node", c.redis[i].ip+":"+port, entry); err != nil {
				return err
			}
			if (i-had)%group == 0 {
				id, err := c.byHand(cli, "-h", c.redis[i].ip, "-p", port, "CLUSTER", "MYID")
				if err != nil {
					return err
				}
				masterID = strings.TrimSpace(string(id))
			} else if _, err := c.byHand(cli, "-h", c.redis[i].ip, "-p", port, "CLUSTER", "REPLICATE", masterID); err != nil {
				return err
			}
		}
		// Run at once, the rebalance met a node that did not know the new master yet and left a
		// slot half-moved ("ERR I don't know about node"): a careful person waits for the gossip.
		if err := c.awaitKnownNodes(want); err != nil {
			return err
		}
		_, err := c.byHand(cli, "--cluster", "rebalance", entry, "--cluster-use-empty-masters")
		return err
	}
	nodes, err := c.byHand(cli, "-h", c.redis[0].ip, "-p", port, "CLUSTER", "NODES")
	if err != nil {
		return err
	}
	going := map[string]bool{} // the addresses of the pods that go
	for i := want; i < had; i++ {
		going[c.redis[i].ip+":"+port] = true
	}
	var weights, ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(nodes)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		if !going[addr] {
			continue
		}
		ids = append(ids, f[0])
		if strings.Contains(f[2], "master") {
			weights = append(weights, "--cluster-weight", f[0]+"=0")
		}
	}
	if len(ids) != had-want {
		return fmt.Errorf("CLUSTER NODES of pod 0 names %d of the %d pods that go:\n%s", len(ids), had-want, nodes)
	}
	if len(weights) > 0 {
		if _, err := c.byHand(append([]string{cli, "--cluster", "rebalance", entry}, weights...)...); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if _, err := c.byHand(cli, "--cluster", "del-node", entry, id); err != nil {
			return err
		}
	}
	return c.reshape(to)
}

// exec runs argv in pod i's redis container, as `kubectl exec` would, with the container's
// environment.
func (c *podSet) exec(i int, argv ...string) ([]byte, error) {
	p := c.redis[i]
	if p == nil {
		return nil, fmt.Errorf("pod %d does not exist", i)
	}
	ct := p.container("redis")
	cmd, err := p.enter(ct.spec, argv, ct.env)
	if err != nil {
		return nil, err
	}
	return cmd.CombinedOutput()
}

// clusterNodes is CLUSTER NODES of every pod, for a failure's report: as the default user, or as
// our release's keeper user while a node has no role yet and refuses the password.
func (c *clusterRun) clusterNodes() string {
	var b strings.Builder
	for i := range c.redis {
		fmt.Fprintf(&b, "## %s\n", c.podName(i))
		out, err := c.exec(i, "sh", "-c", `export REDISCLI_AUTH="$(cat "$AUTH_DIR/password")"; tls=${TLS_DIR:+--tls --cacert $TLS_DIR/ca.crt}; "$CLI_BIN" $tls CLUSTER NODES 2>&1 | grep -v AUTH || "$CLI_BIN" $tls --user keeper CLUSTER NODES 2>&1`)
		if err != nil {
			fmt.Fprintf(&b, "(%v) ", err)
		}
		b.Write(out)
	}
	return b.String()
}

// close stops the client and every pod, and removes the namespaces.
func (c *clusterRun) close() error {
	defer unregister(c)
	if c.clientProcess != nil {
		c.clientProcess.kill()
	}
	return c.podSet.close()
}
