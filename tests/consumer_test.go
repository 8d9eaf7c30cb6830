package tests

import (
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/d3ad221e/redis-sentinel/examples/consumer/shop"
	"github.com/d3ad221e/redis-sentinel/internal/render"
)

const typeStackReference = "pulumi:pulumi:StackReference"

// stackReferenceMock is the recording mock, with stack references that answer with outputs, and
// reads of Secrets that answer, for an ID "namespace/name" of passwords, with that password.
type stackReferenceMock struct {
	*render.Recorder
	outputs   map[string]any
	passwords map[string]string
}

func (m stackReferenceMock) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	id, state, err := m.Recorder.NewResource(args)
	if args.TypeToken == typeStackReference {
		state["outputs"] = resource.NewObjectProperty(resource.NewPropertyMapFromMap(m.outputs))
	}
	if password, ok := m.passwords[args.ID]; ok && args.TypeToken == typeSecret {
		state["data"] = resource.MakeSecret(resource.NewProperty(resource.PropertyMap{
			"password": resource.NewProperty(base64.StdEncoding.EncodeToString([]byte(password))),
		}))
	}
	return id, state, err
}

// typeExports is a registration that runWithExports adds to a program: its inputs are the
// program's stack outputs, which the mock monitor only sees once they are resolved.
const typeExports = "test:index:Exports"

// runWithExports runs a program under the recording mock, its stack references answering with
// stackOutputs, and returns the program's stack outputs.
func runWithExports(t *testing.T, program pulumi.RunFunc, mock stackReferenceMock, project string, config map[string]string) map[string]any {
	t.Helper()
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		if err := program(ctx); err != nil {
			return err
		}
		var exports struct{ pulumi.CustomResourceState }
		return ctx.RegisterResource(typeExports, "exports", pulumi.Map{"exports": pulumi.Map(ctx.GetCurrentExportMap())}, &exports)
	}, pulumi.WithMocks(project, "test", mock),
		func(info *pulumi.RunInfo) { info.Config = config })
	require.NoError(t, err)
	r := &release{t: t, resources: mock.Recorder.Resources()}
	return render.Object(r.find(typeExports, "exports"), true)["exports"].(map[string]any)
}

func TestTheConsumerExampleExportsTheEndpointsOfItsOwnRelease(t *testing.T) {
	rec := &render.Recorder{}
	exports := runWithExports(t, shop.Program, stackReferenceMock{Recorder: rec}, "redis-consumer", nil)
	assert.Equal(t, map[string]any{
		"masterEndpoint":   "cache-master.shop.svc.cluster.local:6379",
		"sentinelEndpoint": "cache-sentinel.shop.svc.cluster.local:26379",
		"masterSetName":    "shop-cache",
		"secretName":       "cache-auth",
		"namespace":        "shop",
	}, exports)

	r := &release{t: t, resources: rec.Resources()}
	assert.Empty(t, r.ofType(typeStackReference), "no stack is read unless mainStack is set")
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "cache", &sts)
	assert.Equal(t, int32(5), *sts.Spec.Replicas)
	assert.Empty(t, sts.Spec.VolumeClaimTemplates, "ephemeral: no volumes")
	var haproxy appsv1.Deployment
	r.decode(typeDeployment, "cache-haproxy", &haproxy)
	assert.Equal(t, int32(3), *haproxy.Spec.Replicas)
	data := r.object(typeConfigMap, "cache-config")["data"].(map[string]any)
	assert.Contains(t, data["sentinel.conf"], "down-after-milliseconds shop-cache 3000")
}

// The consumer reads the outputs that the redis-sentinel program really exports: the stack
// reference answers with what stacks.Run exports for the local stack, so a renamed output
// leaves the consumer's settings empty and fails here.
func TestTheConsumerExampleReadsTheMainStackThroughAStackReference(t *testing.T) {
	cfg, err := render.LoadStackConfig(repoRoot, "local")
	require.NoError(t, err)
	mainOutputs := runWithExports(t, stacksRun, stackReferenceMock{Recorder: &render.Recorder{}}, cfg.Project, cfg.Values)
	require.Equal(t, "redis-master.redis.svc.cluster.local:6379", mainOutputs["masterEndpoint"], "%v", mainOutputs)

	rec := &render.Recorder{}
	mainSecret := fmt.Sprintf("%s/%s", mainOutputs["namespace"], mainOutputs["secretName"])
	exports := runWithExports(t, shop.Program, stackReferenceMock{Recorder: rec, outputs: mainOutputs, passwords: map[string]string{mainSecret: testPassword}},
		"redis-consumer", map[string]string{"redis-consumer:mainStack": "acme/redis-sentinel/local"})
	assert.Equal(t, mainOutputs["masterEndpoint"], exports["sharedRedisMaster"])
	assert.Equal(t, "shared-redis", exports["sharedRedisSettings"])
	assert.Equal(t, "cache-master.shop.svc.cluster.local:6379", exports["masterEndpoint"], "its own release is still there")

	r := &release{t: t, resources: rec.Resources()}
	r.find(typeStackReference, "acme/redis-sentinel/local")

	// A pod can only use a Secret of its own namespace: the password is copied into the shop's.
	auth := r.find(typeSecret, "shared-redis-auth")
	assert.True(t, auth.Inputs["data"].ContainsSecrets(), "the copy is a Pulumi secret too")
	copied := render.Object(auth, true)
	assert.Equal(t, "shop", path(copied, "metadata", "namespace"))
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte(testPassword)), path(copied, "data", "password"),
		"the password of the main release's Secret %s", mainSecret)

	settings := r.object(typeConfigMap, "shared-redis")
	assert.Equal(t, map[string]any{
		"REDIS_MASTER":     mainOutputs["masterEndpoint"],
		"REDIS_SENTINELS":  mainOutputs["sentinelEndpoint"],
		"REDIS_MASTER_SET": mainOutputs["masterSetName"],
		"REDIS_SECRET":     "shared-redis-auth",
	}, settings["data"], "the Secret the shop's pods use is the copy in their namespace")
	assert.Equal(t, "shop", settings["metadata"].(map[string]any)["namespace"])
}
