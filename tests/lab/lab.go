package lab

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
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

// labPassword and labMonitorPassword are the Secret's values the lab supplies to the pods.
const (
	labPassword        = "lab-password-0123456789abcdef"
	labMonitorPassword = "lab-monitor-0123456789abcdef"
)

// labSecret is the release's Secret as the lab supplies it.
func labSecret() map[string]string {
	return map[string]string{"password": labPassword, "monitor-password": labMonitorPassword}
}

// Timing of the client's work.
const (
	writeInterval  = 10 * time.Millisecond
	sampleInterval = 50 * time.Millisecond
)

// podSet is the part of a run that both kinds of release share: the network, the DNS server and
// the StatefulSet's pods, each with its claim directory.
type podSet struct {
	w     *workload
	dir   string
	net   *network
	dns   *dnsServer
	redis []*pod // by ordinal; nil while a pod does not exist
	// secret is the release's Secret now: what pods that start get (rotate changes it); and
	// certificate, its certificate Secret's, with TLS (renewCertificate changes it).
	secret, certificate map[string]string
	podsMu              sync.Mutex
}

// sentinelRun is one run of a Sentinel release: its pods, the HAProxy pod and the client.
type sentinelRun struct {
	*podSet
	rel   *release
	proxy *pod
	*clientProcess
}

// running is the run that exists now, for CloseOnSignal.
var running struct {
	sync.Mutex
	c interface{ close() error }
}

// CloseOnSignal makes SIGINT and SIGTERM (an interrupted `go test`, a CI job cancelled) close the
// running run before the test binary exits: deferred functions and test cleanups do not run
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

// register makes c the running run; unregister undoes it when c closes.
func register(c interface{ close() error }) {
	running.Lock()
	running.c = c
	running.Unlock()
}

func unregister(c interface{ close() error }) {
	running.Lock()
	if running.c == c {
		running.c = nil
	}
	running.Unlock()
}

// startPodSet creates the network and DNS and starts every pod of the StatefulSet. It returns
// what it made so far with an error, for the caller to close.
func startPodSet(w *workload, dir string) (*podSet, error) {
	s := &podSet{w: w, dir: dir, secret: labSecret(), certificate: w.certificate}
	// A run starts with empty volumes: a report directory used before holds the last run's.
	if err := os.RemoveAll(dir); err != nil {
		return s, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return s, err
	}
	var err error
	if s.net, err = newNetwork(); err != nil {
		return s, err
	}
	if s.dns, err = startDNS(s.net.bridge); err != nil {
		return s, err
	}
	s.redis = make([]*pod, w.replicas())
	for i := range s.redis {
		if err := s.startRedisPod(i); err != nil {
			return s, err
		}
	}
	return s, nil
}

// startSentinelRun starts the release's pods, the HAProxy pod and the client.
func startSentinelRun(rel *release, dir string) (*sentinelRun, error) {
	c := &sentinelRun{rel: rel}
	register(c)
	var err error
	if c.podSet, err = startPodSet(&rel.workload, dir); err != nil {
		return c, err
	}
	proxy := podRun{
		name: rel.haproxy.Name + "-0", namespace: rel.namespace, spec: rel.haproxy.Spec.Template.Spec,
		configMap: rel.configMap, secret: labSecret(), certificate: rel.certificate,
		dir: filepath.Join(dir, "pods", rel.haproxy.Name), dnsServer: bridgeAddr,
	}
	if c.proxy, err = startPod(c.net, proxy); err != nil {
		return c, err
	}
	if err := c.dns.set(c.serviceName(rel.masterService), c.proxy.ip); err != nil {
		return c, err
	}
	cfg := rel.clientConfig()
	cfg.HealthService = cfg.MasterService // the lab's DNS names the HAProxy pod so
	c.clientProcess, err = c.startClient(cfg)
	return c, err
}

func (s *podSet) serviceName(svc string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", svc, s.w.namespace)
}

func (s *podSet) podName(i int) string { return fmt.Sprintf("%s-%d", s.w.statefulSet.Name, i) }

// podFQDN is pod i's stable DNS name, under the headless Service.
func (s *podSet) podFQDN(i int) string { return s.podName(i) + "." + s.w.podDomain() }

