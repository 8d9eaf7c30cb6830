package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

func readme(t *testing.T) string {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	return string(body)
}

// The README's example of importing the component is type-checked against the current code, so
// it cannot silently rot.
func TestTheREADMEExampleCompiles(t *testing.T) {
	text := readme(t)
	_, after, found := strings.Cut(text, "<!-- This program is compiled by tests/readme_test.go. -->\n```go\n")
	require.True(t, found, "the README has the marked example")
	program, _, found := strings.Cut(after, "```")
	require.True(t, found)
	require.Contains(t, program, "components.NewRedisSentinel(")

	file := filepath.Join(t.TempDir(), "main.go")
	require.NoError(t, os.WriteFile(file, []byte(program), 0o644))
	vet := exec.Command("go", "vet", file)
	vet.Dir = repoRoot
	out, err := vet.CombinedOutput()
	assert.NoError(t, err, "go vet of the README example:\n%s", out)
}

func TestTheREADMEShowsTheNewcomerCommandsAndEveryConfigKey(t *testing.T) {
	text := readme(t)
	assert.Contains(t, text, "go run ./cmd/render -stack local -out ")
	assert.Contains(t, text, "\ngo test ./...\n")
	project, err := render.LoadProject(repoRoot)
	require.NoError(t, err)
	for key := range project.Config {
		assert.True(t, strings.Contains(text, "| `"+key+"` |"), "the README's configuration tables lack %s", key)
	}
}
