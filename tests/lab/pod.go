package lab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podRun is what a pod needs from the rest of the lab: its files and the values Kubernetes
// would fill in.
type podRun struct {
	name      string
	namespace string // the Kubernetes namespace
	subdomain string // the headless Service, for the pod's own FQDN
	spec      corev1.PodSpec
	configMap map[string]string // data of the ConfigMap the pod mounts
	secret    map[string]string // data of the Secret the pod reads, supplied by the lab
	// certificate is the data of the release's certificate Secret (its tls volume), with TLS.
	certificate map[string]string
	claims      map[string]string // volume name -> directory of the pod's PersistentVolumeClaim, kept across incarnations
	dir         string            // the pod's scratch directory (emptyDirs, logs), new per incarnation
	dnsServer   string
}

// imageBinaries maps a container command that names a binary inside its image to the Debian
// package's binary that the lab runs instead.
var imageBinaries = map[string]string{"/redis_exporter": "prometheus-redis-exporter"}

// pod is one incarnation of a pod: a network namespace with a fresh address, and a "pause"
// process that holds the pod's mount and UTS namespaces, as a sandbox does under Kubernetes.
// Its containers are entered into them with nsenter and run as the user the spec says.
type pod struct {
	run        podRun
	ns, ip     string
	pause      *exec.Cmd
	containers []*container
	mu         sync.Mutex
	deleting   bool
}

type container struct {
	pod     *pod
	spec    corev1.Container
	argv    []string
	env     []string
	log     *os.File
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	held    bool // recreate is replacing the container: supervise must not restart it
	backoff time.Duration
}

// kubeletBackoff is the kubelet's restart delay: none the first time, then 10 s doubling.
const kubeletBackoff = 10 * time.Second

func (r podRun) fqdn() string {
	return fmt.Sprintf("%s.%s.%s.svc.cluster.local", r.name, r.subdomain, r.namespace)
}

// startPod creates the pod's namespace, mounts its volumes and starts its containers.
func startPod(n *network, r podRun) (*pod, error) {
	ns, addr, err := n.addHost(r.name)
	if err != nil {
		return nil, err
	}
	p := &pod{run: r, ns: ns, ip: addr}
	if err := p.startSandbox(); err != nil {
		return p, err
	}
	for _, c := range r.spec.Containers {
		argv, env, err := p.resolve(c)
		if err != nil {
			return p, err
		}
		if argv == nil {
			continue
		}
		logFile, err := os.OpenFile(filepath.Join(r.dir, c.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return p, err
		}
		ct := &container{pod: p, spec: c, argv: argv, env: env, log: logFile}
		p.containers = append(p.containers, ct)
		if err := ct.start(); err != nil {
			return p, err
		}
		go ct.supervise()
	}
	return p, nil
}

// startSandbox prepares the volumes and starts the pause process in new mount and UTS
// namespaces, with the volumes, /etc/hosts and /etc/resolv.conf bind-mounted as the kubelet does.
func (p *pod) startSandbox() error {
	r := p.run
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	volumes := map[string]string{}
	for _, v := range r.spec.Volumes {
		dir := filepath.Join(r.dir, "volumes", v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return err
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return err
			}
		case v.ConfigMap != nil:
			if err := writeConfigMapVolume(dir, r.configMap, v.ConfigMap.Items); err != nil {
				return err
			}
		case v.Secret != nil:
			if err := writeSecretVolume(dir, r.secretFor(v), v.Secret, r.spec.SecurityContext); err != nil {
				return err
			}
		default:
			return fmt.Errorf("lab: pod %s: volume %s: only emptyDir, configMap and secret volumes are supported", r.name, v.Name)
		}
		volumes[v.Name] = dir
	}
	for name, dir := range r.claims {
		if err := os.MkdirAll(dir, 0o775); err != nil {
			return err
		}
		if sc := r.spec.SecurityContext; sc != nil && sc.FSGroup != nil {
			if err := os.Chown(dir, 0, int(*sc.FSGroup)); err != nil {
				return err
			}
			if err := os.Chmod(dir, 0o2775); err != nil {
				return err
			}
		}
		volumes[name] = dir
	}
	hosts := filepath.Join(r.dir, "hosts")
	resolv := filepath.Join(r.dir, "resolv.conf")
	if err := os.WriteFile(hosts, fmt.Appendf(nil, "127.0.0.1 localhost\n%s %s %s\n", p.ip, r.fqdn(), r.name), 0o644); err != nil {
		return err
	}
	resolvConf := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", r.dnsServer, r.namespace)
	if err := os.WriteFile(resolv, []byte(resolvConf), 0o644); err != nil {
		return err
	}

	binds := [][2]string{{hosts, "/etc/hosts"}, {resolv, "/etc/resolv.conf"}}
	for _, c := range r.spec.Containers {
		for _, m := range c.VolumeMounts {
			src, ok := volumes[m.Name]
			if !ok {
				return fmt.Errorf("lab: pod %s: container %s mounts unknown volume %s", r.name, c.Name, m.Name)
			}
			binds = append(binds, [2]string{src, m.MountPath})
		}
	}
	var script strings.Builder
	script.WriteString("set -e\nmount --make-rprivate /\n")
	ordered, err := mountOrder(binds)
	if err != nil {
		return err
	}
	for _, b := range ordered {
		if err := ensureMountPoint(b[1], b[0]); err != nil {
			return err
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(b[0]), shellQuote(b[1]))
	}
	fmt.Fprintf(&script, "hostname %s\necho ready\nexec sleep 2147483647\n", shellQuote(r.name))

	p.pause = exec.Command("nsenter", "--net=/run/netns/"+p.ns, "--", "unshare", "--mount", "--uts", "--", "sh", "-c", script.String())
	p.pause.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := p.pause.StdoutPipe()
	if err != nil {
		return err
	}
	p.pause.Stderr = os.Stderr
	if err := p.pause.Start(); err != nil {
		return err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		return fmt.Errorf("lab: pod %s: sandbox did not start: %q %v", r.name, line, err)
	}
	return nil
}