// claimDir is the "PersistentVolume" of pod i: it outlives the pod, as a PVC does.
func (s *podSet) claimDir(i int) string {
	return filepath.Join(s.dir, "volumes", s.podName(i))
}

func (s *podSet) startRedisPod(i int) error {
	sts := s.w.statefulSet
	claims := map[string]string{}
	for _, t := range sts.Spec.VolumeClaimTemplates {
		claims[t.Name] = filepath.Join(s.claimDir(i), t.Name)
	}
	spec := *sts.Spec.Template.Spec.DeepCopy()
	spec.Hostname, spec.Subdomain = s.podName(i), s.w.headless
	run := podRun{
		name: s.podName(i), namespace: s.w.namespace, subdomain: s.w.headless, spec: spec,
		configMap: s.w.configMap, secret: s.currentSecret(), certificate: s.currentCertificate(), claims: claims,
		dir:       filepath.Join(s.dir, "pods", fmt.Sprintf("%s-%d", s.podName(i), time.Now().UnixNano())),
		dnsServer: bridgeAddr,
	}
	p, err := startPod(s.net, run)
	s.podsMu.Lock()
	defer s.podsMu.Unlock()
	s.redis[i] = p
	if err != nil {
		return err
	}
	return s.publish()
}

// publish points the pods' DNS names, and the headless Service's, at the pods that exist now;
// so do the names in extraNames (a Service in front of every pod: the lab runs no probes, so
// none is ever left out as not ready).
func (s *podSet) publish() error {
	var all []string
	for i, p := range s.redis {
		if p == nil {
			if err := s.dns.set(s.podFQDN(i)); err != nil {
				return err
			}
			continue
		}
		all = append(all, p.ip)
		if err := s.dns.set(s.podFQDN(i), p.ip); err != nil {
			return err
		}
	}
	for _, name := range append([]string{s.w.podDomain()}, s.w.extraNames...) {
		if err := s.dns.set(name, all...); err != nil {
			return err
		}
	}
	return nil
}

func (s *podSet) currentSecret() map[string]string {
	s.podsMu.Lock()
	defer s.podsMu.Unlock()
	return maps.Clone(s.secret)
}

func (s *podSet) currentCertificate() map[string]string {
	s.podsMu.Lock()
	defer s.podsMu.Unlock()
	return maps.Clone(s.certificate)
}

// rotate changes the release's Secret as `pulumi up` does: pods that start from now on get the
// new data, the running ones' Secret files are written anew (the kubelet's update), and the
// credentials Job runs, as Pulumi runs it after the change. The files of pod lagging (-1: none)
// are written only once the Job is done: the kubelet may update a pod a minute or two after the
// Secret changed, and the scripts of such a pod must find a password that still works.
func (s *podSet) rotate(secret map[string]string, lagging int) error {
	var late *pod
	err := s.changeRunning(func() {
		s.secret = maps.Clone(secret)
		if lagging >= 0 {
			late = s.redis[lagging]
		}
	}, func(p *pod) error {
		if p == late {
			return nil
		}
		return p.updateSecret(secret)
	})
	if err != nil {
		return err
	}
	if err := s.runJob(s.w.credentialsJob); err != nil {
		return err
	}
	if late != nil {
		return late.updateSecret(secret)
	}
	return nil
}

// runJob runs a Job's pod once to its end, as the Job controller would on its first try, and
// returns the pod's log when it fails.
func (s *podSet) runJob(job *batchv1.Job) error {
	if job == nil {
		return fmt.Errorf("lab: the release has no such Job")
	}
	run := podRun{
		name: job.Name, namespace: s.w.namespace, spec: *job.Spec.Template.Spec.DeepCopy(),
		configMap: s.w.configMap, secret: s.currentSecret(), certificate: s.currentCertificate(),
		dir:       filepath.Join(s.dir, "jobs", fmt.Sprintf("%s-%d", job.Name, time.Now().UnixNano())),
		dnsServer: bridgeAddr,
	}
	p, err := startPod(s.net, run)
	if err != nil {
		if p != nil {
			_ = p.kill(s.net)
		}
		return err
	}
	defer func() { _ = p.kill(s.net) }()
	c := p.containers[0]
	if code := c.exitCode(jobTimeout); code != 0 {
		log, _ := os.ReadFile(c.log.Name())
		return fmt.Errorf("lab: Job %s exited %d; its log:\n%s", job.Name, code, log)
	}
	return nil
}

