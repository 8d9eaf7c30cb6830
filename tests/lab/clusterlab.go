package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	// createByHand: the cluster exists only once someone runs `redis-cli --cluster create`.
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
	out.credentialsJob = nil
	files, err := renderBaseline("baseline/cluster", map[string]any{"NodeTimeoutMilliseconds": timeout})
	if err != nil {
		return nil, err
	}
	// The topology ConfigMap is still mounted; nothing of the baseline reads it.
	out.configMap = merge(files, map[string]string{"shards": r.configMap["shards"], "replicas-per-shard": r.configMap["replicas-per-shard"]})
	out.createByHand = true
	return &out, nil
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
	}
}

// clusterWriteInterval is each lane's: with three shards, 300 writes a second in all, a write to
// every shard every 10 ms.
const clusterWriteInterval = writeInterval

// clusterRun is one run of a RedisCluster release (or the baseline): its pods and the client.
type clusterRun struct {
	*podSet
	rel *clusterRelease
	*clientProcess
}

// startClusterRun starts every pod and the client; for the baseline it then creates the cluster
// by hand, as its users do once.
func startClusterRun(rel *clusterRelease, dir string) (*clusterRun, error) {
	c := &clusterRun{rel: rel}
	register(c)
	var err error
	if c.podSet, err = startPodSet(&rel.workload, dir); err != nil {
		return c, err
	}
	if c.clientProcess, err = c.startClient(rel.clientConfig()); err != nil {
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
	deadline := time.Now().Add(bootstrapTimeout)
	for {
		out, err := c.exec(0, args...)
		if err == nil {
			return os.WriteFile(filepath.Join(c.dir, "cluster-create.log"), out, 0o644)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
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
		out, err := c.exec(i, "sh", "-c", `export REDISCLI_AUTH="$(cat "$AUTH_DIR/password")"; "$CLI_BIN" CLUSTER NODES 2>&1 | grep -v AUTH || "$CLI_BIN" --user keeper CLUSTER NODES 2>&1`)
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
