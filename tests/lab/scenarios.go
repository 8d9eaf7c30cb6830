package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Scenario is one thing that happens to a running release.
type Scenario struct {
	Name  string
	Title string
	Fast  bool // part of the subset CI runs on every change
	// OursOnly: the baseline has nothing to compare (it has no way to do what the scenario does).
	OursOnly bool
	// TLSOnly: the scenario needs our release with TLS (-lab.tls); it is skipped without.
	TLSOnly bool
	act     func(c *sentinelRun) error
	// targets are checked for our release only; the baseline is measured, not judged.
	targets func(r *Result, l limits) []Target
}

// limits are the release's settings that bound its targets.
type limits struct {
	downAfter time.Duration // sentinel down-after-milliseconds
	maxLag    time.Duration // redis min-replicas-max-lag
}

// Timing of a scenario run.
const (
	bootstrapTimeout = 90 * time.Second
	// warmUpTimeout bounds the wait for a release at rest (atRest) before the event: the
	// scenarios measure a release at rest, not one still finishing its bootstrap.
	warmUpTimeout = 30 * time.Second
	// restBefore is how long the clients write to a release at rest before the event.
	restBefore      = time.Second
	settle          = 4 * time.Second // converged this long without a break ends the run
	convergeTimeout = 90 * time.Second
	partitionHold   = 30 * time.Second
	quickRecreate   = time.Second     // node lost, pod back before down-after expires
	staleFor        = 5 * time.Second // a replica's node lost while the master takes writes
)

// plannedRestartGate is what the lab enforces for a planned restart. The issue's target is 1 s;
// we measure about 1.4 s and report that miss. The floor is Sentinel itself: after promoting a
// replica it learns of the promotion from the replica's INFO, which it asks for once a second,
// and only then names the new master; HAProxy routes only to a master the sentinels name, and the
// old master refuses writes from the start of the preStop so that none is lost. Accepting writes
// earlier would trade the gap for lost writes.
const plannedRestartGate = 2 * time.Second