// jobTimeout bounds a Job's run in the lab.
const jobTimeout = 2 * time.Minute

// deleteRedisPod removes pod i, gracefully (preStop, SIGTERM) or as a node loss would.
func (s *podSet) deleteRedisPod(i int, graceful bool) error {
	p := s.redis[i]
	var err error
	if graceful {
		err = p.delete(s.net)
	} else {
		err = p.kill(s.net)
	}
	s.podsMu.Lock()
	defer s.podsMu.Unlock()
	s.redis[i] = nil
	if perr := s.publish(); err == nil {
		err = perr
	}
	return err
}

// restartRedisPod deletes pod i gracefully and, like the StatefulSet controller, creates it
// again with its volumes as soon as it is gone.
func (s *podSet) restartRedisPod(i int) error {
	if err := s.deleteRedisPod(i, true); err != nil {
		return err
	}
	return s.startRedisPod(i)
}

// forEachRedisPod runs f for every ordinal at once, and returns the first error.
func (s *podSet) forEachRedisPod(f func(i int) error) error {
	return forEachOrdinal(0, len(s.redis), f)
}

// forEachOrdinal runs f for every ordinal of [from, to) at once, and returns the first error.
func forEachOrdinal(from, to int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, to-from)
	for i := from; i < to; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i-from] = f(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// update makes w the release the pods run, as `pulumi up` changes its objects: the running pods'
// ConfigMap volumes are written anew (the kubelet's update of a mounted ConfigMap), and pods that
// start from now on are w's. It changes no pod's spec: what differs must be the StatefulSet's
// replicas or ConfigMap data only.
func (s *podSet) update(w *workload) error {
	return s.changeRunning(func() { s.w = w }, func(p *pod) error { return p.writeConfigMapVolumes(w.configMap) })
}

// changeRunning makes change, under the pods' lock, to what pods that start from now on get, and
// then write to every running pod, as the kubelet writes a running pod's volumes anew.
func (s *podSet) changeRunning(change func(), write func(*pod) error) error {
	s.podsMu.Lock()
	change()
	pods := slices.Clone(s.redis)
	s.podsMu.Unlock()
	for _, p := range pods {
		if p != nil {
			if err := write(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// resize scales the StatefulSet to its replicas, as the controller does with the Parallel
// policy: the new ordinals start at once, or the ordinals from replicas on are deleted at once,
// gracefully (preStop, SIGTERM).
func (s *podSet) resize() error {
	had, want := len(s.redis), s.w.replicas()
	if want > had {
		s.podsMu.Lock()
		s.redis = append(s.redis, make([]*pod, want-had)...)
		s.podsMu.Unlock()
		return forEachOrdinal(had, want, s.startRedisPod)
	}
	if err := forEachOrdinal(want, had, func(i int) error { return s.deleteRedisPod(i, true) }); err != nil {
		return err
	}
	s.podsMu.Lock()
	defer s.podsMu.Unlock()
	s.redis = s.redis[:want]
	return nil
}

// close stops every pod and the DNS server and removes the namespaces; s may be partly made.
func (s *podSet) close() error {
	if s == nil {
		return nil
	}
	for i, p := range s.redis {
		if p != nil {
			_ = p.kill(s.net)
			s.redis[i] = nil
		}
	}
	if s.dns != nil {
		s.dns.stop()
	}
	var err error
	if s.net != nil {
		err = s.net.close()
	}
	removeCreatedMountPoints()
	return err
}

// startClient starts the client in a namespace of its own on the bridge, with the lab's DNS
// server, subnet and password added to cfg.
func (s *podSet) startClient(cfg clientConfig) (*clientProcess, error) {
	ns, _, err := s.net.addHost("client")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg.DNSServer, cfg.Subnets, cfg.Password = bridgeAddr, []string{labSubnet.String()}, labPassword
	return startClientProcess(exec.Command("nsenter", "--net=/run/netns/"+ns, "--", self), cfg, s.dir)
}

// close stops everything the run started and removes its namespaces.
func (c *sentinelRun) close() error {
	defer unregister(c)
	if c.clientProcess != nil {
		c.clientProcess.kill()
	}
	if c.proxy != nil {
		_ = c.proxy.kill(c.net)
	}
	return c.podSet.close()
}
