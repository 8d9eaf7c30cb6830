package tests

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// Day 2 of the cloud stacks: what the second `pulumi up` does to the cluster, its nodes and the
// kubernetes providers when a key changes. The engine decides replacements from resource options
// (ignoreChanges, dependsOn) and from which outputs an input is built, so these tests record the
// options too, and stand in for the clouds where an output matters.

// cloudMock is internal/render's recording mock plus three things the day-2 tests need: the
// options of each registration, answers to the invokes the stacks make, and the outputs a cloud
// computes that the tests reason about (a GKE cluster's ID and endpoint, a service account's
// e-mail).
type cloudMock struct {
	*render.Recorder
	mu       sync.Mutex
	requests map[string]*pulumirpc.RegisterResourceRequest // by "type::name"
	invokes  []pulumi.MockCallArgs
}

// Stand-ins for what the clouds compute. The GKE endpoint is the private address of the control
// plane when its public endpoint is off, a public one otherwise, as on GKE.
const (
	mockGKEPrivateEndpoint = "172.16.0.18"
	mockGKEPublicEndpoint  = "34.76.0.10"
	mockGCPProject         = "mock-project"
)

// mockAddonVersion is the mock's answer to aws:eks/getAddonVersion: a version that names the
// add-on and the Kubernetes version it was asked for, so that a test sees both followed through.
func mockAddonVersion(addon, kubernetesVersion string, mostRecent bool) string {
	kind := "default"
	if mostRecent {
		kind = "latest"
	}
	return fmt.Sprintf("v%s-%s-%s-eksbuild.1", kubernetesVersion, addon, kind)
}

func (m *cloudMock) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	id, outputs, err := m.Recorder.NewResource(args)
	if err != nil {
		return id, outputs, err
	}
	m.mu.Lock()
	m.requests[args.TypeToken+"::"+args.Name] = args.RegisterRPC
	m.mu.Unlock()
	switch args.TypeToken {
	case "gcp:container/cluster:Cluster":
		id = fmt.Sprintf("projects/%s/locations/%s/clusters/%s", mockGCPProject, args.Inputs["location"].StringValue(), args.Name)
		endpoint := mockGKEPublicEndpoint
		if private := args.Inputs["privateClusterConfig"]; private.IsObject() && private.ObjectValue()["enablePrivateEndpoint"].IsBool() &&
			private.ObjectValue()["enablePrivateEndpoint"].BoolValue() {
			endpoint = mockGKEPrivateEndpoint
		}
		outputs["endpoint"] = resource.NewProperty(endpoint)
	case "gcp:serviceaccount/account:Account":
		outputs["email"] = resource.NewProperty(args.Inputs["accountId"].StringValue() + "@" + mockGCPProject + ".iam.gserviceaccount.com")
	}
	return id, outputs, nil
}

func (m *cloudMock) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	m.mu.Lock()
	m.invokes = append(m.invokes, args)
	m.mu.Unlock()
	if args.Token == "aws:eks/getAddonVersion:getAddonVersion" {
		addon, version := args.Args["addonName"].StringValue(), args.Args["kubernetesVersion"].StringValue()
		mostRecent := args.Args["mostRecent"].IsBool() && args.Args["mostRecent"].BoolValue()
		return resource.PropertyMap{
			"addonName":         resource.NewProperty(addon),
			"kubernetesVersion": resource.NewProperty(version),
			"mostRecent":        resource.NewProperty(mostRecent),
			"version":           resource.NewProperty(mockAddonVersion(addon, version, mostRecent)),
		}, nil
	}
	return m.Recorder.Call(args)
}

// day2Run is one run of a cloud stack under cloudMock.
type day2Run struct {
	*release
	mock *cloudMock
}

// runDay2 runs the program with a stack file of the repository, some keys replaced, under
// cloudMock; the configuration must be accepted.
func runDay2(t *testing.T, stack string, overrides map[string]string) *day2Run {
	t.Helper()
	cfg, err := render.LoadStackConfig(repoRoot, stack)
	require.NoError(t, err)
	for key, value := range overrides {
		cfg.Values[cfg.Project+":"+key] = value
	}
	mock := &cloudMock{Recorder: &render.Recorder{}, requests: map[string]*pulumirpc.RegisterResourceRequest{}}
	err = pulumi.RunErr(stacksRun, pulumi.WithMocks(cfg.Project, cfg.Stack, mock), func(info *pulumi.RunInfo) {
		info.Config = cfg.Values
		info.ConfigSecretKeys = cfg.SecretKeys
	})
	require.NoError(t, err)
	return &day2Run{release: &release{t: t, resources: mock.Resources()}, mock: mock}
}

// request returns the registration request of a resource: its options as the engine sees them.
func (r *day2Run) request(typ, name string) *pulumirpc.RegisterResourceRequest {
	r.t.Helper()
	r.find(typ, name) // fails the test when there is no such resource
	r.mock.mu.Lock()
	defer r.mock.mu.Unlock()
	req := r.mock.requests[typ+"::"+name]
	require.NotNil(r.t, req, "no register request recorded for %s %s", typ, name)
	return req
}