// Scenarios lists every scenario, in the order they run.
var Scenarios = []Scenario{
	{Name: "bootstrap", Title: "bootstrap from empty", act: func(*sentinelRun) error { return nil },
		targets: func(r *Result, _ limits) []Target { return []Target{converges(r.Converge), noWait1Lost(r)} }},
	// The fast subset is what the real node does not run in CI: a crash and a planned restart run
	// there, with the same targets, through the kubelet, kube-proxy and CoreDNS.
	{Name: "master-crash", Title: "master crash (SIGKILL of redis-server)", act: crashMaster,
		targets: func(r *Result, l limits) []Target {
			return []Target{endpointGapWithin(r, l.downAfter+2*time.Second, true), noWait1Lost(r), converges(r.Converge)}
		}},
	{Name: "recreate-empty-quick", Title: "master pod lost, re-created empty before down-after", Fast: true,
		act: func(c *sentinelRun) error { return recreateEmptyMaster(c, false) },
		targets: func(r *Result, _ limits) []Target {
			return []Target{noTwoMasters(r.TwoMasters), noWait1Lost(r), converges(r.Converge)}
		}},
	{Name: "recreate-empty-after-failover", Title: "master pod lost, re-created empty after the failover",
		act: func(c *sentinelRun) error { return recreateEmptyMaster(c, true) },
		targets: func(r *Result, _ limits) []Target {
			return []Target{noTwoMasters(r.TwoMasters), noWait1Lost(r), converges(r.Converge)}
		}},
	{Name: "planned-restart", Title: "planned restart of the master pod (preStop, SIGTERM)", act: restartMaster,
		targets: func(r *Result, _ limits) []Target {
			return []Target{endpointGapWithin(r, time.Second, false), endpointGapWithin(r, plannedRestartGate, true), noWait1Lost(r), converges(r.Converge)}
		}},
	{Name: "password-rotation", Title: "password rotated in two steps under load, clients on both, the master restarted in between", Fast: true, OursOnly: true,
		act: rotatePassword,
		targets: func(r *Result, _ limits) []Target {
			return []Target{noRefusedAuth(r), noneLost(r.LostPlain, r.AckedPlain), noWait1Lost(r), endpointGapWithin(r, plannedRestartGate, true), converges(r.Converge)}
		}},
	{Name: "certificate-renewal", Title: "certificate renewed under load (a new key, the same CA): servers load it in place, sentinels restart one at a time", Fast: true, OursOnly: true, TLSOnly: true,
		act: renewCertificate,
		targets: func(r *Result, _ limits) []Target {
			return []Target{noneLost(r.LostPlain, r.AckedPlain), noWait1Lost(r), endpointGapWithin(r, time.Second, true), converges(r.Converge)}
		}},
	{Name: "partition", Title: "master partitioned from the other pods for 30 s, clients still reach it", act: partitionMaster,
		targets: func(r *Result, l limits) []Target {
			return []Target{noWait1Lost(r), lossBoundedBy(r.LostSpan, r.LostPlain, l.maxLag), converges(r.Converge)}
		}},
	{Name: "sentinels-recreated", Title: "all sentinels re-created at once from the ConfigMap", act: recreateSentinels,
		targets: func(r *Result, _ limits) []Target { return []Target{noWait1Lost(r), converges(r.Converge)} }},
	{Name: "full-restart", Title: "full restart of all redis pods, persistence on", act: restartAll,
		targets: func(r *Result, _ limits) []Target {
			return []Target{noneLost(r.LostPlain, r.AckedPlain), converges(r.Converge)}
		}},
	{Name: "full-restart-stale", Title: "full restart while pod 0 is a replica that missed writes, persistence on", act: restartAllWhilePod0IsStale,
		targets: func(r *Result, _ limits) []Target {
			return []Target{noneLost(r.LostPlain, r.AckedPlain), converges(r.Converge)}
		}},
}

// currentMaster returns the ordinal of the pod that the latest sample shows as the only master.
func (c *sentinelRun) currentMaster() (int, error) {
	_, samples := c.events()
	if len(samples) == 0 {
		return 0, fmt.Errorf("lab: no sample yet")
	}
	last := samples[len(samples)-1]
	master := -1
	for i := range c.redis {
		if last.Nodes[c.podName(i)].Role == "master" {
			if master >= 0 {
				return 0, fmt.Errorf("lab: two masters in the latest sample")
			}
			master = i
		}
	}
	if master < 0 {
		return 0, fmt.Errorf("lab: no master in the latest sample")
	}
	return master, nil
}

func crashMaster(c *sentinelRun) error {
	m, err := c.currentMaster()
	if err != nil {
		return err
	}
	c.redis[m].container("redis").signal(syscall.SIGKILL, false)
	return nil
}

// recreateEmptyMaster loses the master's node with its volume: the pod comes back with no data,
// quickly or once the sentinels have promoted another pod.
func recreateEmptyMaster(c *sentinelRun, afterFailover bool) error {
	m, err := c.currentMaster()
	if err != nil {
		return err
	}
	old := c.podFQDN(m)
	if err := c.deleteRedisPod(m, false); err != nil {
		return err
	}
	if err := os.RemoveAll(c.claimDir(m)); err != nil {
		return err
	}
	if afterFailover {
		quorum := len(c.redis)/2 + 1
		if _, err := c.waitFor("", convergeTimeout, func(e event) bool {
			named := 0
			for _, m := range e.Sentinels {
				if m != "" && m != old {
					named++
				}
			}
			return e.Kind == "sample" && named >= quorum
		}); err != nil {
			return fmt.Errorf("no failover: %v", err)
		}
	} else {
		time.Sleep(quickRecreate)
	}
	return c.startRedisPod(m)
}

