package tests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// scriptPod runs the redis container's scripts, as rendered, outside a pod: with the environment
// the StatefulSet sets, BusyBox's applets as the userland (the images' own; the system's shell and
// coreutils when BusyBox is not installed), and stand-ins for redis-cli and redis-server.
type scriptPod struct {
	t                           *testing.T
	sh                          string // the userland's shell
	env                         []string
	stubs, templates, run, data string
	fqdn                        func(ordinal int) string
}

// newScriptPod prepares pod `ordinal` of the local stack's release, some keys replaced.
func newScriptPod(t *testing.T, ordinal int, overrides map[string]string) *scriptPod {
	t.Helper()
	r := mustRunStack(t, overrides)
	root := t.TempDir()
	p := &scriptPod{
		t: t, stubs: filepath.Join(root, "stubs"), templates: filepath.Join(root, "templates"),
		run: filepath.Join(root, "run"), data: filepath.Join(root, "data"),
	}
	for _, dir := range []string{p.stubs, p.templates, p.run, p.data} {
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	for key, value := range r.object(typeConfigMap, "redis-config")["data"].(map[string]any) {
		require.NoError(t, os.WriteFile(filepath.Join(p.templates, key), []byte(value.(string)), 0o644))
	}

	path := p.stubs + ":/usr/bin:/bin"
	p.sh = "/bin/sh"
	if busybox, err := exec.LookPath("busybox"); err == nil {
		bin := filepath.Join(root, "busybox")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		applets, err := exec.Command(busybox, "--list").Output()
		require.NoError(t, err)
		for _, applet := range strings.Fields(string(applets)) {
			require.NoError(t, os.Symlink(busybox, filepath.Join(bin, applet)))
		}
		path = bin + ":" + p.stubs
		p.sh = filepath.Join(bin, "sh")
	} else {
		t.Log("BusyBox is not installed: the scripts run with the system's sh and coreutils")
	}
	// redis-cli -h HOST -p PORT ARGS...: the file stubs/HOST:PORT answers, a script that finds the
	// command in "$*". No file: the connection is refused.
	p.stub("redis-cli", `host=$2 port=$4
shift 4
[ -f "$STUBS/$host:$port" ] || { echo "Could not connect to Redis at $host:$port" >&2; exit 1; }
. "$STUBS/$host:$port"
`)

	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	name := fmt.Sprintf("%s-%d", sts.Name, ordinal)
	p.env = []string{"PATH=" + path, "HOME=/", "STUBS=" + p.stubs}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		value := strings.ReplaceAll(e.Value, "$(POD_NAME)", name)
		switch {
		case e.Name == "POD_NAME":
			value = name
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			value = testPassword
		}
		switch e.Name {
		case "TEMPLATE_DIR":
			value = p.templates
		case "RUN_DIR":
			value = p.run
		case "DATA_DIR":
			value = p.data
		case "AUTH_DIR":
			value = filepath.Join(root, "auth")
			require.NoError(t, os.MkdirAll(value, 0o755))
			for key, password := range map[string]string{"password": testPassword, "monitor-password": testMonitorPassword} {
				require.NoError(t, os.WriteFile(filepath.Join(value, key), []byte(password), 0o644))
			}
		}
		p.env = append(p.env, e.Name+"="+value)
	}
	domain := p.getenv("PEER_DOMAIN")
	p.fqdn = func(i int) string { return fmt.Sprintf("%s-%d.%s", sts.Name, i, domain) }
	return p
}

func (p *scriptPod) getenv(name string) string {
	for _, kv := range p.env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	p.t.Fatalf("the redis container has no %s", name)
	return ""
}

// stub writes an executable stand-in for a command.
func (p *scriptPod) stub(name, body string) {
	require.NoError(p.t, os.WriteFile(filepath.Join(p.stubs, name), []byte("#!/bin/sh\n"+body), 0o755))
}

// answer makes host:port answer redis-cli with a script (see newScriptPod).
func (p *scriptPod) answer(host, port, script string) {
	require.NoError(p.t, os.WriteFile(filepath.Join(p.stubs, host+":"+port), []byte(script), 0o644))
}

// unreachable makes host:port hang, as an address that drops packets does.
func (p *scriptPod) unreachable(host, port string) { p.answer(host, port, "exec sleep 1000\n") }

// command runs one of the scripts with the container's environment, and extraEnv.
func (p *scriptPod) command(script string, extraEnv ...string) *exec.Cmd {
	cmd := exec.Command(p.sh, filepath.Join(p.templates, script))
	cmd.Env = append(append([]string{}, p.env...), extraEnv...)
	return cmd
}

