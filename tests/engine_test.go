package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/d3ad221e/redis-sentinel/stacks"
)

// engineEnv switches on the tests under the real Pulumi engine: "1" takes the binaries from
// hack/engine-fixture.sh's cache, a directory names where pulumi and pulumi-resource-kubernetes are.
const engineEnv = "REDIS_SENTINEL_ENGINE"

// The day-2 classes of the README's table.
const (
	classInPlace = "in place"
	classRolling = "rolling update"
	classRefused = "refused"
)

// engineStack is the local stack under the real engine, as an Automation API inline program, its
// state in a directory of the test's own, and the kubernetes provider rendering into a directory
// (renderYamlToDirectory): the engine and the provider decide every step, no cluster is needed.
type engineStack struct {
	t        *testing.T
	stack    auto.Stack
	workDir  string
	config   map[string]any // Pulumi.local.yaml as written for the next operation
	password string         // the password config holds, in plain text
}

func newEngineStack(t *testing.T) *engineStack {
	t.Helper()
	bin := os.Getenv(engineEnv)
	switch bin {
	case "":
		t.Skipf("set %s=1 to run it, after hack/engine-fixture.sh build", engineEnv)
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
	stack, err := auto.UpsertStackInlineSource(ctx, "local", "redis-sentinel", stacks.Run, auto.WorkDir(workDir))
	require.NoError(t, err)
	e := &engineStack{t: t, stack: stack, workDir: workDir, config: stackFile.Config}
	e.config["kubernetes:renderYamlToDirectory"] = filepath.Join(workDir, "rendered")
	// The random provider is not to be had here: the tests set the password.
	e.set(map[string]any{"password": "engine-test-password-0001"})
	return e
}

// set changes keys of the stack's configuration (short names; nil removes a key) and writes the
// stack file. The password goes in as a secret, encrypted by the CLI. It returns what the keys
// held before, for a set that undoes it.
func (e *engineStack) set(values map[string]any) map[string]any {
	e.t.Helper()
	before := map[string]any{}
	for key, value := range values {
		full := "redis-sentinel:" + key
		before[key] = e.config[full]
		if key == "password" {
			before[key] = e.password
			e.password = value.(string)
			require.NoError(e.t, e.stack.SetConfig(context.Background(), full, auto.ConfigValue{Value: e.password, Secret: true}))
			var written struct {
				Config map[string]any `json:"config"`
			}
			e.readStackFile(&written)
			e.config[full] = written.Config[full]
			continue
		}
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
func (e *engineStack) readStackFile(out any) {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.workDir, "Pulumi.local.yaml"))
	require.NoError(e.t, err)
	require.NoError(e.t, yaml.Unmarshal(raw, out))
}

// planStep is one resource's step in a plan, as the engine reported it.
type planStep struct {
	op, typ, name     string
	oldName, newName  string // metadata.name of the Kubernetes object before and after
	detailedDiffPaths []string
}

// plan is what a preview or an update did, resource by resource.
type plan struct {
	steps []planStep
	err   error
	log   string
}

func collect(ch <-chan events.EngineEvent) func() []planStep {
	var steps []planStep
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			if ev.ResourcePreEvent == nil {
				continue
			}
			m := ev.ResourcePreEvent.Metadata
			s := planStep{op: string(m.Op), typ: m.Type, name: m.URN[strings.LastIndex(m.URN, "::")+2:]}
			s.oldName, s.newName = objectName(m.Old), objectName(m.New)
			for path := range m.DetailedDiff {
				s.detailedDiffPaths = append(s.detailedDiffPaths, path)
			}
			sort.Strings(s.detailedDiffPaths)
			steps = append(steps, s)
		}
	}()
	return func() []planStep { <-done; return steps }
}