// restartMaster restarts the master's pod gracefully. The master's preStop hook logs what it
// does; those lines must be in the redis container's log, which is what `kubectl logs` shows.
func restartMaster(c *sentinelRun) error {
	m, err := c.currentMaster()
	if err != nil {
		return err
	}
	old := c.redis[m]
	if err := c.restartRedisPod(m); err != nil {
		return err
	}
	redis := old.container("redis")
	if redis.spec.Lifecycle == nil || redis.spec.Lifecycle.PreStop == nil {
		return nil // the baseline has no hook
	}
	log, err := os.ReadFile(filepath.Join(old.run.dir, "redis.log"))
	if err != nil {
		return err
	}
	if !strings.Contains(string(log), "preStop: this pod is the master") {
		return fmt.Errorf("the master's preStop left no line in its redis container's log (%s)", filepath.Join(old.run.dir, "redis.log"))
	}
	return nil
}

// rotatePassword rotates the clients' password in the README's two steps (rotate: the Secret
// and the credentials Job), with clients on both passwords in between (rotateUnderLoad). One
// pod's Secret files are written only after each step's Job, as the kubelet may update a pod
// late.
func rotatePassword(c *sentinelRun) error {
	const next = "lab-password-rotated-0123456789"
	both := labSecret()
	both["password"], both["previous-password"] = next, labPassword
	done := labSecret()
	done["password"] = next
	lagging := len(c.redis) - 1
	err := rotateUnderLoad(c.clientProcess, next,
		func() error { return c.rotate(both, lagging) },
		func() error { return restartMaster(c) },
		func() error { return c.rotate(done, lagging) })
	if err != nil {
		return err
	}
	return refusesOnly(c, labPassword, next)
}

// rotateUnderLoad moves the client from the old password to next around a rotation's two steps:
// after the first (both passwords valid), the Sentinel-aware writer and the monitor move to next
// at once, the endpoint writer and the reader only after restart (the master's pod restarted,
// which starts with both); the second step (next alone) comes once every part uses next.
func rotateUnderLoad(c *clientProcess, next string, first, restart, second func() error) error {
	if err := first(); err != nil {
		return fmt.Errorf("step 1: %w", err)
	}
	for _, part := range []string{"sentinel", labPart} {
		if err := c.command("password " + part + " " + next); err != nil {
			return err
		}
	}
	// Writes on both passwords for a while before and after the restart.
	time.Sleep(time.Second)
	if err := restart(); err != nil {
		return err
	}
	time.Sleep(time.Second)
	for _, part := range []string{"endpoint", "read"} {
		if err := c.command("password " + part + " " + next); err != nil {
			return err
		}
	}
	time.Sleep(time.Second)
	if err := second(); err != nil {
		return fmt.Errorf("step 2: %w", err)
	}
	return nil
}

// certificateRestartStagger is the sentinels' turn in the lab (certificateRestartStaggerEnv, which
// Setups sets, and the real node's test too): 10 s per ordinal instead of a minute, so that a
// renewal ends within a run.
const (
	certificateRestartStagger    = 10 * time.Second
	certificateRestartStaggerEnv = "CERTIFICATE_RESTART_STAGGER_SECONDS"
)

var staggerSeconds = strconv.Itoa(int(certificateRestartStagger.Seconds()))