// Replies of the stand-ins, as redis-cli prints them to a pipe.
const (
	masterWithReplica = `case "$*" in
"INFO replication") printf 'role:master\r\nconnected_slaves:1\r\n' ;;
"CONFIG GET min-replicas-to-write") printf 'min-replicas-to-write\n1\n' ;;
*) echo OK ;;
esac
`
	syncedReplicaOf = `case "$*" in
"INFO replication") printf 'role:slave\r\nmaster_host:%s\r\nmaster_port:6379\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n' ;;
*) echo OK ;;
esac
`
	// A sentinel that names a master with config-epoch 1, and accepts a failover it never makes.
	sentinelNaming = `case "$*" in
"SENTINEL master mymaster") printf 'name\nmymaster\nip\n%s\nport\n6379\nflags\nmaster\nconfig-epoch\n1\n' ;;
"SENTINEL failover mymaster") echo OK ;;
esac
`
)

// The kubelet throws away the output of a hook that succeeds: the preStop's lines must reach the
// standard output of redis-server, which `kubectl logs` shows.
func TestThePreStopLogsToTheServersStandardOutput(t *testing.T) {
	p := newScriptPod(t, 0, nil)
	p.answer("localhost", "6379", masterWithReplica)
	p.answer(p.fqdn(1), "26379", fmt.Sprintf(sentinelNaming, p.fqdn(1)))

	// The container's main process, and the pipe its output goes to, as containerd gives it.
	server := exec.Command("sleep", "60")
	out, err := server.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, server.Start())
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
	var logged bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&logged, out); close(copied) }()
	require.NoError(t, os.WriteFile(filepath.Join(p.run, "redis.pid"), []byte(strconv.Itoa(server.Process.Pid)+"\n"), 0o644))

	hook, err := p.command("redis-prestop.sh").CombinedOutput()
	require.NoError(t, err, "%s", hook)
	require.NoError(t, server.Process.Kill())
	<-copied
	assert.Contains(t, logged.String(), "redis-0 preStop: this pod is the master; asking the sentinels to fail over\n")
	assert.Contains(t, logged.String(), "redis-0 preStop: "+p.fqdn(1)+" is master now\n")
	assert.Empty(t, string(hook), "nothing is left for the kubelet to throw away")

	// Without the server (it died, or never recorded its pid) the lines go to the hook's stderr.
	require.NoError(t, os.Remove(filepath.Join(p.run, "redis.pid")))
	hook, err = p.command("redis-prestop.sh").CombinedOutput()
	require.NoError(t, err, "%s", hook)
	assert.Contains(t, string(hook), "preStop: this pod is the master; asking the sentinels to fail over\n")
}

// Once the sentinels name the new master, the preStop points every replica that still follows
// this pod at it: the sentinels' leader skips a replica it has no link to (one that a rolling
// update restarted moments before), and the new master refuses writes until it has a replica.
func TestThePreStopPointsTheReplicasLeftBehindAtTheNewMaster(t *testing.T) {
	p := newScriptPod(t, 0, nil)
	p.answer("localhost", "6379", masterWithReplica)
	p.answer(p.fqdn(1), "26379", fmt.Sprintf(sentinelNaming, p.fqdn(1)))
	sent := filepath.Join(t.TempDir(), "sent")
	p.answer(p.fqdn(2), "6379", fmt.Sprintf(`echo "$*" >>%s
case "$*" in
"INFO replication") printf 'role:slave\r\nmaster_host:%s\r\nmaster_port:6379\r\nmaster_link_status:down\r\n' ;;
*) echo OK ;;
esac
`, sent, p.fqdn(0)))
	hook, err := p.command("redis-prestop.sh").CombinedOutput()
	require.NoError(t, err, "%s", hook)
	commands, err := os.ReadFile(sent)
	require.NoError(t, err)
	assert.Contains(t, string(commands), "REPLICAOF "+p.fqdn(1)+" 6379\n", "the replica left following this pod is pointed at the new master")
}

