package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The scripts run under the image's /bin/sh: dash on Debian-based images, BusyBox ash on Alpine.
// shellcheck -s sh holds them to POSIX sh. CI installs shellcheck; elsewhere a missing
// shellcheck skips the test, except under CI, where it fails.
func TestScriptsArePOSIXShAndShellcheckClean(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("shellcheck is not installed; .ci/run installs it")
		}
		t.Skip("shellcheck is not installed (apt-get install shellcheck)")
	}
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "components", "scripts", "*.sh"))
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, script := range scripts {
		body, err := os.ReadFile(script)
		require.NoError(t, err)
		assert.Regexp(t, `^#!/bin/sh\n`, string(body), "%s starts with a POSIX shebang", script)
	}
	args := append([]string{"-s", "sh", "-x", "-P", filepath.Join(repoRoot, "components", "scripts")}, scripts...)
	out, err := exec.Command("shellcheck", args...).CombinedOutput()
	assert.NoError(t, err, "shellcheck:\n%s", out)
}
