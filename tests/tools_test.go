package tests

import (
	"os"
	"os/exec"
	"path/filepath"
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
		check.Env = append(os.Environ(), "REDIS_PASSWORD="+testPassword)
		out, err := check.CombinedOutput()
		assert.NoError(t, err, "haproxy -c %v:\n%s", overrides, out)
		assert.Contains(t, string(out), "Configuration file is valid")
	}
}
