package lab

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Child processes of the lab are this test binary run again with roleEnv set.
const (
	roleEnv    = "REDIS_SENTINEL_LAB_ROLE"
	roleDNS    = "dns"
	roleClient = "client"
	clientEnv  = "REDIS_SENTINEL_LAB_CLIENT"
)

// RunRole runs the child role named in the environment and reports whether there was one.
// A test binary calls it first thing in TestMain.
func RunRole() (bool, error) {
	switch os.Getenv(roleEnv) {
	case roleDNS:
		return true, serveDNS()
	case roleClient:
		return true, runClient()
	}
	return false, nil
}

// labPassword is the Secret's value the lab supplies to the pods.
const labPassword = "lab-password-0123456789abcdef"

// Timing of the client's work.
const (
	writeInterval  = 10 * time.Millisecond
	sampleInterval = 50 * time.Millisecond
)

// cluster is one run of a release: its network, DNS, pods and client.
type cluster struct {
	rel    *release
	dir    string
	net    *network
	dns    *dnsServer
	redis  []*pod // by ordinal; nil while a pod does not exist
	podsMu sync.Mutex
	proxy  *pod
	*clientProcess
}

// running is the cluster that exists now, for CloseOnSignal.
var running struct {
	sync.Mutex
	c *cluster
}

// CloseOnSignal makes SIGINT and SIGTERM (an interrupted `go test`, a CI job cancelled) close the
// running cluster before the test binary exits: deferred functions and test cleanups do not run
// then, and every process and namespace of the lab would be left behind.
func CloseOnSignal() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		running.Lock()
		c := running.c
		running.Unlock()
		if c != nil {
			if err := c.close(); err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
			}
		}
		fmt.Fprintf(os.Stderr, "lab: %v: stopped the running pods and removed their namespaces\n", sig)
		os.Exit(1)
	}()
}

// startCluster creates the network and DNS, the redis pods, the HAProxy pod and the client.
func startCluster(rel *release, dir string) (*cluster, error) {
	c := &cluster{rel: rel, dir: dir}
	running.Lock()
	running.c = c
	running.Unlock()
	var err error
	if c.net, err = newNetwork(); err != nil {
		return c, err
	}
	if c.dns, err = startDNS(c.net.bridge); err != nil {
		return c, err
	}
	c.redis = make([]*pod, rel.replicas())
	for i := range c.redis {
		if err := c.startRedisPod(i); err != nil {
			return c, err
		}
	}
	proxy := podRun{
		name: rel.haproxy.Name + "-0", namespace: rel.namespace, spec: rel.haproxy.Spec.Template.Spec,
		configMap: rel.configMap, secret: map[string]string{"password": labPassword},
		dir: filepath.Join(dir, "pods", rel.haproxy.Name), dnsServer: bridgeAddr,
	}
	if c.proxy, err = startPod(c.net, proxy); err != nil {
		return c, err
	}
	if err := c.dns.set(c.serviceName(rel.masterService), c.proxy.ip); err != nil {
		return c, err
	}
	return c, c.startClient()
}

func (c *cluster) serviceName(svc string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", svc, c.rel.namespace)
}

func (c *cluster) podName(i int) string { return fmt.Sprintf("%s-%d", c.rel.statefulSet.Name, i) }

// claimDir is the "PersistentVolume" of pod i: it outlives the pod, as a PVC does.
func (c *cluster) claimDir(i int) string {
	return filepath.Join(c.dir, "volumes", c.podName(i))
}

func (c *cluster) startRedisPod(i int) error {
	sts := c.rel.statefulSet
	claims := map[string]string{}
	for _, t := range sts.Spec.VolumeClaimTemplates {
		claims[t.Name] = filepath.Join(c.claimDir(i), t.Name)
	}
	spec := *sts.Spec.Template.Spec.DeepCopy()
	spec.Hostname, spec.Subdomain = c.podName(i), c.rel.headless
	run := podRun{
		name: c.podName(i), namespace: c.rel.namespace, subdomain: c.rel.headless, spec: spec,
		configMap: c.rel.configMap, secret: map[string]string{"password": labPassword}, claims: claims,
		dir:       filepath.Join(c.dir, "pods", fmt.Sprintf("%s-%d", c.podName(i), time.Now().UnixNano())),
		dnsServer: bridgeAddr,
	}
	p, err := startPod(c.net, run)
	c.podsMu.Lock()
	defer c.podsMu.Unlock()
	c.redis[i] = p
	if err != nil {
		return err
	}
	return c.publish()
}

// publish points the pods' DNS names, and the headless Service's, at the pods that exist now.
func (c *cluster) publish() error {
	var all []string
	for i, p := range c.redis {
		name := fmt.Sprintf("%s.%s", c.podName(i), c.rel.podDomain())
		if p == nil {
			if err := c.dns.set(name); err != nil {
				return err
			}
			continue
		}
		all = append(all, p.ip)
		if err := c.dns.set(name, p.ip); err != nil {
			return err
		}
	}
	return c.dns.set(c.rel.podDomain(), all...)
}

// deleteRedisPod removes pod i, gracefully (preStop, SIGTERM) or as a node loss would.
func (c *cluster) deleteRedisPod(i int, graceful bool) error {
	p := c.redis[i]
	var err error
	if graceful {
		err = p.delete(c.net)
	} else {
		err = p.kill(c.net)
	}
	c.podsMu.Lock()
	defer c.podsMu.Unlock()
	c.redis[i] = nil
	if perr := c.publish(); err == nil {
		err = perr
	}
	return err
}

// restartRedisPod deletes pod i gracefully and, like the StatefulSet controller, creates it
// again with its volumes as soon as it is gone.
func (c *cluster) restartRedisPod(i int) error {
	if err := c.deleteRedisPod(i, true); err != nil {
		return err
	}
	return c.startRedisPod(i)
}

func (c *cluster) startClient() error {
	ns, _, err := c.net.addHost("client")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := c.rel.clientConfig()
	cfg.DNSServer, cfg.Subnets, cfg.Password = bridgeAddr, []string{labSubnet.String()}, labPassword
	cfg.HealthService = cfg.MasterService // the lab's DNS names the HAProxy pod so
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", self)
	c.clientProcess, err = startClientProcess(cmd, cfg, c.dir)
	return err
}

// close stops everything the cluster started and removes its namespaces.
func (c *cluster) close() error {
	defer func() {
		running.Lock()
		if running.c == c {
			running.c = nil
		}
		running.Unlock()
	}()
	if c.clientProcess != nil {
		c.clientProcess.kill()
	}
	for i, p := range c.redis {
		if p != nil {
			_ = p.kill(c.net)
			c.redis[i] = nil
		}
	}
	if c.proxy != nil {
		_ = c.proxy.kill(c.net)
	}
	if c.dns != nil {
		c.dns.stop()
	}
	var err error
	if c.net != nil {
		err = c.net.close()
	}
	removeCreatedMountPoints()
	return err
}