// However many peers are unreachable, the preStop ends in time for redis to stop within the pod's
// grace period: it may need shutdown-timeout after SIGTERM. The worst case: a sentinel accepts the
// failover and never makes it, and every other peer drops packets, each costing redis-cli's
// timeout on every round (7 pods: 5 of them per round).
func TestThePreStopEndsWithinTheGracePeriodWhenPeersAreUnreachable(t *testing.T) {
	t.Parallel()
	p := newScriptPod(t, 0, map[string]string{"replicas": "7"})
	p.answer("localhost", "6379", masterWithReplica)
	p.answer(p.fqdn(0), "26379", fmt.Sprintf(sentinelNaming, p.fqdn(0)))
	p.answer(p.fqdn(1), "26379", fmt.Sprintf(sentinelNaming, p.fqdn(0)))
	for i := 2; i < 7; i++ {
		p.unreachable(p.fqdn(i), "26379")
		p.unreachable(p.fqdn(i), "6379")
	}
	r := mustRunStack(t, map[string]string{"replicas": "7"})
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	grace := time.Duration(*sts.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	var hook []byte
	var err error
	shutdown := 10 // Redis's default
	for _, line := range strings.Split(r.configFile("redis.conf"), "\n") {
		if v, ok := strings.CutPrefix(line, "shutdown-timeout "); ok {
			shutdown, err = strconv.Atoi(v)
			require.NoError(t, err)
		}
	}

	began := time.Now()
	hook, err = p.command("redis-prestop.sh").CombinedOutput()
	took := time.Since(began)
	require.NoError(t, err, "%s", hook)
	assert.Contains(t, string(hook), "no new master within")
	const margin = 2 * time.Second
	assert.LessOrEqual(t, took+time.Duration(shutdown)*time.Second+margin, grace,
		"the preStop took %s; redis may take %d s more to stop; the grace period is %s", took.Round(100*time.Millisecond), shutdown, grace)
	t.Logf("preStop with unreachable peers: %s", took.Round(100*time.Millisecond))
}

// zombieChildren counts the processes whose parent is pid and that have ended unreaped.
func zombieChildren(t *testing.T, pid int) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	n := 0
	for _, stat := range stats {
		body, err := os.ReadFile(stat)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
		fields := strings.Fields(string(body[bytes.LastIndexByte(body, ')')+1:]))
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}

// redis-server reaps children only while it has a fork of its own, so a child of the start
// script that ends after the exec stays a zombie under it for good. (Orphans go to the pod's PID
// 1, the pause container, which reaps them: TestRedisPodsAreHardenedProbedAndStopGracefully.)
func TestTheStartScriptLeavesNoZombieUnderTheServer(t *testing.T) {
	p := newScriptPod(t, 0, nil)
	p.answer(p.fqdn(1), "26379", fmt.Sprintf(sentinelNaming, p.fqdn(1)))
	p.answer("localhost", "6379", fmt.Sprintf(syncedReplicaOf, p.fqdn(1)))
	p.stub("redis-server", "exec sleep 60\n") // a server that never reaps
	start := p.command("redis-start.sh")
	var out bytes.Buffer
	start.Stdout, start.Stderr = &out, &out
	require.NoError(t, start.Start())
	t.Cleanup(func() { _ = start.Process.Kill(); _ = start.Wait() })

	require.Eventually(t, func() bool { return strings.Contains(out.String(), "a failover candidate now") }, 10*time.Second, 100*time.Millisecond, "%s", &out)
	time.Sleep(2 * time.Second) // the watcher's next rounds
	assert.Zero(t, zombieChildren(t, start.Process.Pid), "zombies under the server; its output:\n%s", &out)
	pid, err := os.ReadFile(filepath.Join(p.run, "redis.pid"))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(start.Process.Pid)+"\n", string(pid), "the pid the preStop writes its log lines to")
}

// After a full restart nobody knows the master. A pod whose data followed another pod's may hold
// stale data (it was down, or resyncing, while the master took writes): it must wait for the pod
// whose data was the master's, never bootstrap itself, and the others must not resync from it.
func TestAfterAFullRestartOnlyThePodThatWasMasterBootstraps(t *testing.T) {
	for _, c := range []struct {
		sentence  string
		ordinal   int
		recorded  int // the ordinal the data volume names as master; -1: a new volume
		replicaOf int // -1: starts as master
	}{
		{"pod 0, whose data followed pod 1, waits for pod 1", 0, 1, 1},
		{"pod 1, whose data was the master's, bootstraps at once", 1, 1, -1},
		{"pod 0 of a new release bootstraps", 0, -1, -1},
		{"pod 1 of a new release follows pod 0", 1, -1, 0},
	} {
		t.Run(c.sentence, func(t *testing.T) {
			p := newScriptPod(t, c.ordinal, nil) // no server, no sentinel answers
			p.stub("redis-server", "exit 0\n")
			if c.recorded >= 0 {
				require.NoError(t, os.WriteFile(filepath.Join(p.data, "master"), []byte(p.fqdn(c.recorded)+" 6379\n"), 0o644))
			}
			began := time.Now()
			out, err := p.command("redis-start.sh", "BOOTSTRAP_WAIT_SECONDS=3").CombinedOutput()
			require.NoError(t, err, "%s", out)
			conf, err := os.ReadFile(filepath.Join(p.run, "redis.conf"))
			require.NoError(t, err)
			if c.replicaOf < 0 {
				assert.NotContains(t, string(conf), "\nreplicaof ", "%s", out)
				assert.Less(t, time.Since(began), 3*time.Second, "no wait for a master")
			} else {
				assert.Contains(t, string(conf), "\nreplicaof "+p.fqdn(c.replicaOf)+" 6379\n", "%s", out)
			}
		})
	}
}