// dependsOn says whether the resource waits for another one: the engine creates and updates it
// only after the other (an explicit dependsOn, or an input built from the other's outputs).
func (r *day2Run) dependsOn(typ, name string, on render.Resource) bool {
	r.t.Helper()
	for _, urn := range r.request(typ, name).GetDependencies() {
		if urnTypeName(urn) == on.Type+"::"+on.Name {
			return true
		}
	}
	return false
}

// urnTypeName turns urn:pulumi:stack::project::parentType$type::name into "type::name".
func urnTypeName(urn string) string {
	parts := strings.SplitN(urn, "::", 4)
	if len(parts) < 4 {
		return urn
	}
	types := strings.Split(parts[2], "$")
	return types[len(types)-1] + "::" + parts[3]
}

const (
	typeK8sProvider = "pulumi:providers:kubernetes"
	typeGKECluster  = "gcp:container/cluster:Cluster"
	typeGKEPool     = "gcp:container/nodePool:NodePool"
	typeEKSCluster  = "aws:eks/cluster:Cluster"
	typeEKSNodes    = "aws:eks/nodeGroup:NodeGroup"
	typeEKSAddon    = "aws:eks/addon:Addon"
)

// providerField returns one input of a kubernetes provider as a plain value, secrets shown.
func (r *day2Run) providerField(name, field string) any {
	r.t.Helper()
	return inputs(r.find(typeK8sProvider, name))[field]
}

// Flipping gkeMasterAuthorizedNetworks between empty and not flips the control plane's endpoint
// between private and public, and so the server in the kubeconfig. Without a clusterIdentifier,
// pulumi-kubernetes reads a new server as a new cluster and replaces the provider, and with it
// every object of the release. The identifier is the cluster's own ID: the same for the same
// cluster, another for another cluster.
func TestGKEProviderKeepsItsIdentityWhenTheEndpointTurnsPrivate(t *testing.T) {
	public := runDay2(t, "gke", nil)
	private := runDay2(t, "gke", map[string]string{"gkeMasterAuthorizedNetworks": "[]"})

	require.Contains(t, public.providerField("redis-gke", "kubeconfig"), "server: https://"+mockGKEPublicEndpoint)
	require.Contains(t, private.providerField("redis-gke", "kubeconfig"), "server: https://"+mockGKEPrivateEndpoint,
		"the premise: the kubeconfig names another server")

	want := "projects/" + mockGCPProject + "/locations/europe-west1/clusters/redis"
	assert.Equal(t, want, public.providerField("redis-gke", "clusterIdentifier"), "the cluster's ID")
	assert.Equal(t, want, private.providerField("redis-gke", "clusterIdentifier"), "unchanged with the endpoint")

	other := runDay2(t, "gke", map[string]string{"gcpRegion": "europe-west4",
		"gkeZones": `["europe-west4-a","europe-west4-b","europe-west4-c"]`})
	assert.NotEqual(t, want, other.providerField("redis-gke", "clusterIdentifier"), "another cluster, another identity")
}

func TestEKSProvidersAreIdentifiedByTheClusterARN(t *testing.T) {
	withPublicEndpoint := runDay2(t, "eks", nil)
	privateOnly := runDay2(t, "eks", map[string]string{"eksPublicAccessCidrs": "[]"})
	// The cluster's name is fixed (the subnets' tags and the kubeconfig name it), so a cluster
	// re-created under that name would have the same ARN; replacing it needs a destroy first.
	require.Equal(t, "redis", inputs(withPublicEndpoint.find(typeEKSCluster, "redis"))["name"])
	for _, name := range []string{"redis-eks", "redis-eks-addons"} {
		for _, r := range []*day2Run{withPublicEndpoint, privateOnly} {
			assert.Equal(t, "arn:aws:mock:::"+typeEKSCluster+"/redis", r.providerField(name, "clusterIdentifier"), name)
		}
	}
}

// Every kubernetes provider a cloud stack creates has an identifier, so that none of them can be
// replaced by a kubeconfig change alone.
func TestEveryClusterProviderOfTheCloudStacksHasAClusterIdentifier(t *testing.T) {
	for _, stack := range []string{"gke", "eks"} {
		r := runDay2(t, stack, nil)
		providers := r.ofType(typeK8sProvider)
		require.NotEmpty(t, providers, stack)
		for _, p := range providers {
			id, _ := inputs(p)["clusterIdentifier"].(string)
			assert.NotEmpty(t, id, "%s: provider %s", stack, p.Name)
			assert.NotContains(t, id, "https://", "%s: provider %s: the identifier must not be the endpoint", stack, p.Name)
		}
	}
}

// changedPaths lists the dotted paths at which two inputs differ: maps are compared key by key,
// anything else (lists included) as a whole.
func changedPaths(prefix string, a, b map[string]any) []string {
	var out []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		am, aIsMap := a[k].(map[string]any)
		bm, bIsMap := b[k].(map[string]any)
		switch {
		case aIsMap && bIsMap:
			out = append(out, changedPaths(p, am, bm)...)
		case fmt.Sprint(a[k]) != fmt.Sprint(b[k]):
			out = append(out, p)
		}
	}
	return out
}

