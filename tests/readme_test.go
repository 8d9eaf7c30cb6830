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

	"github.com/d3ad221e/redis-sentinel/components"
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

// The README's image table names the images the component pins, and the README names no other
// version of them: bumping an image in components/images.go without the README fails here.
func TestTheREADMENamesThePinnedImages(t *testing.T) {
	text := readme(t)
	_, table, found := strings.Cut(text, "| image | default | why this one |\n")
	require.True(t, found, "the README has the images table")
	table, _, _ = strings.Cut(table, "\n\n")
	pinned := map[string]string{
		"Redis (`engine: redis`)":   components.DefaultRedisImage,
		"Valkey (`engine: valkey`)": components.DefaultValkeyImage,
		"HAProxy":                   components.DefaultHAProxyImage,
		"exporter":                  components.DefaultMetricsImage,
	}
	rows := strings.Split(strings.TrimSpace(table), "\n")[1:] // after the separator row
	assert.Len(t, rows, len(pinned), "one row per pinned image:\n%s", table)
	for name, image := range pinned {
		row := findRow(rows, name)
		require.NotEmpty(t, row, "a row for %s:\n%s", name, table)
		assert.Contains(t, row, "| `"+image+"` |", "the %s row names %s", name, image)
		repository, _, _ := strings.Cut(image, ":")
		for _, named := range regexp.MustCompile(regexp.QuoteMeta(repository)+`:[\w.@:-]+`).FindAllString(text, -1) {
			assert.Equal(t, image, named, "the README names %s in the pinned version only", repository)
		}
	}
	for _, image := range []string{components.DefaultRedisImage, components.DefaultValkeyImage} {
		assert.Regexp(t, `:\d+\.\d+\.\d+-alpine$`, image, "pinned to an exact patch version")
	}
}

// findRow returns the table row that starts with name's cell, or "".
func findRow(rows []string, name string) string {
	for _, row := range rows {
		if strings.HasPrefix(row, "| "+name+" |") {
			return row
		}
	}
	return ""
}
