package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireTool returns the path of a Debian-packaged tool that a test runs. Without it the test
// is skipped, except under CI, where .ci/run installs it and its absence is a failure.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs the Debian package %s", name, debianPackage)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, debianPackage)
	}
	return path
}

// The scripts run under the image's /bin/sh: dash on Debian-based images, BusyBox ash on Alpine.
// shellcheck -s sh holds them to POSIX sh.
func TestScriptsArePOSIXShAndShellcheckClean(t *testing.T) {
	shellcheck := requireTool(t, "shellcheck", "shellcheck")
	dir := filepath.Join(repoRoot, "components", "scripts")
	scripts, err := filepath.Glob(filepath.Join(dir, "*.sh"))
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, script := range scripts {
		body, err := os.ReadFile(script)
		require.NoError(t, err)
		assert.Regexp(t, `^#!/bin/sh\n`, string(body), "%s starts with a POSIX shebang", script)
	}
	out, err := exec.Command(shellcheck, append([]string{"-s", "sh", "-x", "-P", dir}, scripts...)...).CombinedOutput()
	assert.NoError(t, err, "shellcheck:\n%s", out)
}

// Real HAProxy parses the rendered haproxy.cfg as HAProxy would in the pod (the password comes
// from the environment). It runs in an empty network namespace: the pod names cannot resolve
// there, which HAProxy only warns about, and no DNS query leaves the machine.
func TestHAProxyAcceptsTheRenderedConfig(t *testing.T) {
	haproxy := requireTool(t, "haproxy", "haproxy")
	unshare := requireTool(t, "unshare", "util-linux")
	for _, overrides := range []map[string]string{nil, {"replicas": "5", "quorum": "4", "masterSetName": "cache"}} {
		file := filepath.Join(t.TempDir(), "haproxy.cfg")
		require.NoError(t, os.WriteFile(file, []byte(mustRunStack(t, overrides).configFile("haproxy.cfg")), 0o644))
		check := exec.Command(unshare, "--net", haproxy, "-c", "-f", file)
		check.Env = append(os.Environ(), "MONITOR_PASSWORD="+testPassword)
		out, err := check.CombinedOutput()
		assert.NoError(t, err, "haproxy -c %v:\n%s", overrides, out)
		assert.Contains(t, string(out), "Configuration file is valid")
	}
}

// HAProxy's readiness is HAProxy's own. In an empty network namespace no pod name resolves, so no
// master is routable: /healthz (the probes) must still answer 200 and /master 503, and the
// probes must leave no line in HAProxy's log.
func TestHAProxyIsReadyWithoutAMasterAndItsProbesAreNotLogged(t *testing.T) {
	haproxy := requireTool(t, "haproxy", "haproxy")
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	bash := requireTool(t, "bash", "bash")
	dir := t.TempDir()
	cfg, log := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "haproxy.log")
	require.NoError(t, os.WriteFile(cfg, []byte(mustRunStack(t, nil).configFile("haproxy.cfg")), 0o644))
	// bash for /dev/tcp: the test needs no HTTP client in the namespace.
	script := `set -u
ip link set lo up
"$1" -db -f "$2" >"$3" 2>&1 &
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8404) 2>/dev/null && break; sleep 0.1; done
get() {
	exec 3<>/dev/tcp/127.0.0.1/8404
	printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
	echo "$1 $(head -n 1 <&3 | tr -d '\r')"
	exec 3<&-
}
for _ in 1 2 3; do get /healthz; done
get /master
(exec 3<>/dev/tcp/127.0.0.1/8404) # what a TCP liveness probe does
sleep 0.5
kill %1
wait
`
	run := exec.Command(unshare, "--net", bash, "-c", script, "probe", haproxy, cfg, log)
	run.Env = append(os.Environ(), "MONITOR_PASSWORD="+testPassword)
	out, err := run.CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	assert.Equal(t, []string{
		"/healthz HTTP/1.1 200 OK", "/healthz HTTP/1.1 200 OK", "/healthz HTTP/1.1 200 OK",
		"/master HTTP/1.1 503 Service Unavailable",
	}, lines)
	logged, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.NotRegexp(t, regexp.MustCompile(`(?m)health|Connect from`), string(logged), "a log line per probe")
}
