package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// workflow is a GitHub Actions workflow, as much of it as the tests read.
type workflow struct {
	Name        string         `json:"name"`
	On          map[string]any `json:"on"`
	Permissions any            `json:"permissions"`
	Jobs        map[string]job `json:"jobs"`
}

type job struct {
	If          string         `json:"if"`
	Permissions any            `json:"permissions"`
	Strategy    map[string]any `json:"strategy"`
	Steps       []step         `json:"steps"`
}

type step struct {
	Uses string         `json:"uses"`
	Run  string         `json:"run"`
	With map[string]any `json:"with"`
}

func readWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(repoRoot, ".github", "workflows", name))
	require.NoError(t, err)
	// YAML 1.1, which sigs.k8s.io/yaml speaks, reads the key `on` as the boolean true; GitHub
	// reads it as "on".
	var raw map[string]any
	require.NoError(t, yaml.Unmarshal(body, &raw))
	if on, ok := raw["true"]; ok {
		raw["on"] = on
		delete(raw, "true")
	}
	asJSON, err := json.Marshal(raw)
	require.NoError(t, err)
	var w workflow
	require.NoError(t, json.Unmarshal(asJSON, &w), "%s", name)
	return w
}

// stacksByCloud maps every stack (one per Pulumi.<stack>.yaml) to its cloud config value.
func stacksByCloud(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "Pulumi.*.yaml"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, file := range files {
		stack := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "Pulumi."), ".yaml")
		cfg, err := render.LoadStackConfig(repoRoot, stack)
		require.NoError(t, err)
		out[stack] = cfg.Values[cfg.Project+":cloud"]
	}
	require.Contains(t, out, "local", "the glob finds the stack files")
	return out
}