func objectName(s *apitype.StepEventStateMetadata) string {
	if s == nil {
		return ""
	}
	meta, _ := s.Inputs["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	return name
}

func (e *engineStack) preview() plan {
	e.t.Helper()
	ch := make(chan events.EngineEvent)
	steps := collect(ch)
	var log strings.Builder
	_, err := e.stack.Preview(context.Background(), optpreview.EventStreams(ch), optpreview.ProgressStreams(&log), optpreview.Diff())
	return plan{steps: steps(), err: err, log: log.String()}
}

func (e *engineStack) up() plan {
	e.t.Helper()
	ch := make(chan events.EngineEvent)
	steps := collect(ch)
	var log strings.Builder
	_, err := e.stack.Up(context.Background(), optup.EventStreams(ch), optup.ProgressStreams(&log))
	return plan{steps: steps(), err: err, log: log.String()}
}

// changed returns the steps that change something.
func (p plan) changed() []planStep {
	var out []planStep
	for _, s := range p.steps {
		if s.op != string(apitype.OpSame) && s.op != string(apitype.OpRead) {
			out = append(out, s)
		}
	}
	return out
}

func (p plan) String() string {
	var b strings.Builder
	for _, s := range p.changed() {
		fmt.Fprintf(&b, "  %s %s %s", s.op, s.typ, s.name)
		if s.oldName != s.newName {
			fmt.Fprintf(&b, " (%s -> %s)", s.oldName, s.newName)
		}
		if len(s.detailedDiffPaths) > 0 {
			fmt.Fprintf(&b, " %v", s.detailedDiffPaths)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "  no changes\n"
	}
	return b.String()
}

// Kinds whose replacement or deletion loses data or takes every pod down at once.
var neverReplaced = map[string]bool{
	"kubernetes:apps/v1:StatefulSet": true,
	"kubernetes:core/v1:Namespace":   true,
	"kubernetes:core/v1:Secret":      true,
}

// classify says which day-2 class a plan is, or why it is none: it fails on a replacement or
// deletion of what holds data, and on any object deleted before its successor exists.
func classify(p plan) (string, []string) {
	var problems []string
	rolling := false
	for _, s := range p.changed() {
		switch apitype.OpType(s.op) {
		case apitype.OpReplace, apitype.OpCreateReplacement, apitype.OpDeleteReplaced, apitype.OpDelete, apitype.OpDiscardReplaced:
			if neverReplaced[s.typ] {
				problems = append(problems, fmt.Sprintf("%s %s %s", s.op, s.typ, s.name))
			}
			if s.op != string(apitype.OpDelete) && s.oldName == s.newName {
				problems = append(problems, fmt.Sprintf("%s %s %s keeps its name %q: deleted before its successor exists", s.op, s.typ, s.name, s.oldName))
			}
		case apitype.OpUpdate:
			if s.typ == "kubernetes:apps/v1:StatefulSet" || s.typ == "kubernetes:apps/v1:Deployment" {
				for _, path := range s.detailedDiffPaths {
					if strings.HasPrefix(path, "spec.template") {
						rolling = true
					}
				}
			}
		}
	}
	switch {
	case rolling:
		return classRolling, problems
	case len(p.changed()) == 0:
		return "no change", problems
	default:
		return classInPlace, problems
	}
}

// day2Table reads the README's table of configuration keys and their classes.
func day2Table(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([A-Za-z]+)`[^|]*\\| (in place|rolling update|refused)[^|]*\\|")
	classes := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		classes[m[1]] = m[2]
	}
	require.NotEmpty(t, classes, "README.md has no day-2 table")
	return classes
}

// A day-2 change: keys set together (a value of nil removes a key), and the README key whose
// class it checks.
type day2Change struct {
	key    string
	values map[string]any
	why    string
	// class, when set, is what this change must be instead of the key's class in the README: a
	// key whose row names two classes (storageSize grows in place, shrinking is refused).
	class string
}

// day2Changes covers every key of Pulumi.yaml that the local stack reads, in an order in which
// each accepted change stays applied for the next ones (so the load balancer keys find one).
var day2Changes = []day2Change{
	{"replicas", map[string]any{"replicas": 5}, "more pods: peer lists, quorum", ""},
	{"quorum", map[string]any{"quorum": 4}, "sentinel.conf", ""},
	{"redisImage", map[string]any{"redisImage": "docker.io/library/redis:7.2.6-alpine"}, "", ""},
	{"haproxyImage", map[string]any{"haproxyImage": "docker.io/library/haproxy:2.8.11-alpine"}, "", ""},
	{"redisCPU", map[string]any{"redisCPU": "200m"}, "", ""},
	{"redisMemory", map[string]any{"redisMemory": "1Gi"}, "", ""},
	{"downAfterMilliseconds", map[string]any{"downAfterMilliseconds": 7000}, "", ""},
	{"failoverTimeoutMilliseconds", map[string]any{"failoverTimeoutMilliseconds": 20000}, "", ""},
	{"minReplicasMaxLagSeconds", map[string]any{"minReplicasMaxLagSeconds": 3}, "", ""},
	{"haproxyReplicas", map[string]any{"haproxyReplicas": 3}, "HAProxy's maxconn per pod", ""},
	{"spreadAcrossNodes", map[string]any{"spreadAcrossNodes": true}, "the local stack's shared nodes become nodes of their own", ""},
	{"storageSize", map[string]any{"storageSize": "2Gi"}, "grow: the claims are patched", ""},
	{"storageSize", map[string]any{"storageSize": "512Mi"}, "shrink", classRefused},
	{"storageClass", map[string]any{"storageClass": "fast"}, "", ""},
	{"ephemeral", map[string]any{"ephemeral": true}, "", ""},
	{"password", map[string]any{"password": "engine-test-password-0002"}, "", ""},
	{"name", map[string]any{"name": "cache"}, "", ""},
	{"namespace", map[string]any{"namespace": "cache"}, "", ""},
	{"createNamespace", map[string]any{"createNamespace": false}, "", ""},
	{"cloud", map[string]any{"cloud": "aks"}, "", ""},
	{"masterSetName", map[string]any{"masterSetName": "cache"}, "", ""},
	{"clusterDomain", map[string]any{"clusterDomain": "example.internal"}, "", ""},
	{"loadBalancer", map[string]any{"loadBalancer": true, "publicLoadBalancer": true, "loadBalancerSourceRanges": []string{"10.10.0.0/16"}, "clusterNetworks": []string{"10.244.0.0/16"}}, "no internal annotation for cloud none; client and cluster ranges are required", ""},
	{"publicLoadBalancer", nil, "covered with loadBalancer", ""},
	{"loadBalancerSourceRanges", map[string]any{"loadBalancerSourceRanges": []string{"10.20.0.0/16"}}, "", ""},
	{"clusterNetworks", map[string]any{"clusterNetworks": []string{"10.244.0.0/16", "10.20.128.0/17"}}, "a cluster range inside the source range is cut out of it", ""},
	{"clientLabels", map[string]any{"clientLabels": map[string]string{"app.example.com/cache": "true"}}, "", ""},
	{"metricsScraperNamespaceLabels", map[string]any{"metricsScraperNamespaceLabels": map[string]string{"kubernetes.io/metadata.name": "observability"}}, "", ""},
	{"metricsScraperPodLabels", map[string]any{"metricsScraperPodLabels": map[string]string{"app.kubernetes.io/name": "vmagent"}}, "", ""},
	{"serviceMonitor", map[string]any{"serviceMonitor": true}, "", ""},
	{"metricsImage", map[string]any{"metricsImage": "docker.io/oliver006/redis_exporter:v1.92.2"}, "", ""},
	{"metrics", map[string]any{"metrics": false, "serviceMonitor": false}, "the sidecar goes", ""},
}

// TestEveryConfigChangeIsARollingUpdateInPlaceOrARefusal runs the local stack under the real
// engine: a first update, then every key changed, each previewed (what a pull request shows),
// classified, checked against the README, applied, and followed by a preview that must be empty.
func TestEveryConfigChangeIsARollingUpdateInPlaceOrARefusal(t *testing.T) {
	e := newEngineStack(t)
	classes := day2Table(t)

	start := time.Now()
	first := e.up()
	require.NoError(t, first.err, "first pulumi up:\n%s", first.log)
	t.Logf("first up: %d resources in %.1fs", len(first.changed()), time.Since(start).Seconds())
	again := e.preview()
	require.NoError(t, again.err, again.log)
	assert.Empty(t, again.changed(), "a preview right after the first up changes nothing:\n%s", again)

	covered := map[string]bool{}
	for _, c := range day2Changes {
		covered[c.key] = true
		if c.values == nil {
			continue
		}
		want, ok := classes[c.key]
		require.True(t, ok, "README's day-2 table has no row for %s", c.key)
		if c.class != "" {
			want = c.class
		}
		before := e.set(c.values)
		start := time.Now()
		p := e.preview()
		elapsed := time.Since(start).Seconds()
		if p.err != nil {
			refusal := regexp.MustCompile(`(?m)^` + c.key + `: changing .* is refused on a running release: .*; instead, `)
			assert.Regexp(t, refusal, p.err.Error(), "%s %v: the preview failed, and not with a refusal of the key", c.key, c.values)
			assert.Equal(t, want, classRefused, "%s %v (%s) was refused; the README says %s", c.key, c.values, c.why, want)
			t.Logf("%-28s %-15s %.1fs preview", c.key, classRefused, elapsed)
			e.set(before)
			continue
		}
		class, problems := classify(p)
		assert.Empty(t, problems, "%s %v:\n%s", c.key, c.values, p)
		assert.Equal(t, want, class, "%s %v (%s): the plan is\n%s", c.key, c.values, c.why, p)

		applied := e.up()
		require.NoError(t, applied.err, "%s: pulumi up:\n%s", c.key, applied.log)
		upClass, upProblems := classify(applied)
		assert.Empty(t, upProblems, "%s: pulumi up did:\n%s", c.key, applied)
		assert.Equal(t, class, upClass, "%s: pulumi up did other than its preview showed:\n%s", c.key, applied)
		after := e.preview()
		require.NoError(t, after.err, after.log)
		assert.Empty(t, after.changed(), "%s: a preview after the update changes nothing:\n%s", c.key, after)
		t.Logf("%-28s %-15s %.1fs preview\n%s", c.key, class, elapsed, p)
	}

	// Every key of Pulumi.yaml is in the README's table, and every key the local stack reads is
	// covered here; the cloud keys are the gke and eks stacks', checked with the mocks.
	var project struct {
		Config map[string]any `json:"config"`
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Pulumi.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &project))
	for key := range project.Config {
		assert.Contains(t, classes, key, "README's day-2 table lacks %s", key)
		if !cloudOnlyKey(key) {
			assert.True(t, covered[key], "the day-2 matrix does not change %s", key)
		}
	}
}

// cloudOnlyKey says whether only the gke or eks stack reads a key; kubeconfig would point this
// test, which renders, at a cluster: tests/day2_test.go checks it with the mocks.
func cloudOnlyKey(key string) bool {
	for _, prefix := range []string{"gcp", "gke", "aws", "eks"} {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return key == "allowPublicControlPlane" || key == "kubeconfig"
}