// During a rotation the scripts log in with the previous password first (every server takes it
// until the rotation's last step), and with the current one when it is refused: a pod's Secret
// files can lag behind that last step. Commands on standard input are sent again too.
func TestTheScriptsTryThePreviousPasswordFirstAndTheCurrentOneWhenRefused(t *testing.T) {
	p := newScriptPod(t, 0, nil)
	const previous = "Previous-Horse-Battery-Staple-41"
	require.NoError(t, os.WriteFile(filepath.Join(p.getenv("AUTH_DIR"), "previous-password"), []byte(previous), 0o644))
	tries := filepath.Join(t.TempDir(), "tries")
	answer := func(accepted string) {
		p.answer("localhost", "6379", fmt.Sprintf(`echo "$REDISCLI_AUTH" >>%s
if [ "$REDISCLI_AUTH" = %s ]; then
	[ "$#" -gt 0 ] && echo PONG || sed 's/PING/PONG/'
else
	printf 'NOAUTH Authentication required.\n\n'
fi
`, tries, accepted))
	}
	call := func(stdin string, args ...string) (string, []string) {
		require.NoError(t, os.RemoveAll(tries))
		cmd := exec.Command(p.sh, append([]string{"-c", `. "$TEMPLATE_DIR/common.sh"; cli localhost 6379 "$@"`, "cli"}, args...)...)
		cmd.Env, cmd.Stdin = p.env, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		tried, err := os.ReadFile(tries)
		require.NoError(t, err)
		return strings.TrimSpace(string(out)), strings.Fields(string(tried))
	}

	answer(previous)
	out, tried := call("", "PING")
	assert.Equal(t, "PONG", out)
	assert.Equal(t, []string{previous}, tried, "the previous password first, and only it while it works")

	answer(testPassword)
	out, tried = call("", "PING")
	assert.Equal(t, "PONG", out)
	assert.Equal(t, []string{previous, testPassword}, tried, "the current one after a refusal")
	out, tried = call("PING\n")
	assert.Equal(t, "PONG", out, "standard input is sent again")
	assert.Equal(t, []string{previous, testPassword}, tried)

	answer("Neither-Horse-Battery-Staple-40")
	out, _ = call("", "PING")
	assert.Equal(t, "NOAUTH Authentication required.", out, "when both are refused, the last refusal is the reply")
}

// The credentials Job runs again on every change of the release, during or right after a
// rolling update. Setting a sentinel's auth-pass or sentinel-pass drops its links (to the
// servers, to the other sentinels), which in the middle of a handover cost the real node's
// rolling update 7 s without writes: the Job sets them only when they change, and both together.
func TestTheCredentialsJobLeavesASentinelsLinksAloneWhenItsPasswordsHold(t *testing.T) {
	for _, c := range []struct {
		name, sentinelPass string
		wantSet            bool
	}{
		{"passwords unchanged", testPassword, false},
		{"a rotation begins: the peer password changes", "Previous-Horse-Battery-Staple-41", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newScriptPod(t, 0, nil)
			sent := filepath.Join(t.TempDir(), "sent")
			for i := 0; i < 3; i++ {
				p.answer(p.fqdn(i), "6379", "sed 's/.*/OK/'\n")
				p.answer(p.fqdn(i), "26379", fmt.Sprintf(`case "$*" in
"SENTINEL CONFIG GET sentinel-pass") printf 'sentinel-pass\n%%s\n' %q ;;
"") tee -a %s | sed 's/.*/OK/' ;;
esac
`, c.sentinelPass, sent))
			}
			out, err := p.command("credentials.sh", "PODS=3", "CREDENTIALS_WAIT_SECONDS=5").CombinedOutput()
			require.NoError(t, err, "%s", out)
			commands, err := os.ReadFile(sent)
			require.NoError(t, err)
			for _, set := range []string{"SENTINEL SET mymaster auth-pass", "SENTINEL CONFIG SET sentinel-pass"} {
				assert.Equal(t, c.wantSet, strings.Contains(string(commands), set), "%s in what the sentinels were sent:\n%s", set, commands)
			}
			assert.Equal(t, 6, strings.Count(string(commands), "ACL SETUSER"), "the monitor and default users, on each of 3 sentinels:\n%s", commands)
		})
	}
}
