package tests

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden manifests in testdata/ from the current render")

// renderBinary is cmd/render, built on first use for the tests that run it as a user would (a
// run of only the engine or API-server tests does not link it), and removed when the tests end.
var renderBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if renderBinary.dir != "" {
		os.RemoveAll(renderBinary.dir)
	}
	os.Exit(code)
}

// renderPath builds cmd/render once and returns its path.
func renderPath(t *testing.T) string {
	t.Helper()
	renderBinary.once.Do(func() {
		renderBinary.dir, renderBinary.err = os.MkdirTemp("", "render-bin-")
		if renderBinary.err != nil {
			return
		}
		renderBinary.path = filepath.Join(renderBinary.dir, "render")
		out, err := exec.Command("go", "build", "-o", renderBinary.path, "../cmd/render").CombinedOutput()
		if err != nil {
			renderBinary.err = fmt.Errorf("building cmd/render: %w\n%s", err, out)
		}
	})
	require.NoError(t, renderBinary.err)
	return renderBinary.path
}

// runRender runs the render binary; it returns stdout+stderr and the exit code.
func runRender(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(renderPath(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), 0
}

// readDir returns every file of a directory by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = body
	}
	return files
}

func TestRenderWritesEveryObjectOfTheLocalStackTheSameEveryTime(t *testing.T) {
	first, second := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, dir := range []string{first, second} {
		out, code := runRender(t, "-project", repoRoot, "-stack", "local", "-out", dir)
		require.Equal(t, 0, code, out)
	}
	a, b := readDir(t, first), readDir(t, second)
	assert.Equal(t, a, b, "same input, same bytes")
	for _, name := range []string{
		"secret-redis-auth.yaml", "configmap-redis-config.yaml", "statefulset-redis.yaml",
		"service-redis-headless.yaml", "service-redis-sentinel.yaml", "service-redis-master.yaml",
		"deployment-redis-haproxy.yaml", "poddisruptionbudget-redis.yaml", "networkpolicy-redis.yaml",
		"serviceaccount-redis.yaml", "namespace-redis-namespace.yaml", render.PlanFile,
	} {
		assert.Contains(t, a, name)
	}
	assert.Contains(t, string(a["secret-redis-auth.yaml"]), "password: "+render.Redacted)
	assert.Contains(t, string(a[render.PlanFile]), `"type": "random:index/randomPassword:RandomPassword"`,
		"the plan lists every resource, not only Kubernetes objects")
	for name, body := range a {
		assert.NotContains(t, string(body), render.GeneratedPassword, name)
	}
}

func TestRenderShowsSecretsOnlyWhenAsked(t *testing.T) {
	dir := t.TempDir()
	out, code := runRender(t, "-project", repoRoot, "-stack", "local", "-out", dir, "-show-secrets")
	require.Equal(t, 0, code, out)
	assert.Contains(t, string(readDir(t, dir)["secret-redis-auth.yaml"]), "password: "+render.GeneratedPassword)
}

// project makes a project directory with the real Pulumi.yaml and one stack file.
func project(t *testing.T, stack, config string) string {
	t.Helper()
	dir := t.TempDir()
	body, err := os.ReadFile(filepath.Join(repoRoot, "Pulumi.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), body, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi."+stack+".yaml"), []byte("config:\n"+config), 0o644))
	return dir
}

func TestRenderOfAnInvalidConfigFailsNamingTheKeyAndWritesNothing(t *testing.T) {
	dir := project(t, "two", "  redis-sentinel:replicas: 2\n")
	out := filepath.Join(t.TempDir(), "out")
	msg, code := runRender(t, "-project", dir, "-stack", "two", "-out", out)
	assert.Equal(t, 1, code)
	assert.Contains(t, msg, "replicas: 2 is not allowed: an odd number of at least 3")
	assert.NoDirExists(t, out, "nothing is written")
}

func TestRenderRefusesAKeyThatPulumiYamlDoesNotDeclare(t *testing.T) {
	dir := project(t, "typo", "  redis-sentinel:replica: 5\n")
	msg, code := runRender(t, "-project", dir, "-stack", "typo", "-out", filepath.Join(t.TempDir(), "out"))
	assert.Equal(t, 1, code)
	assert.Contains(t, msg, "keys not declared in Pulumi.yaml: redis-sentinel:replica")
}

func TestRenderNeverOverwritesADirectoryThatIsNotAnEarlierRender(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
	msg, code := runRender(t, "-project", repoRoot, "-stack", "local", "-out", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, msg, "holds no earlier render")
	assert.Equal(t, map[string][]byte{"notes.txt": []byte("mine")}, readDir(t, dir))
}

func TestRenderEncryptedValuesArePlaceholdersNeverErrors(t *testing.T) {
	dir := project(t, "enc", "  redis-sentinel:password:\n    secure: v1:AAAABBBBCCCC\n")
	out := filepath.Join(t.TempDir(), "out")
	msg, code := runRender(t, "-project", dir, "-stack", "enc", "-out", out)
	require.Equal(t, 0, code, msg)
	assert.Contains(t, string(readDir(t, out)["secret-redis-auth.yaml"]), render.Redacted)
}

// The golden manifests show every stack whole in review; refresh them with
// `go test ./tests -run TestGoldenManifests -update` and read the diff.
func TestGoldenManifests(t *testing.T) {
	for _, stack := range []string{"local", "local-cluster", "local-tls", "gke", "eks"} {
		t.Run(stack, func(t *testing.T) {
			golden := filepath.Join("testdata", stack)
			dir := t.TempDir()
			out, code := runRender(t, "-project", repoRoot, "-stack", stack, "-out", dir)
			require.Equal(t, 0, code, out)
			got := readDir(t, dir)
			if *update {
				require.NoError(t, os.RemoveAll(golden))
				require.NoError(t, render.Write(golden, got))
			}
			want := readDir(t, golden)
			assert.ElementsMatch(t, keysOf(want), keysOf(got), "the same files")
			names := keysOf(got)
			sort.Strings(names)
			for _, name := range names {
				if w, ok := want[name]; ok && !bytes.Equal(w, got[name]) {
					t.Errorf("%s differs from %s (run with -update if the change is intended):\n%s",
						name, filepath.Join(golden, name), lineDiff(string(w), string(got[name])))
				}
			}
		})
	}
}

// lineDiff lists the lines that differ between want and got, with their line numbers.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&out, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return out.String()
}
