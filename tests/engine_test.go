package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/d3ad221e/redis-sentinel/tests/enginestack"
)

// The day-2 classes of the README's table.
const (
	classInPlace = "in place"
	classRolling = "rolling update"
	classRefused = "refused"
)

// Kinds whose replacement or deletion loses data or takes every pod down at once.
var neverReplaced = map[string]bool{
	"kubernetes:apps/v1:StatefulSet": true,
	"kubernetes:core/v1:Namespace":   true,
	"kubernetes:core/v1:Secret":      true,
}

// classify says which day-2 class a enginestack.Plan is, or why it is none: it fails on a replacement or
// deletion of what holds data, and on any object deleted before its successor exists.
func classify(p enginestack.Plan) (string, []string) {
	var problems []string
	rolling := false
	for _, s := range p.Changed() {
		switch apitype.OpType(s.Op) {
		case apitype.OpReplace, apitype.OpCreateReplacement, apitype.OpDeleteReplaced, apitype.OpDelete, apitype.OpDiscardReplaced:
			if neverReplaced[s.Type] {
				problems = append(problems, fmt.Sprintf("%s %s %s", s.Op, s.Type, s.Name))
			}
			// A Job is an exception: nothing mounts or serves it, and a finished Job that keeps its
			// name can only be replaced delete first (the resharding Jobs).
			if s.Op != string(apitype.OpDelete) && s.OldName == s.NewName && s.Type != "kubernetes:batch/v1:Job" {
				problems = append(problems, fmt.Sprintf("%s %s %s keeps its name %q: deleted before its successor exists", s.Op, s.Type, s.Name, s.OldName))
			}
		case apitype.OpUpdate:
			if s.Type == "kubernetes:apps/v1:StatefulSet" || s.Type == "kubernetes:apps/v1:Deployment" {
				for _, path := range s.DetailedDiffPaths {
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
	case len(p.Changed()) == 0:
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
	row := regexp.MustCompile("(?m)^\\| `([A-Za-z]+)`[^|]*\\| (" + strings.Join([]string{classInPlace, classRolling, classRefused}, "|") + ")[^|]*\\|")
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
	// First, while every Sentinel key is at the value a cluster accepts: otherwise the cluster's
	// validation, not the day-2 check, would refuse it.
	{"topology", map[string]any{"topology": "cluster"}, "a Sentinel release cannot become a cluster", ""},
	{"shards", nil, "a cluster's key, which a Sentinel release refuses: engine_cluster_test.go changes it on a cluster", ""},
	{"replicasPerShard", nil, "a cluster's key: engine_cluster_test.go", ""},
	{"clusterNodeTimeoutMilliseconds", nil, "a cluster's key: engine_cluster_test.go", ""},
	{"replicas", map[string]any{"replicas": 5}, "more pods: peer lists, quorum", ""},
	{"quorum", map[string]any{"quorum": 4}, "sentinel.conf", ""},
	{"redisImage", map[string]any{"redisImage": "docker.io/library/redis:7.2.6-alpine"}, "", ""},
	{"engine", map[string]any{"engine": "valkey", "redisImage": nil}, "Redis to Valkey: the server's image and programs", ""},
	{"engine", map[string]any{"engine": "redis"}, "Valkey back to Redis", classRefused},
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
	{"password", map[string]any{"password": "engine-test-password-0002"}, "a new password in one step", classRefused},
	{"password", map[string]any{"password": "engine-test-password-0002", "previousPassword": "engine-test-password-0001"}, "a rotation's first step: the Secret, the credentials Job", ""},
	{"previousPassword", map[string]any{"previousPassword": nil}, "its last step", ""},
	{"monitorPassword", map[string]any{"monitorPassword": "engine-test-monitor-0002"}, "", ""},
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
	{"tls", map[string]any{"tls": true}, "every server would switch to TLS while clients and peers speak plain text", ""},
	{"tlsSecretName", nil, "needs tls, which a running release cannot turn on: TestTLSChangesAreInPlaceOrRefused", ""},
	{"tlsIssuerName", nil, "as tlsSecretName", ""},
	{"tlsIssuerKind", nil, "as tlsSecretName", ""},
	{"tlsDnsNames", nil, "as tlsSecretName", ""},
}

// TestTLSChangesAreInPlaceOrRefused runs the local stack with TLS under the real engine, the
// certificate from cert-manager (the tls provider of the generated path is not served here; a
// Certificate is an object like any other to the engine): new names on the certificate are in
// place, another source of it is refused, and so is turning TLS off.
func TestTLSChangesAreInPlaceOrRefused(t *testing.T) {
	e := enginestack.New(t, repoRoot, map[string]any{"kubernetes:renderYamlToDirectory": filepath.Join(t.TempDir(), "rendered")})
	classes := day2Table(t)
	e.Set(map[string]any{"tls": true, "tlsIssuerName": "internal-ca"})
	first := e.Up()
	require.NoError(t, first.Err, "first pulumi up:\n%s", first.Log)
	for _, c := range []day2Change{
		{"tlsDnsNames", map[string]any{"tlsDnsNames": []string{"redis.example.internal"}}, "cert-manager reissues the certificate with the new name", ""},
		{"tlsIssuerKind", map[string]any{"tlsIssuerKind": "ClusterIssuer"}, "another issuer, another CA", ""},
		{"tlsIssuerName", map[string]any{"tlsIssuerName": "other-ca"}, "another issuer, another CA", ""},
		{"tlsSecretName", map[string]any{"tlsIssuerName": nil, "tlsDnsNames": nil, "tlsSecretName": "redis-certs"}, "the user's certificate, another CA", ""},
		{"tls", map[string]any{"tls": false, "tlsIssuerName": nil, "tlsDnsNames": nil}, "TLS off", ""},
	} {
		applyDay2Change(t, e, c, classes[c.key])
	}
}

// TestEveryConfigChangeIsARollingUpdateInPlaceOrARefusal runs the local stack under the real
// engine: a first update, then every key changed, each previewed (what a pull request shows),
// classified, checked against the README, applied, and followed by a preview that must be empty.
func TestEveryConfigChangeIsARollingUpdateInPlaceOrARefusal(t *testing.T) {
	e := enginestack.New(t, repoRoot, map[string]any{"kubernetes:renderYamlToDirectory": filepath.Join(t.TempDir(), "rendered")})
	classes := day2Table(t)

	start := time.Now()
	first := e.Up()
	require.NoError(t, first.Err, "first pulumi up:\n%s", first.Log)
	t.Logf("first up: %d resources in %.1fs", len(first.Changed()), time.Since(start).Seconds())
	again := e.Preview()
	require.NoError(t, again.Err, again.Log)
	assert.Empty(t, again.Changed(), "a preview right after the first up changes nothing:\n%s", again)

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
		applyDay2Change(t, e, c, want)
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

// applyDay2Change previews change c, checks its class against want, and applies it unless it
// is refused (then it takes the values back); it checks that the update did what the preview
// showed and that a preview after it changes nothing. It returns the update's plan, or one
// without steps for a refusal.
func applyDay2Change(t *testing.T, e *enginestack.Stack, c day2Change, want string) enginestack.Plan {
	t.Helper()
	before := e.Set(c.values)
	start := time.Now()
	p := e.Preview()
	elapsed := time.Since(start).Seconds()
	if p.Err != nil {
		refusal := regexp.MustCompile(`(?m)^` + c.key + `: changing .* is refused on a running release: .*; instead, `)
		assert.Regexp(t, refusal, p.Err.Error(), "%s %v: the preview failed, and not with a refusal of the key", c.key, c.values)
		assert.Equal(t, want, classRefused, "%s %v (%s) was refused; the README says %s", c.key, c.values, c.why, want)
		t.Logf("%-30s %-15s %.1fs preview", c.key, classRefused, elapsed)
		e.Set(before)
		return enginestack.Plan{}
	}
	class, problems := classify(p)
	assert.Empty(t, problems, "%s %v:\n%s", c.key, c.values, p)
	assert.Equal(t, want, class, "%s %v (%s): the plan is\n%s", c.key, c.values, c.why, p)

	applied := e.Up()
	require.NoError(t, applied.Err, "%s: pulumi up:\n%s", c.key, applied.Log)
	upClass, upProblems := classify(applied)
	assert.Empty(t, upProblems, "%s: pulumi up did:\n%s", c.key, applied)
	assert.Equal(t, class, upClass, "%s: pulumi up did other than its preview showed:\n%s", c.key, applied)
	after := e.Preview()
	require.NoError(t, after.Err, after.Log)
	assert.Empty(t, after.Changed(), "%s: a preview after the update changes nothing:\n%s", c.key, after)
	t.Logf("%-30s %-15s %.1fs preview\n%s", c.key, class, elapsed, p)
	return applied
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
