// Package enginestack runs the local stack under the real Pulumi engine, for the tests: the CLI
// and the kubernetes provider of hack/engine-fixture.sh, the program as an Automation API inline
// program, its state in a directory of the test's own.
package enginestack

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/d3ad221e/redis-sentinel/stacks"
)

// Env switches on the tests under the real Pulumi engine: "1" takes the binaries from
// hack/engine-fixture.sh's cache, a directory names where pulumi and pulumi-resource-kubernetes are.
const Env = "REDIS_SENTINEL_ENGINE"

// Stack is the local stack under the real engine, as an Automation API inline program, its
// state in a directory of the test's own. Its kubernetes provider renders into a directory
// (renderYamlToDirectory: the engine and the provider decide every step, no cluster is needed)
// or talks to a cluster, as the provider configuration New is given says.
type Stack struct {
	t       *testing.T
	stack   auto.Stack
	workDir string
	config  map[string]any    // Pulumi.local.yaml as written for the next operation
	secrets map[string]string // the secret keys' values (secretKeys), in plain text
}

// New makes the stack. Each of transforms is registered for every resource of the program before
// it runs: a test changes what the stack creates, as the lab changes what it runs.
func New(t *testing.T, repoRoot string, providerConfig map[string]any, transforms ...pulumi.ResourceTransform) *Stack {
	t.Helper()
	bin := os.Getenv(Env)
	switch bin {
	case "":
		t.Skipf("set %s=1 to run it, after hack/engine-fixture.sh build", Env)
	case "1":
		out, err := exec.Command(filepath.Join(repoRoot, "hack", "engine-fixture.sh"), "bin").Output()
		require.NoError(t, err, "hack/engine-fixture.sh bin")
		bin = strings.TrimSpace(string(out))
	}
	home, state, workDir := t.TempDir(), t.TempDir(), t.TempDir()
	env := map[string]string{
		"PULUMI_HOME":              home,
		"PULUMI_BACKEND_URL":       "file://" + state,
		"PULUMI_CONFIG_PASSPHRASE": "engine-test",
		"PULUMI_SKIP_UPDATE_CHECK": "true",
		// Nothing is downloaded: the kubernetes plugin is installed from the fixture below.
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	install := exec.Command(filepath.Join(bin, "pulumi"), "plugin", "install", "resource", "kubernetes", "4.33.0",
		"--file", filepath.Join(bin, "pulumi-resource-kubernetes"))
	out, err := install.CombinedOutput()
	require.NoError(t, err, "pulumi plugin install:\n%s", out)

	// The project file as it is; the stack file as the repository has it plus what the test sets.
	project, err := os.ReadFile(filepath.Join(repoRoot, "Pulumi.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(workDir, "Pulumi.yaml"), project, 0o644))
	var stackFile struct {
		Config map[string]any `json:"config"`
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Pulumi.local.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &stackFile))

	ctx := context.Background()
	program := func(ctx *pulumi.Context) error {
		for _, transform := range transforms {
			if err := ctx.RegisterResourceTransform(transform); err != nil {
				return err
			}
		}
		return stacks.Run(ctx)
	}
	stack, err := auto.UpsertStackInlineSource(ctx, "local", "redis-sentinel", program, auto.WorkDir(workDir))
	require.NoError(t, err)
	e := &Stack{t: t, stack: stack, workDir: workDir, config: stackFile.Config, secrets: map[string]string{}}
	maps.Copy(e.config, providerConfig)
	// The random provider is not to be had here: the tests set the passwords.
	e.Set(map[string]any{"password": "engine-test-password-0001", "monitorPassword": "engine-test-monitor-0001"})
	return e
}

// set changes keys of the stack's configuration (short names; nil removes a key) and writes the
// stack file. The passwords go in as secrets, encrypted by the CLI. It returns what the keys
// held before, for a set that undoes it.
func (e *Stack) Set(values map[string]any) map[string]any {
	e.t.Helper()
	before := map[string]any{}
	for key, value := range values {
		full := "redis-sentinel:" + key
		before[key] = e.config[full]
		if secretKeys[key] {
			before[key] = nil // absent: a set that undoes this removes it
			if was, ok := e.secrets[key]; ok {
				before[key] = was
			}
		}
		if secretKeys[key] && value != nil {
			e.secrets[key] = value.(string)
			require.NoError(e.t, e.stack.SetConfig(context.Background(), full, auto.ConfigValue{Value: value.(string), Secret: true}))
			var written struct {
				Config map[string]any `json:"config"`
			}
			e.readStackFile(&written)
			e.config[full] = written.Config[full]
			continue
		}
		delete(e.secrets, key)
		if value == nil {
			delete(e.config, full)
		} else {
			e.config[full] = value
		}
	}
	var salt struct {
		Salt string `json:"encryptionsalt"`
	}
	e.readStackFile(&salt)
	body, err := yaml.Marshal(map[string]any{"config": e.config, "encryptionsalt": salt.Salt})
	require.NoError(e.t, err)
	require.NoError(e.t, os.WriteFile(filepath.Join(e.workDir, "Pulumi.local.yaml"), body, 0o644))
	return before
}

// readStackFile reads the stack file as the CLI last wrote it into out.
func (e *Stack) readStackFile(out any) {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.workDir, "Pulumi.local.yaml"))
	require.NoError(e.t, err)
	require.NoError(e.t, yaml.Unmarshal(raw, out))
}

