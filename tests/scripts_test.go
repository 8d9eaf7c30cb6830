package tests

import (
	"bytes"
	"fmt"
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
	t                     *testing.T
	sh                    string // the userland's shell
	env                   []string
	stubs, templates, run string
	fqdn                  func(ordinal int) string
}

// newScriptPod prepares pod `ordinal` of the local stack's release, some keys replaced.
func newScriptPod(t *testing.T, ordinal int, overrides map[string]string) *scriptPod {
	t.Helper()
	r := mustRunStack(t, overrides)
	root := t.TempDir()
	p := &scriptPod{
		t: t, stubs: filepath.Join(root, "stubs"), templates: filepath.Join(root, "templates"),
		run: filepath.Join(root, "run"),
	}
	for _, dir := range []string{p.stubs, p.templates, p.run} {
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

// command runs one of the scripts with the container's environment.
func (p *scriptPod) command(script string) *exec.Cmd {
	cmd := exec.Command(p.sh, filepath.Join(p.templates, script))
	cmd.Env = p.env
	return cmd
}

// Replies of the stand-ins, as redis-cli prints them to a pipe.
const (
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
}