// renewCertificate renews the release's certificate under load as cert-manager or `pulumi up`
// would: a new key and certificate from the same CA, written into every running pod's files at
// once (the kubelet's update). It returns once every server and sentinel serves the new one: the
// servers load it in place, the sentinels restart in turn (sentinel-start.sh).
func renewCertificate(c *sentinelRun) error {
	if c.w.authority == nil {
		return fmt.Errorf("the release has no TLS: run the lab with -lab.tls")
	}
	renewed, serial, err := c.w.authority.issue()
	if err != nil {
		return err
	}
	err = c.changeRunning(func() { c.certificate = renewed }, func(p *pod) error { return p.updateCertificate(renewed) })
	if err != nil {
		return err
	}
	var hosts []string
	for i := range c.redis {
		hosts = append(hosts, c.podFQDN(i))
	}
	// The serial each server and sentinel shows a new TLS client, from pod 0.
	check := `for host in $HOSTS; do for port in $REDIS_PORT $SENTINEL_PORT; do
	echo "$host:$port $(openssl s_client -connect "$host:$port" -CAfile "$TLS_DIR/ca.crt" </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null)"
done; done`
	want := fmt.Sprintf("serial=%X", serial.Bytes()) // as openssl prints it: whole bytes
	deadline := time.Now().Add(time.Duration(len(hosts)+1)*certificateRestartStagger + time.Minute)
	for {
		out, err := c.exec(0, "env", "HOSTS="+strings.Join(hosts, " "), "sh", "-c", check)
		if err == nil && strings.Count(string(out), " "+want+"\n") == 2*len(hosts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every server and sentinel serves the renewed certificate (%s) by now: %v\n%s", want, err, out)
		}
		time.Sleep(time.Second)
	}
}

// refusesOnly checks, from pod 0, that every server and sentinel refuses old and takes next.
func refusesOnly(c *sentinelRun, old, next string) error {
	check := `tls=${TLS_DIR:+--tls --cacert $TLS_DIR/ca.crt}
for host in $HOSTS; do for port in $REDIS_PORT $SENTINEL_PORT; do
	echo "$host:$port $(REDISCLI_AUTH=$OLD "$CLI_BIN" $tls -h "$host" -p "$port" PING 2>/dev/null | head -n 1) $(REDISCLI_AUTH=$NEXT "$CLI_BIN" $tls -h "$host" -p "$port" PING 2>/dev/null | head -n 1)"
done; done`
	var hosts []string
	for i := range c.redis {
		hosts = append(hosts, c.podFQDN(i))
	}
	out, err := c.exec(0, "env", "HOSTS="+strings.Join(hosts, " "), "OLD="+old, "NEXT="+next, "sh", "-c", check)
	if err != nil {
		return fmt.Errorf("checking the passwords: %v: %s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) < 3 || !strings.HasPrefix(f[1], "NOAUTH") || f[len(f)-1] != "PONG" {
			return fmt.Errorf("after the rotation, each server and sentinel must refuse the old password and take the new one: %s", out)
		}
	}
	return nil
}

// partitionMaster cuts the master off from every other pod (redis and HAProxy) while the client
// still reaches it, then heals the partition.
func partitionMaster(c *sentinelRun) error {
	m, err := c.currentMaster()
	if err != nil {
		return err
	}
	master := c.redis[m]
	others := []*pod{c.proxy}
	for i, p := range c.redis {
		if i != m {
			others = append(others, p)
		}
	}
	cut := func(on bool) error {
		for _, o := range others {
			if err := blackhole(master.ns, o.ip, on); err != nil {
				return err
			}
			if err := blackhole(o.ns, master.ip, on); err != nil {
				return err
			}
		}
		return nil
	}
	if err := cut(true); err != nil {
		return err
	}
	time.Sleep(partitionHold)
	return cut(false)
}