// Every stack that creates its cluster gets Pulumi's preview on pull requests, with the
// credentials of its cloud: adding Pulumi.<stack>.yaml for one without a preview fails here.
// Stacks on an existing cluster (cloud none or aks) have no cluster in CI; the manifest diff
// covers them, and every stack (.ci/manifest-diff renders each Pulumi.<stack>.yaml).
func TestThePreviewMatrixCoversEveryStackThatCreatesItsCluster(t *testing.T) {
	want := map[string]string{}
	for stack, cloud := range stacksByCloud(t) {
		if cloud == "gke" || cloud == "eks" {
			want[stack] = cloud
		}
	}
	require.NotEmpty(t, want)

	preview := readWorkflow(t, "preview.yml").Jobs["pulumi-preview"]
	got := map[string]string{}
	for _, entry := range preview.Strategy["matrix"].(map[string]any)["include"].([]any) {
		e := entry.(map[string]any)
		got[e["stack"].(string)] = e["cloud"].(string)
	}
	assert.Equal(t, want, got, "stack -> cloud in the pulumi-preview matrix")

	var uses []string
	for _, s := range preview.Steps {
		uses = append(uses, s.Uses)
		if strings.HasPrefix(s.Uses, "pulumi/actions@") {
			assert.Equal(t, "preview", s.With["command"])
			assert.Equal(t, "${{ matrix.stack }}", s.With["stack-name"])
			assert.Equal(t, true, s.With["diff"])
			assert.Equal(t, true, s.With["comment-on-pr"])
		}
	}
	for _, action := range []string{"pulumi/actions@", "google-github-actions/auth@", "aws-actions/configure-aws-credentials@"} {
		assert.True(t, containsPrefix(uses, action), "pulumi-preview uses %s", action)
	}
	assert.Equal(t, "github.event.pull_request.head.repo.full_name == github.repository", preview.If,
		"skipped for pull requests from forks, which get no secrets")
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// writeGrants lists the write permissions of a workflow's or job's permissions block. No block
// at all inherits the repository's default, which may be write, so it counts as a write.
func writeGrants(permissions any) []string {
	switch p := permissions.(type) {
	case nil:
		return []string{"the repository default"}
	case string:
		if p == "read-all" {
			return nil
		}
		return []string{p}
	case map[string]any:
		var grants []string
		for scope, level := range p {
			if level == "write" {
				grants = append(grants, scope)
			}
		}
		sort.Strings(grants)
		return grants
	default:
		return []string{"unreadable"}
	}
}

func TestWriteGrantsFindsEveryWayToWrite(t *testing.T) {
	assert.Empty(t, writeGrants(map[string]any{"contents": "read", "actions": "none"}))
	assert.Empty(t, writeGrants(map[string]any{}))
	assert.Empty(t, writeGrants("read-all"))
	assert.Equal(t, []string{"pull-requests"}, writeGrants(map[string]any{"contents": "read", "pull-requests": "write"}))
	assert.Equal(t, []string{"write-all"}, writeGrants("write-all"))
	assert.NotEmpty(t, writeGrants(nil))
}

// The job that runs a pull request's code, possibly a fork's, holds a read-only token, and the
// workflow runs on pull_request, never pull_request_target (which would hand fork code the
// base repository's token and secrets).
func TestTheManifestDiffJobRunsForksWithAReadOnlyToken(t *testing.T) {
	w := readWorkflow(t, "preview.yml")
	assert.Contains(t, w.On, "pull_request")
	assert.NotContains(t, w.On, "pull_request_target")
	assert.Empty(t, writeGrants(w.Permissions), "workflow-level permissions")

	diff, ok := w.Jobs["manifest-diff"]
	require.True(t, ok)
	assert.Empty(t, writeGrants(diff.Permissions), "manifest-diff permissions")
	assert.Empty(t, diff.If, "it runs for every pull request, forks included")
	var runs string
	for _, s := range diff.Steps {
		runs += s.Run
		if strings.HasPrefix(s.Uses, "actions/checkout@") {
			assert.Equal(t, false, s.With["persist-credentials"], "the token stays out of the checkout")
		}
	}
	assert.Contains(t, runs, "head/.ci/manifest-diff base head")
	assert.Contains(t, runs, "$GITHUB_STEP_SUMMARY")
}

// The comment is posted from the base repository by a workflow_run workflow that holds the write
// token and therefore never checks out or runs the pull request's code.
func TestTheCommentWorkflowFollowsThePreviewAndRunsNoPullRequestCode(t *testing.T) {
	preview := readWorkflow(t, "preview.yml")
	comment := readWorkflow(t, "preview-comment.yml")
	run, ok := comment.On["workflow_run"].(map[string]any)
	require.True(t, ok, "triggered by workflow_run")
	assert.Equal(t, []any{preview.Name}, run["workflows"])
	assert.Empty(t, writeGrants(comment.Permissions), "workflow-level permissions")
	for name, j := range comment.Jobs {
		for _, s := range j.Steps {
			assert.False(t, strings.HasPrefix(s.Uses, "actions/checkout@"), "job %s checks out code", name)
		}
	}
	var uploaded, downloaded any
	for _, s := range preview.Jobs["manifest-diff"].Steps {
		if strings.HasPrefix(s.Uses, "actions/upload-artifact@") {
			uploaded = s.With["name"]
		}
	}
	for _, s := range comment.Jobs["comment"].Steps {
		if strings.HasPrefix(s.Uses, "actions/download-artifact@") {
			downloaded = s.With["name"]
		}
	}
	assert.NotEmpty(t, uploaded)
	assert.Equal(t, uploaded, downloaded, "the comment reads the artifact the preview uploads")
}

var majorPin = regexp.MustCompile(`^[\w.-]+/[\w.-]+@v\d+$`)

func TestEveryActionIsPinnedToAMajorVersionAndCIRunsTheCIScript(t *testing.T) {
	for _, name := range []string{"ci.yml", "preview.yml", "preview-comment.yml"} {
		for jobName, j := range readWorkflow(t, name).Jobs {
			for _, s := range j.Steps {
				if s.Uses != "" {
					assert.Regexp(t, majorPin, s.Uses, "%s job %s", name, jobName)
				}
			}
		}
	}
	var runs string
	for _, j := range readWorkflow(t, "ci.yml").Jobs {
		for _, s := range j.Steps {
			runs += s.Run
		}
	}
	assert.Contains(t, runs, "sudo -E")
	assert.Contains(t, runs, "CI=true .ci/run")
}

func TestTheCIAndFixtureScriptsAreShellcheckClean(t *testing.T) {
	shellcheck := requireTool(t, "shellcheck", "shellcheck")
	fixtures, err := filepath.Glob(filepath.Join(repoRoot, "hack", "*.sh"))
	require.NoError(t, err)
	require.NotEmpty(t, fixtures)
	scripts := append([]string{filepath.Join(repoRoot, ".ci", "run"), filepath.Join(repoRoot, ".ci", "manifest-diff")}, fixtures...)
	// -x -P: the fixtures source hack/lib.sh by a path relative to the repository.
	out, err := exec.Command(shellcheck, append([]string{"-x", "-P", repoRoot}, scripts...)...).CombinedOutput()
	assert.NoError(t, err, "shellcheck:\n%s", out)
}

// actionlint is run from the Go module proxy at a fixed version (it is no dependency of the
// module); it also shellchecks the workflows' run: scripts when shellcheck is installed.
const actionlint = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"

func TestActionlintAcceptsTheWorkflows(t *testing.T) {
	if out, err := exec.Command("go", "run", actionlint, "-version").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("go run %s: %v\n%s", actionlint, err, out)
		}
		t.Skipf("actionlint cannot be built here (go run %s): %v", actionlint, err)
	}
	workflows, err := filepath.Glob(filepath.Join(repoRoot, ".github", "workflows", "*.yml"))
	require.NoError(t, err)
	require.Len(t, workflows, 3)
	out, err := exec.Command("go", append([]string{"run", actionlint, "-color=false"}, workflows...)...).CombinedOutput()
	assert.NoError(t, err, "actionlint:\n%s", out)
}