// Step is one resource's step in a Plan, as the engine reported it.
type Step struct {
	Op, Type, Name    string
	OldName, NewName  string // metadata.name of the Kubernetes object before and after
	DetailedDiffPaths []string
}

// Plan is what a preview or an update did, resource by resource.
type Plan struct {
	Steps []Step
	Err   error
	Log   string
}

func collect(ch <-chan events.EngineEvent) func() []Step {
	var steps []Step
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			if ev.ResourcePreEvent == nil {
				continue
			}
			m := ev.ResourcePreEvent.Metadata
			s := Step{Op: string(m.Op), Type: m.Type, Name: m.URN[strings.LastIndex(m.URN, "::")+2:]}
			s.OldName, s.NewName = objectName(m.Old), objectName(m.New)
			for path := range m.DetailedDiff {
				s.DetailedDiffPaths = append(s.DetailedDiffPaths, path)
			}
			sort.Strings(s.DetailedDiffPaths)
			steps = append(steps, s)
		}
	}()
	return func() []Step { <-done; return steps }
}

func objectName(s *apitype.StepEventStateMetadata) string {
	if s == nil {
		return ""
	}
	meta, _ := s.Inputs["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	return name
}

func (e *Stack) Preview() Plan {
	e.t.Helper()
	ch := make(chan events.EngineEvent)
	steps := collect(ch)
	var log strings.Builder
	_, err := e.stack.Preview(context.Background(), optpreview.EventStreams(ch), optpreview.ProgressStreams(&log), optpreview.Diff())
	return Plan{Steps: steps(), Err: err, Log: log.String()}
}

func (e *Stack) Up() Plan {
	e.t.Helper()
	ch := make(chan events.EngineEvent)
	steps := collect(ch)
	var log strings.Builder
	_, err := e.stack.Up(context.Background(), optup.EventStreams(ch), optup.ProgressStreams(&log))
	return Plan{Steps: steps(), Err: err, Log: log.String()}
}

// Changed returns the steps that change something.
func (p Plan) Changed() []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Op != string(apitype.OpSame) && s.Op != string(apitype.OpRead) {
			out = append(out, s)
		}
	}
	return out
}

// Index is the position among the changed steps of the first one of the resource typ name, in the
// order the engine started them; -1 when it does not change.
func (p Plan) Index(typ, name string) int {
	for i, s := range p.Changed() {
		if s.Type == typ && s.Name == name {
			return i
		}
	}
	return -1
}

func (p Plan) String() string {
	var b strings.Builder
	for _, s := range p.Changed() {
		fmt.Fprintf(&b, "  %s %s %s", s.Op, s.Type, s.Name)
		if s.OldName != s.NewName {
			fmt.Fprintf(&b, " (%s -> %s)", s.OldName, s.NewName)
		}
		if len(s.DetailedDiffPaths) > 0 {
			fmt.Fprintf(&b, " %v", s.DetailedDiffPaths)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "  no changes\n"
	}
	return b.String()
}

// Password is the password the stack's configuration holds now, in plain text.
func (e *Stack) Password() string { return e.secrets["password"] }

// secretKeys are the keys that Set stores as secrets.
var secretKeys = map[string]bool{"password": true, "previousPassword": true, "monitorPassword": true}
