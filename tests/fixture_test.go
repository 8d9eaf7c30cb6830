package tests

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixtureScript runs a bash script that sources hack/lib.sh with a fake component, the way the
// fixtures start theirs, in dir; it returns the script's output.
func fixtureScript(t *testing.T, dir, body string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("the fake component is python3's http.server")
	}
	lib, err := filepath.Abs(filepath.Join(repoRoot, "hack", "lib.sh"))
	require.NoError(t, err)
	script := fmt.Sprintf(`set -euo pipefail
. %q
: >%q/pids
launch_fake() { launch "$1" fake python3 -m http.server "$2" --bind 127.0.0.1 --directory "$1/"; }
ready_fake() { http_get "$2" / | grep -q '^HTTP/1.[01] 200'; }
%s`, lib, dir, body)
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	t.Cleanup(func() { _ = exec.Command("pkill", "-f", "http.server .* --directory "+dir+"/").Run() })
	return string(out), err
}

// A port taken between the pick and the bind (by anything: another test, a leftover) is what
// made a warm CI run fail once in five; start_component picks other ports and goes on.
func TestAFixtureComponentWhosePortIsTakenStartsOnAnother(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()
	dir := t.TempDir()
	// free_ports runs in a command substitution: its first answer (the taken port) is told by a file.
	// sed, not head, prints the status line: head exits after it, and under pipefail the
	// SIGPIPE that http_get then may get failed the script (exit 141, once in a CI run).
	out, err := fixtureScript(t, dir, fmt.Sprintf(`free_ports() {
	if [ ! -e %[1]q/picked ]; then touch %[1]q/picked; echo %[2]d; else echo %[3]d; fi
}
start_component %[1]q fake 1 20
http_get %[3]d / | sed -n 1p`, dir, taken.Addr().(*net.TCPAddr).Port, freePort))
	require.NoError(t, err, out)
	assert.Contains(t, out, "fake: a port was taken after it was picked (attempt 1); picking others")
	assert.Contains(t, out, "fake ready in")
	assert.Regexp(t, `HTTP/1.[01] 200`, out, "the component serves on the second port")
}

// A component that exits for another reason fails the start at once, and every component's log
// is printed, not only that one's: the cause may be in another.
func TestAFixtureComponentThatExitsPrintsEveryLog(t *testing.T) {
	dir := t.TempDir()
	out, err := fixtureScript(t, dir, fmt.Sprintf(`launch %[1]q etcd sh -c 'echo "etcd: disk full (%[1]s/)"; exit 1'
sleep 0.5
launch_broken() { launch "$1" broken sh -c "echo 'broken: cannot reach etcd'; exit 3 # $1/"; }
ready_broken() { false; }
start_component %[1]q broken 0 20`, dir))
	require.Error(t, err, out)
	assert.Contains(t, out, "broken exited before it was ready")
	for _, want := range []string{"the end of " + dir + "/etcd.log", "etcd: disk full", "the end of " + dir + "/broken.log", "broken: cannot reach etcd"} {
		assert.Contains(t, out, want)
	}
	assert.False(t, strings.Contains(out, "not ready after"), "it did not wait for the timeout:\n%s", out)
}