// nodePoolUpdatableInPlace are the node pool inputs we set that GKE (pulumi-gcp v7, Terraform
// google provider v5.10 and later) updates without a new pool; any other change replaces it.
var nodePoolUpdatableInPlace = map[string]bool{
	"autoscaling.minNodeCount": true,
	"autoscaling.maxNodeCount": true,
	"nodeLocations":            true, // nodes added or removed zone by zone
	"nodeConfig.machineType":   true, // a surge upgrade, one node at a time (upgradeSettings)
}

// The node pool's keys are day-2 keys: a new minimum, maximum, machine type or zone list must
// update the pool, never replace it (all its nodes at once, the PodDisruptionBudget ignored).
func TestGKENodePoolKeysNeverReplaceThePool(t *testing.T) {
	before := runDay2(t, "gke", nil)
	ignored := before.request(typeGKEPool, "redis").GetIgnoreChanges()
	assert.Contains(t, ignored, "initialNodeCount", "initialNodeCount cannot be updated: a change would replace the pool")

	for _, change := range []map[string]string{
		{"gkeMinNodesPerZone": "2"},
		{"gkeMinNodesPerZone": "0"},
		{"gkeMaxNodesPerZone": "5"},
		{"gkeMachineType": "n2-standard-8"},
		{"gkeZones": `["europe-west1-b","europe-west1-c","europe-west1-d","europe-west1-e"]`},
	} {
		after := runDay2(t, "gke", change)
		paths := changedPaths("", inputs(before.find(typeGKEPool, "redis")), inputs(after.find(typeGKEPool, "redis")))
		require.NotEmpty(t, paths, "%v: the premise: the pool changes", change)
		for _, p := range paths {
			assert.True(t, nodePoolUpdatableInPlace[p] || contains(ignored, strings.SplitN(p, ".", 2)[0]),
				"%v changes the node pool's %s, which GKE cannot update in place", change, p)
		}
		assert.Empty(t, changedPaths("", inputs(before.find(typeGKECluster, "redis")), inputs(after.find(typeGKECluster, "redis"))),
			"%v: the cluster is not touched", change)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// GKE nodes log, report metrics and pull images from their first boot, as their own service
// account: the APIs they use are enabled and the account's roles bound before the node pool
// (and the cluster's short-lived default pool) is created.
func TestGKENodesRunAsTheirOwnAccountWithRolesBoundFirst(t *testing.T) {
	r := runDay2(t, "gke", nil)
	account := inputs(r.find("gcp:serviceaccount/account:Account", "redis-nodes"))
	email := account["accountId"].(string) + "@" + mockGCPProject + ".iam.gserviceaccount.com"

	pool := inputs(r.find(typeGKEPool, "redis"))
	assert.Equal(t, email, path(pool, "nodeConfig", "serviceAccount"), "the pool runs as the nodes' account")
	cluster := inputs(r.find(typeGKECluster, "redis"))
	assert.Equal(t, email, path(cluster, "nodeConfig", "serviceAccount"), "so does the default pool GKE creates and removes")
	assert.Contains(t, r.request(typeGKECluster, "redis").GetIgnoreChanges(), "nodeConfig",
		"nodeConfig only shapes the removed default pool; a change must not replace the cluster")

	roles := map[string]bool{}
	for _, binding := range r.ofType("gcp:projects/iAMMember:IAMMember") {
		in := inputs(binding)
		if in["member"] != "serviceAccount:"+email {
			continue
		}
		roles[in["role"].(string)] = true
		assert.Equal(t, "acme-redis-prod", in["project"], binding.Name)
		assert.True(t, r.dependsOn(typeGKEPool, "redis", binding), "the pool waits for %s", in["role"])
		assert.True(t, r.dependsOn(typeGKECluster, "redis", binding), "the cluster (its default pool) waits for %s", in["role"])
	}
	for _, role := range []string{"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
		"roles/stackdriver.resourceMetadata.writer", "roles/artifactregistry.reader"} {
		assert.True(t, roles[role], "the nodes' account has %s", role)
	}

	services := r.ofType("gcp:projects/service:Service")
	enabled := map[string]bool{}
	for _, s := range services {
		in := inputs(s)
		enabled[in["service"].(string)] = true
		assert.Equal(t, "acme-redis-prod", in["project"], s.Name)
		assert.Equal(t, false, in["disableOnDestroy"], "%s: a destroy must not turn the API off for the whole project", s.Name)
	}
	for _, api := range []string{"compute.googleapis.com", "container.googleapis.com", "iam.googleapis.com",
		"cloudresourcemanager.googleapis.com", "logging.googleapis.com", "monitoring.googleapis.com"} {
		assert.True(t, enabled[api], "%s is enabled", api)
	}
	for _, res := range r.resources {
		if !strings.HasPrefix(res.Type, "gcp:") || res.Type == "gcp:projects/service:Service" {
			continue
		}
		for _, s := range services {
			assert.True(t, r.dependsOn(res.Type, res.Name, s), "%s %s waits for %s", res.Type, res.Name, inputs(s)["service"])
		}
	}
}
