package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// localWith makes a project directory whose local stack is the real one plus some keys (lines
// as they would be written in Pulumi.local.yaml).
func localWith(t *testing.T, lines ...string) string {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(repoRoot, "Pulumi.local.yaml"))
	require.NoError(t, err)
	_, config, found := strings.Cut(string(body), "config:\n")
	require.True(t, found)
	for _, line := range lines {
		config += "  redis-sentinel:" + line + "\n"
	}
	return project(t, "local", config)
}

// renderLocal writes a render of the local stack of a project directory and returns its path.
func renderLocal(t *testing.T, projectDir string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "old")
	out, code := runRender(t, append([]string{"-project", projectDir, "-stack", "local", "-out", dir}, extra...)...)
	require.Equal(t, 0, code, out)
	return dir
}

func TestRenderDiffOfAnIdenticalRenderSaysNothingAndExits0(t *testing.T) {
	old := renderLocal(t, repoRoot)
	out, code := runRender(t, "-project", repoRoot, "-stack", "local", "-diff", old)
	assert.Equal(t, 0, code)
	assert.Empty(t, out)

	// A file whose last newline was lost (an editor, a copy) is still the same render.
	file := filepath.Join(old, "statefulset-redis.yaml")
	body, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, []byte(strings.TrimSuffix(string(body), "\n")), 0o644))
	out, code = runRender(t, "-project", repoRoot, "-stack", "local", "-diff", old)
	assert.Equal(t, 0, code, out)
}

func TestRenderDiffOfAChangedConfigNamesTheObjectAndTheLineAndExits1(t *testing.T) {
	old := renderLocal(t, repoRoot)
	out, code := runRender(t, "-project", localWith(t, "replicas: 5"), "-stack", "local", "-diff", old)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "changed: statefulset-redis.yaml\n"+
		"--- old/statefulset-redis.yaml\n"+
		"+++ new/statefulset-redis.yaml\n")
	assert.Contains(t, out, "\n-  replicas: 3\n+  replicas: 5\n")
	assert.Contains(t, out, "changed: configmap-redis-config.yaml\n", "the sentinels' quorum and HAProxy's servers change too")
	assert.NotContains(t, out, "service-redis-headless.yaml", "objects that did not change are not mentioned")
	assert.Regexp(t, `stack local differs from \S+ in \d+ files: \d+ changed, 0 added, 0 removed\n$`, out)
}

func TestRenderDiffShowsObjectsAddedAndRemovedWhole(t *testing.T) {
	withNamespace := renderLocal(t, repoRoot)
	withoutNamespace := renderLocal(t, localWith(t, "createNamespace: false"))

	out, code := runRender(t, "-project", localWith(t, "createNamespace: false"), "-stack", "local", "-diff", withNamespace)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "removed: namespace-redis-namespace.yaml\n--- old/namespace-redis-namespace.yaml\n+++ /dev/null\n@@ -1,7 +0,0 @@\n-apiVersion: v1\n-kind: Namespace\n")
	assert.Contains(t, out, "changed: plan.json\n", "the plan loses the Namespace too")

	out, code = runRender(t, "-project", repoRoot, "-stack", "local", "-diff", withoutNamespace)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "added: namespace-redis-namespace.yaml\n--- /dev/null\n+++ new/namespace-redis-namespace.yaml\n@@ -0,0 +1,7 @@\n+apiVersion: v1\n+kind: Namespace\n")
}

func TestRenderDiffAgainstSomethingThatIsNotARenderExits2(t *testing.T) {
	notes := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notes, "notes.txt"), []byte("mine"), 0o644))
	badPlan := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(badPlan, render.PlanFile), []byte("not json"), 0o644))
	notAnObject := renderLocal(t, repoRoot)
	require.NoError(t, os.WriteFile(filepath.Join(notAnObject, "notes.yaml"), []byte("- a list\n"), 0o644))

	for dir, want := range map[string]string{
		filepath.Join(t.TempDir(), "missing"): "no such file or directory",
		t.TempDir():                           "holds no render: it has no plan.json",
		notes:                                 "holds no render: it has no plan.json",
		badPlan:                               "holds no render: plan.json is not a plan",
		notAnObject:                           "holds no render: notes.yaml: not a Kubernetes object",
	} {
		out, code := runRender(t, "-project", repoRoot, "-stack", "local", "-diff", dir)
		assert.Equal(t, 2, code, out)
		assert.Contains(t, out, want)
	}
}

// An invalid configuration is trouble (2), not a difference (1), for a script that reads the
// exit code; with -out it stays 1 (TestRenderOfAnInvalidConfigFailsNamingTheKeyAndWritesNothing).
func TestRenderDiffOfAnInvalidConfigExits2NamingTheKey(t *testing.T) {
	old := renderLocal(t, repoRoot)
	out, code := runRender(t, "-project", localWith(t, "replicas: 2"), "-stack", "local", "-diff", old)
	assert.Equal(t, 2, code)
	assert.Contains(t, out, "replicas: 2 is not allowed")
}

func TestRenderDiffTakesExactlyOneOfOutAndDiff(t *testing.T) {
	old := renderLocal(t, repoRoot)
	out, code := runRender(t, "-project", repoRoot, "-stack", "local", "-diff", old, "-out", t.TempDir())
	assert.Equal(t, 2, code)
	assert.Contains(t, out, "usage: render -stack NAME (-out DIR [-show-secrets] | -diff OLD_DIR)")
}

func TestRenderDiffNeverShowsSecretValues(t *testing.T) {
	const password = "diff-test-password-0123456789"
	changed := localWith(t, "password: "+password, "replicas: 5")
	shown := renderLocal(t, changed, "-show-secrets")
	require.Contains(t, string(readDir(t, shown)["secret-redis-auth.yaml"]), password,
		"negative control: the password reaches the rendered Secret")

	old := renderLocal(t, repoRoot)
	out, code := runRender(t, "-project", changed, "-stack", "local", "-diff", old)
	assert.Equal(t, 1, code, out)
	assert.NotContains(t, out, password)
	assert.NotContains(t, out, "secret-redis-auth.yaml", "both sides are redacted, so the Secret does not change")

	out, code = runRender(t, "-project", changed, "-stack", "local", "-diff", old, "-show-secrets")
	assert.Equal(t, 2, code)
	assert.Contains(t, out, "-diff never shows secret values; drop -show-secrets")
	assert.NotContains(t, out, password)

	// An old render made with -show-secrets would print its values on the removed lines.
	out, code = runRender(t, "-project", repoRoot, "-stack", "local", "-diff", shown)
	assert.Equal(t, 2, code)
	assert.Contains(t, out, "secret-redis-auth.yaml: stringData.monitor-password is not <redacted>", "the first key in order")
	assert.NotContains(t, out, password)
}
