// Package tests holds black-box tests of the program, the component and the offline renderer.
// They use the API as an importer would, Pulumi's mock monitor through internal/render's
// recording mock, and real tools (shellcheck, the render binary); engine_test.go runs the real
// Pulumi engine, kube_test.go a real API server, when their fixtures are there.
package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/internal/render"
	"github.com/d3ad221e/redis-sentinel/stacks"
)

// stacksRun is the program under test.
var stacksRun = stacks.Run

// repoRoot is where Pulumi.yaml and the stack files are, seen from this package's directory.
const repoRoot = ".."

// release is what one run of the program registered.
type release struct {
	t         *testing.T
	resources []render.Resource
}

// runStack runs the program with the local stack's configuration, some keys replaced (short
// key names, values as they would be written in Pulumi.<stack>.yaml).
func runStack(t *testing.T, overrides map[string]string, dryRun bool) (*release, error) {
	t.Helper()
	cfg, err := render.LoadStackConfig(repoRoot, "local")
	require.NoError(t, err)
	for key, value := range overrides {
		cfg.Values[cfg.Project+":"+key] = value
	}
	rec, err := render.Run(stacksRun, cfg, dryRun)
	return &release{t: t, resources: rec.Resources()}, err
}

// mustRunStack is runStack for configurations that must be accepted.
func mustRunStack(t *testing.T, overrides map[string]string) *release {
	t.Helper()
	r, err := runStack(t, overrides, false)
	require.NoError(t, err)
	return r
}

// mustRunOn runs the program for a cloud: with the gke or eks stack file for those clouds, with
// the local one (its cloud replaced) for the others.
func mustRunOn(t *testing.T, cloud string, overrides map[string]string) *release {
	t.Helper()
	if cloud == "gke" || cloud == "eks" {
		return mustRunCloudStack(t, cloud, overrides)
	}
	withCloud := map[string]string{"cloud": cloud}
	for k, v := range overrides {
		withCloud[k] = v
	}
	return mustRunStack(t, withCloud)
}

// runComponent registers one RedisSentinel named "redis" with these args, as an importer would.
func runComponent(t *testing.T, args *components.RedisSentinelArgs, dryRun bool) (*release, error) {
	t.Helper()
	return runConsumer(t, func(ctx *pulumi.Context) error {
		_, err := components.NewRedisSentinel(ctx, "redis", args)
		return err
	}, dryRun)
}

// runClusterComponent registers one RedisCluster named "redis" with these args, as an importer would.
func runClusterComponent(t *testing.T, args *components.RedisClusterArgs) (*release, error) {
	t.Helper()
	return runConsumer(t, func(ctx *pulumi.Context) error {
		_, err := components.NewRedisCluster(ctx, "redis", args)
		return err
	}, false)
}

// runConsumer runs a program of another project that imports the components.
func runConsumer(t *testing.T, program pulumi.RunFunc, dryRun bool) (*release, error) {
	t.Helper()
	cfg := &render.StackConfig{Project: "consumer", Stack: "test", Values: map[string]string{}}
	rec, err := render.Run(program, cfg, dryRun)
	return &release{t: t, resources: rec.Resources()}, err
}

// find returns the registration of the given type token and name; the test fails without one.
func (r *release) find(typ, name string) render.Resource {
	r.t.Helper()
	for _, res := range r.resources {
		if res.Type == typ && res.Name == name {
			return res
		}
	}
	r.t.Fatalf("no %s named %s among %d registrations", typ, name, len(r.resources))
	return render.Resource{}
}

// ofType returns every registration of a type token.
func (r *release) ofType(typ string) []render.Resource {
	var out []render.Resource
	for _, res := range r.resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	return out
}

// object returns a Kubernetes object as plain values, secrets shown.
func (r *release) object(typ, name string) map[string]any {
	r.t.Helper()
	return render.Object(r.find(typ, name), true)
}

// decode converts a Kubernetes object into its typed form (k8s.io/api), so that tests read
// fields the way the API server would.
func (r *release) decode(typ, name string, into any) {
	r.t.Helper()
	body, err := json.Marshal(r.object(typ, name))
	require.NoError(r.t, err)
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	require.NoError(r.t, dec.Decode(into), "%s %s is not a valid object of its kind", typ, name)
}

// configFile returns one file of the release's ConfigMaps.
func (r *release) configFile(key string) string {
	r.t.Helper()
	for _, name := range []string{"redis-config", "redis-haproxy-config"} {
		data := r.object(typeConfigMap, name)["data"].(map[string]any)
		if value, ok := data[key].(string); ok {
			return value
		}
	}
	r.t.Fatalf("no ConfigMap has %s", key)
	return ""
}

// Type tokens of the objects the tests look at.
const (
	typeComponent     = components.TypeToken
	typeCluster       = components.ClusterTypeToken
	typeSecret        = "kubernetes:core/v1:Secret"
	typeConfigMap     = "kubernetes:core/v1:ConfigMap"
	typeService       = "kubernetes:core/v1:Service"
	typeStatefulSet   = "kubernetes:apps/v1:StatefulSet"
	typeDeployment    = "kubernetes:apps/v1:Deployment"
	typeNetworkPolicy = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	typePDB           = "kubernetes:policy/v1:PodDisruptionBudget"
	typeNamespace     = "kubernetes:core/v1:Namespace"
	typeAccount       = "kubernetes:core/v1:ServiceAccount"
	typeMonitor       = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
)