// createdMountPoints are directories the lab had to create on the host to mount over (such as
// /data); cleanup removes them again.
var createdMountPoints = struct {
	sync.Mutex
	paths []string
}{}

// ensureMountPoint makes sure target exists with the same kind (file or directory) as src.
func ensureMountPoint(target, src string) error {
	if _, err := os.Stat(target); err == nil {
		return nil
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("lab: cannot mount a file over missing %s", target)
	}
	createdMountPoints.Lock()
	defer createdMountPoints.Unlock()
	// Record every directory created, outermost first, so cleanup removes them innermost first.
	var missing []string
	for d := target; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append([]string{d}, missing...)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	createdMountPoints.paths = append(createdMountPoints.paths, missing...)
	return nil
}

func removeCreatedMountPoints() {
	createdMountPoints.Lock()
	defer createdMountPoints.Unlock()
	for i := len(createdMountPoints.paths) - 1; i >= 0; i-- {
		_ = os.Remove(createdMountPoints.paths[i]) // only if empty: never removes what another put there
	}
	createdMountPoints.paths = nil
}

// writeConfigMapVolume writes the keys of data that items name (every key when none) as files
// of dir. Like the Secret's, each file is replaced whole: the lab rewrites the volumes of running
// pods when a ConfigMap changes (writeConfigMapVolumes), as the kubelet does.
func writeConfigMapVolume(dir string, data map[string]string, items []corev1.KeyToPath) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{}
	if len(items) == 0 {
		for k := range data {
			files[k] = k
		}
	}
	for _, it := range items {
		files[it.Key] = it.Path
	}
	for key, path := range files {
		v, ok := data[key]
		if !ok {
			return fmt.Errorf("lab: the ConfigMap has no key %s", key)
		}
		if err := replaceFile(filepath.Join(dir, path), v, 0o644, -1); err != nil {
			return err
		}
	}
	return nil
}

// secretFor is the data that Secret volume v shows: of the certificate's Secret for the tls
// volume, else of the release's Secret; only the keys the volume names when it names some.
func (r podRun) secretFor(v corev1.Volume) map[string]string {
	data := r.secret
	if v.Name == tlsVolume {
		data = r.certificate
	}
	if len(v.Secret.Items) == 0 {
		return data
	}
	picked := map[string]string{}
	for _, item := range v.Secret.Items {
		picked[item.Path] = data[item.Key]
	}
	return picked
}