// recreateSentinels replaces every sentinel container at once by a new one that starts from the
// ConfigMap's sentinel.conf: the state it had written to the pod's run directory is gone.
func recreateSentinels(c *sentinelRun) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.redis))
	for i, p := range c.redis {
		sentinel := p.container("sentinel")
		runDir, err := p.volumeDir(sentinel, c.rel.env("RUN_DIR"))
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = sentinel.recreate(func() error {
				matches, err := filepath.Glob(filepath.Join(runDir, "sentinel*"))
				for _, f := range matches {
					if err := os.Remove(f); err != nil {
						return err
					}
				}
				return err
			})
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

// restartAll restarts every redis pod at once, as after `kubectl delete pod -l ...` with the
// StatefulSet's Parallel pod management.
func restartAll(c *sentinelRun) error {
	return c.forEachRedisPod(c.restartRedisPod)
}

// restartAllWhilePod0IsStale makes pod 0 a replica, loses its node while the master takes writes
// for staleFor, then deletes the other pods and, once none is left, creates all of them again at
// once with their volumes, pod 0's holding only what it had when it went down. Nobody remembers
// the master then: every sentinel's state was in its pod.
func restartAllWhilePod0IsStale(c *sentinelRun) error {
	if m, err := c.currentMaster(); err != nil {
		return err
	} else if m == 0 {
		// The preStop hands the role over (the baseline's pod 0 comes back as master).
		if err := c.restartRedisPod(0); err != nil {
			return err
		}
		if _, err := c.waitFor("", convergeTimeout, c.rel.converged); err != nil {
			return fmt.Errorf("after restarting pod 0: %v", err)
		}
	}
	if err := c.deleteRedisPod(0, false); err != nil {
		return err
	}
	time.Sleep(staleFor)
	if err := c.forEachRedisPod(func(i int) error {
		if i == 0 {
			return nil
		}
		return c.deleteRedisPod(i, true)
	}); err != nil {
		return err
	}
	return c.forEachRedisPod(c.startRedisPod)
}

// volumeDir is the directory mounted at path in container ct.
func (p *pod) volumeDir(ct *container, path string) (string, error) {
	for _, m := range ct.spec.VolumeMounts {
		if m.MountPath == path {
			return filepath.Join(p.run.dir, "volumes", m.Name), nil
		}
	}
	return "", fmt.Errorf("lab: container %s mounts nothing at %s", ct.spec.Name, path)
}

// converged reports whether a sample shows the release at rest: every node answers, exactly one
// is master, every other replicates from it with its link up, every sentinel names it, and
// HAProxy routes to it (its /master answers 200).
func (r *release) converged(e event) bool {
	if e.Kind != "sample" || e.Health != 200 || len(e.Nodes) != r.replicas() || len(e.Sentinels) != r.replicas() {
		return false
	}
	var masters []string
	for pod, n := range e.Nodes {
		if n.Role == "master" {
			masters = append(masters, pod)
		}
	}
	if len(masters) != 1 {
		return false
	}
	fqdn := masters[0] + "." + r.podDomain()
	for pod, n := range e.Nodes {
		if pod != masters[0] && (n.Role != "slave" || n.Master != fqdn || n.Link != "up") {
			return false
		}
	}
	for _, m := range e.Sentinels {
		if m != fqdn {
			return false
		}
	}
	return true
}

// atRest: converged, and every sentinel knows and reaches every other sentinel and every
// replica, so that it can take part in a failover. Before, a failover cannot happen yet (a
// sentinel learns the others from their hello messages, every 2 s, and the replicas from the
// master's INFO or its own config); a fixed 12 s wait stood in for this.
func (r *release) atRest(e event) bool {
	if !r.converged(e) || len(e.Known) != r.replicas() {
		return false
	}
	for _, known := range e.Known {
		if known != 2*(r.replicas()-1) {
			return false
		}
	}
	return true
}

// Run runs one scenario against one release and measures it. dir keeps the pods' logs.
func Run(s Scenario, setup string, rel *release, dir string) (r *Result, err error) {
	r = &Result{Scenario: s.Name, Title: s.Title, Setup: setup}
	start := time.Now()
	c, err := startSentinelRun(rel, dir)
	defer func() {
		if cerr := c.close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err != nil {
		return r, err
	}
	if _, err := c.waitFor("", bootstrapTimeout, c.rel.converged); err != nil {
		return r, fmt.Errorf("bootstrap: %v", err)
	}
	r.Bootstrap = time.Since(start).Seconds()
	eventStart := start
	if s.Name != "bootstrap" {
		if err := c.warmUp(rel.atRest); err != nil {
			return r, err
		}
		eventStart = time.Now()
		if err := s.act(c); err != nil {
			return r, fmt.Errorf("%s: %v", s.Name, err)
		}
	}
	c.awaitSettled(c.rel.converged)
	end := time.Now()
	check, err := c.stopAndCheck()
	if err != nil {
		return r, err
	}
	writes, samples := c.events()
	r.measure(writes, samples, check, eventStart, end, c.rel.converged)
	if setup != SetupBaseline {
		l, err := rel.limits()
		if err != nil {
			return r, err
		}
		r.Targets = append(s.targets(r, l), r.readTargets()...)
	}
	return r, nil
}

// Names of the setups a scenario runs with: ours, the baseline, and with -lab.tls ours with TLS.
const (
	SetupOurs     = "ours"
	SetupBaseline = "baseline"
	SetupOursTLS  = "ours, TLS"
)

// Setups returns our release as rendered (the local stack with values, or the render in
// manifests), the baseline derived from it, and with withTLS our release rendered with TLS on
// and a certificate Secret that the lab supplies (tlsSecretName; labAuthority).
func Setups(repoRoot, manifests string, values map[string]string, withTLS bool) (map[string]*release, error) {
	var files map[string][]byte
	var err error
	if manifests != "" {
		files, err = readRender(manifests)
	} else {
		files, err = renderStack(repoRoot, "local", values)
	}
	if err != nil {
		return nil, err
	}
	ours, err := parseRelease(files)
	if err != nil {
		return nil, err
	}
	baseline, err := ours.asBaseline()
	if err != nil {
		return nil, err
	}
	setups := map[string]*release{SetupOurs: ours, SetupBaseline: baseline}
	if !withTLS {
		return setups, nil
	}
	if files, err = renderWithTLS(repoRoot, manifests, "local", values); err != nil {
		return nil, err
	}
	secure, err := parseRelease(files)
	if err != nil {
		return nil, err
	}
	spec := &secure.statefulSet.Spec.Template.Spec
	for i := range spec.Containers {
		if spec.Containers[i].Name == "sentinel" {
			spec.Containers[i].Env = append(spec.Containers[i].Env, corev1.EnvVar{Name: certificateRestartStaggerEnv, Value: staggerSeconds})
		}
	}
	setups[SetupOursTLS] = secure
	return setups, nil
}

// renderWithTLS renders a stack with values and TLS on, the certificate from a Secret that the
// lab supplies (labAuthority: the user's-Secret path, which the lab can run). A run of an
// earlier render (manifests) has no such render to make.
func renderWithTLS(repoRoot, manifests, stack string, values map[string]string) (map[string][]byte, error) {
	if manifests != "" {
		return nil, fmt.Errorf("lab: -lab.tls renders the %s stack itself, not a render in %s", stack, manifests)
	}
	return renderStack(repoRoot, stack, merge(values, map[string]string{"tls": "true", "tlsSecretName": labTLSSecret}))
}

// labTLSSecret is the user's Secret with the certificate that the lab's TLS setups name.
const labTLSSecret = "lab-tls"

// Select returns the scenarios of a mode: "fast" (the CI subset) or "full"; or a comma-separated
// list of scenario names.
func Select(mode string) ([]Scenario, error) {
	return selectScenarios(mode, Scenarios, func(s Scenario) (string, bool) { return s.Name, s.Fast })
}

// selectScenarios picks a mode's scenarios out of all; about tells a scenario's name and whether
// it is in the fast subset.
func selectScenarios[S any](mode string, all []S, about func(S) (name string, fast bool)) ([]S, error) {
	var out []S
	switch mode {
	case "full":
		return all, nil
	case "fast":
		for _, s := range all {
			if _, fast := about(s); fast {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var names []string
	for _, s := range all {
		name, _ := about(s)
		names = append(names, name)
	}
	for _, name := range strings.Split(mode, ",") {
		i := slices.Index(names, name)
		if i < 0 {
			return nil, fmt.Errorf("lab mode %q: not allowed: fast, full or a comma-separated list of %s", mode, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}