// writeSecretVolume writes every key of data as a file of dir, as the kubelet does: the mode
// the volume says, the group the pod's fsGroup, each file replaced whole.
func writeSecretVolume(dir string, data map[string]string, src *corev1.SecretVolumeSource, pod *corev1.PodSecurityContext) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if src.DefaultMode != nil {
		mode = os.FileMode(*src.DefaultMode)
	}
	gid := -1
	if pod != nil && pod.FSGroup != nil {
		gid = int(*pod.FSGroup)
	}
	for key, value := range data {
		if err := replaceFile(filepath.Join(dir, key), value, mode, gid); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ok := data[e.Name()]; !ok && !strings.HasPrefix(e.Name(), ".") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceFile writes value to path through a new file and a rename, so that a script reading it
// while the lab changes it sees the old or the new value, never half; gid -1 keeps root's group.
func replaceFile(path, value string, mode os.FileMode, gid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	if err := os.WriteFile(tmp, []byte(value), mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if gid >= 0 {
		if err := os.Chown(tmp, 0, gid); err != nil {
			return err
		}
	}
	return os.Rename(tmp, path)
}

// mountOrder drops repeated targets and orders the binds so that none hides another's source:
// parents before children, and a target above some source (such as /tmp when the lab's
// directory is in /tmp) after everything else.
func mountOrder(binds [][2]string) ([][2]string, error) {
	under := func(path, dir string) bool {
		return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
	}
	seen := map[string]bool{}
	var first, last [][2]string
	for _, b := range binds {
		if seen[b[1]] {
			continue
		}
		seen[b[1]] = true
		hides := false
		for _, o := range binds {
			hides = hides || under(o[0], b[1])
		}
		if hides {
			last = append(last, b)
		} else {
			first = append(first, b)
		}
	}
	for _, l := range last {
		for _, f := range first {
			if under(f[1], l[1]) {
				return nil, fmt.Errorf("lab: cannot mount %s: it is above both %s and a volume's source", l[1], f[1])
			}
		}
	}
	byLength := func(s [][2]string) {
		sort.SliceStable(s, func(i, j int) bool { return len(s[i][1]) < len(s[j][1]) })
	}
	byLength(first)
	byLength(last)
	return append(first, last...), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var envRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does Kubernetes' $(VAR) expansion: $$ is a literal $, an unknown $(VAR) stays as it is.
func expand(s string, vars map[string]string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// resolve computes a container's argv and environment as the kubelet would. A nil argv means
// the lab has no binary for the container's image (it is logged and left out).
func (p *pod) resolve(c corev1.Container) ([]string, []string, error) {
	r := p.run
	vars := map[string]string{}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + r.name, "HOME=/"}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				v = r.name
			case "metadata.namespace":
				v = r.namespace
			case "status.podIP":
				v = p.ip
			default:
				return nil, nil, fmt.Errorf("lab: env %s: field %s is not supported", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			var ok bool
			if v, ok = r.secret[e.ValueFrom.SecretKeyRef.Key]; !ok {
				return nil, nil, fmt.Errorf("lab: env %s: the lab supplies no secret key %s", e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			v = r.configMap[e.ValueFrom.ConfigMapKeyRef.Key]
		default:
			return nil, nil, fmt.Errorf("lab: env %s: source not supported", e.Name)
		}
		vars[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	var argv []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, expand(a, vars))
	}
	if len(argv) == 0 {
		return nil, nil, fmt.Errorf("lab: container %s has no command: the lab cannot know the image's entrypoint", c.Name)
	}
	if bin, ok := imageBinaries[argv[0]]; ok {
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(os.Stderr, "lab: pod %s: container %s not run: %s is not installed\n", r.name, c.Name, bin)
			return nil, nil, nil
		}
		argv[0] = bin
	}
	return argv, env, nil
}

// user returns the uid, gid and supplementary group the container runs with.
func (p *pod) user(c corev1.Container) (uid, gid, fsGroup int64) {
	uid, gid, fsGroup = -1, -1, -1
	if sc := p.run.spec.SecurityContext; sc != nil {
		uid, gid, fsGroup = deref(sc.RunAsUser, uid), deref(sc.RunAsGroup, gid), deref(sc.FSGroup, fsGroup)
	}
	if sc := c.SecurityContext; sc != nil {
		uid, gid = deref(sc.RunAsUser, uid), deref(sc.RunAsGroup, gid)
	}
	return uid, gid, fsGroup
}

func deref(v *int64, def int64) int64 {
	if v == nil {
		return def
	}
	return *v
}

// enter returns a command that runs argv inside the pod's namespaces as the container's user.
func (p *pod) enter(c corev1.Container, argv, env []string) (*exec.Cmd, error) {
	uid, gid, fsGroup := p.user(c)
	if uid < 0 || gid < 0 {
		return nil, fmt.Errorf("lab: pod %s container %s: runAsUser and runAsGroup must be set (the lab never runs a container as root)", p.run.name, c.Name)
	}
	groups := "--clear-groups"
	if fsGroup >= 0 {
		groups = "--groups=" + strconv.FormatInt(fsGroup, 10)
	}
	args := []string{"--target", strconv.Itoa(p.pause.Process.Pid), "--net", "--mount", "--uts", "--",
		"setpriv", "--reuid=" + strconv.FormatInt(uid, 10), "--regid=" + strconv.FormatInt(gid, 10), groups, "--no-new-privs", "--"}
	cmd := exec.Command("nsenter", append(args, argv...)...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

func (c *container) start() error {
	cmd, err := c.pod.enter(c.spec, c.argv, c.env)
	if err != nil {
		return err
	}
	// The container's output is a pipe that the lab copies into its log, as containerd's shim
	// does, and the pipe belongs to the container's user: its processes may reopen it through
	// /proc/PID/fd/1, as the preStop hook does to reach `kubectl logs`.
	out, in, err := os.Pipe()
	if err != nil {
		return err
	}
	defer in.Close()
	uid, gid, _ := c.pod.user(c.spec)
	if err := in.Chown(int(uid), int(gid)); err != nil {
		out.Close()
		return err
	}
	go func() {
		defer out.Close()
		_, _ = io.Copy(c.log, out)
	}()
	fmt.Fprintf(c.log, "=== lab: start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = in, in
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		fmt.Fprintf(c.log, "=== lab: exit %s: %v\n", time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		close(exited)
	}()
	return nil
}

// supervise restarts the container when it exits, with the kubelet's back-off, until the pod is
// deleted (restartPolicy Always); a Job's pod (restartPolicy Never) runs it once.
func (c *container) supervise() {
	for {
		c.mu.Lock()
		exited := c.exited
		c.mu.Unlock()
		<-exited
		if c.pod.run.spec.RestartPolicy == corev1.RestartPolicyNever {
			return
		}
		time.Sleep(c.backoff)
		if c.pod.isDeleting() {
			return
		}
		c.mu.Lock()
		replaced := c.held || c.exited != exited
		c.mu.Unlock()
		if replaced {
			c.waitReleased()
			continue
		}
		c.backoff = max(kubeletBackoff, 2*c.backoff)
		if err := c.start(); err != nil {
			fmt.Fprintf(c.log, "=== lab: restart failed: %v\n", err)
			return
		}
	}
}

// recreate replaces the container by a new one: the old one is killed, prepare runs while none
// runs, then the new one starts (with no back-off, as for a new container).
func (c *container) recreate(prepare func() error) error {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.held = false
		c.mu.Unlock()
	}()
	c.signal(syscall.SIGKILL, true)
	c.wait(5 * time.Second)
	if err := prepare(); err != nil {
		return err
	}
	return c.start()
}

func (c *container) waitReleased() {
	for {
		c.mu.Lock()
		held := c.held
		c.mu.Unlock()
		if !held {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *pod) isDeleting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deleting
}

// signal sends sig to the container's main process (what the runtime signals), or with group
// to every process the container started.
func (c *container) signal(sig syscall.Signal, group bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	pid := c.cmd.Process.Pid
	if group {
		pid = -pid
	}
	_ = syscall.Kill(pid, sig)
}

func (c *container) wait(timeout time.Duration) bool {
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitCode waits until the container exits and returns its exit code; -1 when it still runs
// after timeout.
func (c *container) exitCode(timeout time.Duration) int {
	if !c.wait(timeout) {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd.ProcessState.ExitCode()
}

// updateSecret and updateCertificate write the pod's volumes of the release's Secret, or of its
// certificate's, anew from data, as the kubelet does when the Secret changes (the kubelet within
// a minute or two; the lab at once, when told).
func (p *pod) updateSecret(data map[string]string) error {
	p.run.secret = data
	return p.rewriteSecretVolumes(false)
}

func (p *pod) updateCertificate(data map[string]string) error {
	p.run.certificate = data
	return p.rewriteSecretVolumes(true)
}

func (p *pod) rewriteSecretVolumes(certificate bool) error {
	for _, v := range p.run.spec.Volumes {
		if v.Secret != nil && (v.Name == tlsVolume) == certificate {
			if err := writeSecretVolume(filepath.Join(p.run.dir, "volumes", v.Name), p.run.secretFor(v), v.Secret, p.run.spec.SecurityContext); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeConfigMapVolumes writes the pod's ConfigMap volumes anew from data, as the kubelet does
// when a mounted ConfigMap changes.
func (p *pod) writeConfigMapVolumes(data map[string]string) error {
	for _, v := range p.run.spec.Volumes {
		if v.ConfigMap != nil {
			if err := writeConfigMapVolume(filepath.Join(p.run.dir, "volumes", v.Name), data, v.ConfigMap.Items); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *pod) container(name string) *container {
	for _, c := range p.containers {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

// kill is a node loss or a forced delete: every process gets SIGKILL at once, no hook runs.
func (p *pod) kill(n *network) error {
	p.mu.Lock()
	p.deleting = true
	p.mu.Unlock()
	for _, c := range p.containers {
		c.signal(syscall.SIGKILL, true)
	}
	for _, c := range p.containers {
		c.wait(5 * time.Second)
	}
	return p.removeSandbox(n)
}

// delete is a graceful pod deletion: each container at once runs its preStop hook (if any) and
// then gets SIGTERM; whatever still runs when the grace period ends gets SIGKILL.
func (p *pod) delete(n *network) error {
	p.mu.Lock()
	p.deleting = true
	p.mu.Unlock()
	grace := 30 * time.Second
	if s := p.run.spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	deadline := time.Now().Add(grace)
	var wg sync.WaitGroup
	for _, c := range p.containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.spec.Lifecycle != nil && c.spec.Lifecycle.PreStop != nil && c.spec.Lifecycle.PreStop.Exec != nil {
				c.runHook(c.spec.Lifecycle.PreStop.Exec.Command, deadline)
			}
			c.signal(syscall.SIGTERM, false)
			if !c.wait(time.Until(deadline)) {
				fmt.Fprintf(c.log, "=== lab: grace period over, SIGKILL\n")
				c.signal(syscall.SIGKILL, true)
				c.wait(5 * time.Second)
			}
			c.signal(syscall.SIGKILL, true) // children the main process left behind
		}()
	}
	wg.Wait()
	return p.removeSandbox(n)
}

// runHook runs an exec hook inside the container, as the container's user, until deadline. The
// hook's own output goes to a file of its own: the kubelet puts it nowhere that `kubectl logs`
// shows (it throws away a successful hook's output), so neither does the lab's container log.
func (c *container) runHook(command []string, deadline time.Time) {
	cmd, err := c.pod.enter(c.spec, command, c.env)
	if err != nil {
		fmt.Fprintf(c.log, "=== lab: hook: %v\n", err)
		return
	}
	hookLog, err := os.OpenFile(filepath.Join(c.pod.run.dir, c.spec.Name+".prestop.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(c.log, "=== lab: hook: %v\n", err)
		return
	}
	defer hookLog.Close()
	cmd.Stdout, cmd.Stderr = hookLog, hookLog
	fmt.Fprintf(c.log, "=== lab: preStop %s\n", time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(c.log, "=== lab: hook: %v\n", err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		fmt.Fprintf(c.log, "=== lab: preStop done %s: %v\n", time.Now().Format(time.RFC3339Nano), err)
	case <-time.After(time.Until(deadline)):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		fmt.Fprintf(c.log, "=== lab: preStop killed at the end of the grace period\n")
	}
}

func (p *pod) removeSandbox(n *network) error {
	if p.pause != nil && p.pause.Process != nil {
		_ = syscall.Kill(-p.pause.Process.Pid, syscall.SIGKILL)
		_ = p.pause.Wait()
	}
	for _, c := range p.containers {
		_ = c.log.Close()
	}
	return n.removeHost(p.ns)
}
