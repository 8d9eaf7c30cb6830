package tests

import (
	"encoding/json"
	"fmt"
	"regexp"
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
// update the pool, never replace it (a new pool, then the whole old one drained and deleted).
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

// iamStatement is one statement of an identity policy, as much of the grammar as ours uses.
type iamStatement struct {
	Sid       string
	Effect    string
	Action    any
	Resource  any
	Condition map[string]map[string]any
}

// strings of an IAM field that is one string or a list of them.
func iamList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			out = append(out, s.(string))
		}
		return out
	}
	return nil
}

// iamMatch matches an IAM pattern, where * stands for any characters, "/" included.
func iamMatch(pattern, value string) bool {
	quoted := strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, `.*`)
	return regexp.MustCompile(`^` + quoted + `$`).MatchString(value)
}

// apiCall is one request the controller makes: an action on a resource, with the request's
// condition context (aws:RequestTag/..., aws:ResourceTag/..., elasticloadbalancing:CreateAction).
type apiCall struct {
	why      string
	action   string
	resource string
	context  map[string]string
}

// allowedBy returns the Sid of a statement of the policy that allows the call, or "" (IAM denies
// what no statement allows). Condition operators other than StringEquals and Null fail the test,
// so that the evaluator never passes a statement it does not understand.
func allowedBy(t *testing.T, policy []iamStatement, call apiCall) string {
	t.Helper()
	for _, s := range policy {
		if s.Effect != "Allow" {
			continue
		}
		matches := func(patterns []string, value string) bool {
			for _, p := range patterns {
				if iamMatch(p, value) {
					return true
				}
			}
			return false
		}
		if !matches(iamList(s.Action), call.action) || !matches(iamList(s.Resource), call.resource) {
			continue
		}
		ok := true
		for operator, keys := range s.Condition {
			for key, want := range keys {
				got, present := call.context[key]
				switch operator {
				case "StringEquals":
					ok = ok && present && contains(iamList(want), got)
				case "Null":
					ok = ok && (want == "true") == !present
				default:
					t.Fatalf("statement %s: condition operator %s is not understood by this test", s.Sid, operator)
				}
			}
		}
		if ok {
			return s.Sid
		}
	}
	return ""
}

func loadBalancerControllerPolicy(t *testing.T) []iamStatement {
	t.Helper()
	r := runDay2(t, "eks", nil)
	text := inputs(r.find("aws:iam/policy:Policy", "redis-lb-controller"))["policy"].(string)
	// An IAM managed policy holds at most 6144 characters, whitespace not counted.
	assert.LessOrEqual(t, len(strings.Join(strings.Fields(text), "")), 6144, "the policy fits in a managed policy")
	var document struct {
		Version   string
		Statement []iamStatement
	}
	require.NoError(t, json.Unmarshal([]byte(text), &document))
	require.Equal(t, "2012-10-17", document.Version)
	return document.Statement
}

// What the AWS Load Balancer Controller v2.13 does for our release: an internal NLB with IP
// targets, a TCP listener, and the security groups it manages for NLBs; then, on later
// reconciles, tag updates, attribute changes and deletion. Account, IDs and names are examples.
var nlbControllerCalls = func() []apiCall {
	const (
		arn      = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:"
		lb       = arn + "loadbalancer/net/k8s-redis-redismas-0123456789/50dc6c495c0c9188"
		tg       = arn + "targetgroup/k8s-redis-redismas-0123456789/73e2d6bc24d8a067"
		listener = arn + "listener/net/k8s-redis-redismas-0123456789/50dc6c495c0c9188/f2f7dc8efc522ab2"
		sg       = "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0123456789abcdef0"
		cluster  = "aws:RequestTag/elbv2.k8s.aws/cluster"
		owned    = "aws:ResourceTag/elbv2.k8s.aws/cluster"
	)
	creating := func(action string) map[string]string {
		return map[string]string{"elasticloadbalancing:CreateAction": action, cluster: "redis"}
	}
	var calls []apiCall
	for _, read := range []string{"ec2:DescribeAvailabilityZones", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeRouteTables",
		"ec2:DescribeSecurityGroups", "ec2:GetSecurityGroupsForVpc", "ec2:DescribeNetworkInterfaces", "ec2:DescribeInstances",
		"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
		"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerAttributes",
		"elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
		"elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
		"elasticloadbalancing:DescribeCapacityReservation"} {
		calls = append(calls, apiCall{"discovery", read, "*", nil})
	}
	return append(calls,
		apiCall{"the ELB service-linked role", "iam:CreateServiceLinkedRole", "arn:aws:iam::111122223333:role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing",
			map[string]string{"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
		apiCall{"the NLB's security group", "ec2:CreateSecurityGroup", "*", map[string]string{cluster: "redis"}},
		apiCall{"tagged as it is created", "ec2:CreateTags", sg, map[string]string{"ec2:CreateAction": "CreateSecurityGroup", cluster: "redis"}},
		apiCall{"the nodes' security group lets the NLB in", "ec2:AuthorizeSecurityGroupIngress", "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0fedcba9876543210", nil},
		apiCall{"the NLB", "elasticloadbalancing:CreateLoadBalancer", "*", map[string]string{cluster: "redis"}},
		apiCall{"tagged as it is created", "elasticloadbalancing:AddTags", lb, creating("CreateLoadBalancer")},
		apiCall{"its target group", "elasticloadbalancing:CreateTargetGroup", "*", map[string]string{cluster: "redis"}},
		apiCall{"tagged as it is created", "elasticloadbalancing:AddTags", tg, creating("CreateTargetGroup")},
		apiCall{"its TCP listener", "elasticloadbalancing:CreateListener", lb, nil},
		apiCall{"tagged as it is created (v2.13 tags listeners)", "elasticloadbalancing:AddTags", listener, creating("CreateListener")},
		apiCall{"pod IPs as targets", "elasticloadbalancing:RegisterTargets", tg, nil},
		apiCall{"pods gone", "elasticloadbalancing:DeregisterTargets", tg, nil},
		apiCall{"attributes", "elasticloadbalancing:ModifyLoadBalancerAttributes", lb, map[string]string{owned: "redis"}},
		apiCall{"attributes", "elasticloadbalancing:ModifyTargetGroupAttributes", tg, map[string]string{owned: "redis"}},
		apiCall{"health check", "elasticloadbalancing:ModifyTargetGroup", tg, map[string]string{owned: "redis"}},
		apiCall{"listener attributes", "elasticloadbalancing:ModifyListenerAttributes", listener, map[string]string{owned: "redis"}},
		apiCall{"listener settings", "elasticloadbalancing:ModifyListener", listener, nil},
		apiCall{"security groups of the NLB", "elasticloadbalancing:SetSecurityGroups", lb, map[string]string{owned: "redis"}},
		apiCall{"subnets of the NLB", "elasticloadbalancing:SetSubnets", lb, map[string]string{owned: "redis"}},
		apiCall{"tag reconcile", "elasticloadbalancing:AddTags", lb, map[string]string{owned: "redis"}},
		apiCall{"tag reconcile", "elasticloadbalancing:RemoveTags", tg, map[string]string{owned: "redis"}},
		apiCall{"tag reconcile on the listener", "elasticloadbalancing:AddTags", listener, map[string]string{owned: "redis"}},
		apiCall{"tag reconcile on the listener", "elasticloadbalancing:RemoveTags", listener, map[string]string{owned: "redis"}},
		apiCall{"tag reconcile", "ec2:CreateTags", sg, map[string]string{owned: "redis"}},
		apiCall{"Service deleted", "elasticloadbalancing:DeleteListener", listener, nil},
		apiCall{"Service deleted", "elasticloadbalancing:DeleteTargetGroup", tg, map[string]string{owned: "redis"}},
		apiCall{"Service deleted", "elasticloadbalancing:DeleteLoadBalancer", lb, map[string]string{owned: "redis"}},
		apiCall{"Service deleted", "ec2:DeleteSecurityGroup", sg, map[string]string{owned: "redis"}},
	)
}()

// The controller's policy is trimmed to what an NLB needs. Whatever v2.13 does for our NLB must be
// allowed (the listener is tagged as it is created: without AddTags on listener ARNs the NLB is
// never finished), and what we left out, or what is not the controller's own, must be denied.
func TestLoadBalancerControllerPolicyAllowsWhatTheControllerDoesForAnNLB(t *testing.T) {
	policy := loadBalancerControllerPolicy(t)
	for _, call := range nlbControllerCalls {
		assert.NotEmpty(t, allowedBy(t, policy, call), "%s: %s on %s with %v is denied", call.why, call.action, call.resource, call.context)
	}

	const arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:"
	for _, call := range []apiCall{
		{"a listener not created by the controller", "elasticloadbalancing:AddTags",
			arn + "listener/net/other/50dc6c495c0c9188/f2f7dc8efc522ab2", nil},
		{"taking over someone else's load balancer", "elasticloadbalancing:AddTags",
			arn + "loadbalancer/net/other/50dc6c495c0c9188", map[string]string{"aws:RequestTag/elbv2.k8s.aws/cluster": "redis"}},
		{"rewriting the ownership tag", "elasticloadbalancing:AddTags", arn + "loadbalancer/net/k8s-x/1",
			map[string]string{"aws:ResourceTag/elbv2.k8s.aws/cluster": "redis", "aws:RequestTag/elbv2.k8s.aws/cluster": "other"}},
		{"deleting a load balancer not created by the controller", "elasticloadbalancing:DeleteLoadBalancer", arn + "loadbalancer/net/other/1", nil},
		{"deleting a security group not created by the controller", "ec2:DeleteSecurityGroup", "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-1", nil},
		{"the service-linked role of another service", "iam:CreateServiceLinkedRole", "*", map[string]string{"iam:AWSServiceName": "ecs.amazonaws.com"}},
		{"ALB listener rules (left out)", "elasticloadbalancing:CreateRule", arn + "listener/app/k8s-x/1/2", nil},
		{"ALBs (left out)", "elasticloadbalancing:AddTags", arn + "listener/app/k8s-x/1/2",
			map[string]string{"elasticloadbalancing:CreateAction": "CreateListener", "aws:RequestTag/elbv2.k8s.aws/cluster": "redis"}},
		{"WAF (left out)", "wafv2:AssociateWebACL", "*", nil},
		{"WAF (left out)", "elasticloadbalancing:SetWebAcl", "*", nil},
		{"Shield (left out)", "shield:CreateProtection", "*", nil},
		{"Cognito (left out)", "cognito-idp:DescribeUserPoolClient", "*", nil},
		{"TLS certificates (left out)", "acm:ListCertificates", "*", nil},
		{"ALB IP pools (left out)", "elasticloadbalancing:ModifyIpPools", "*", map[string]string{"aws:ResourceTag/elbv2.k8s.aws/cluster": "redis"}},
	} {
		assert.Empty(t, allowedBy(t, policy, call), "%s: %s on %s is allowed", call.why, call.action, call.resource)
	}
}

// A new eksKubernetesVersion upgrades the control plane and everything that must match it: the
// node group's version is the cluster's, and each add-on is pinned to a version EKS publishes
// for that Kubernetes version (the newest), looked up through the stack's AWS provider.
func TestEKSNodesAndAddonsFollowTheControlPlaneVersion(t *testing.T) {
	for _, version := range []string{"1.33", "1.34"} {
		r := runDay2(t, "eks", map[string]string{"eksKubernetesVersion": version})
		require.Equal(t, version, inputs(r.find(typeEKSCluster, "redis"))["version"])
		nodes := r.find(typeEKSNodes, "redis")
		assert.Equal(t, version, inputs(nodes)["version"], "the nodes run the control plane's version")

		addons := r.ofType(typeEKSAddon)
		require.Len(t, addons, 5)
		for _, a := range addons {
			in := inputs(a)
			name := in["addonName"].(string)
			assert.Equal(t, mockAddonVersion(name, version, true), in["addonVersion"],
				"%s: pinned to the newest version for Kubernetes %s", name, version)
			assert.Equal(t, "OVERWRITE", in["resolveConflictsOnUpdate"], "%s: an upgrade starts from what the code says", name)
			assert.True(t, r.dependsOn(typeEKSAddon, a.Name, nodes), "%s moves after the nodes", name)
		}

		lookups := 0
		for _, call := range r.mock.invokes {
			if call.Token == "aws:eks/getAddonVersion:getAddonVersion" {
				lookups++
				assert.Contains(t, call.Provider, "pulumi:providers:aws::redis-aws", "looked up in the stack's region")
			}
		}
		assert.Equal(t, len(addons), lookups, "one lookup per add-on")
	}
}

// Inputs of the clusters, node group and add-ons we set that the clouds update in place
// (pulumi-gcp v7.38, pulumi-aws v7.41); a change of any other one replaces the resource.
var updatableInPlace = map[string]map[string]bool{
	typeGKECluster: {
		"masterAuthorizedNetworksConfig.cidrBlocks":  true,
		"privateClusterConfig.enablePrivateEndpoint": true, // updatable since late 2022 (magic-modules #6780)
		"releaseChannel.channel":                     true,
		"deletionProtection":                         true,
	},
	typeEKSCluster: {
		"version":                        true,
		"vpcConfig.endpointPublicAccess": true,
		"vpcConfig.publicAccessCidrs":    true,
	},
	typeEKSNodes: {
		"version":                   true,
		"scalingConfig.minSize":     true,
		"scalingConfig.maxSize":     true,
		"scalingConfig.desiredSize": true,
	},
	typeEKSAddon: {"addonVersion": true},
}

// The keys users change week by week update the cluster, its nodes and add-ons in place, and the
// inputs only read at creation are ignored afterwards. (The keys that do replace the cluster,
// such as the region, the network or the control plane's range, are listed in the report of
// this change and belong to the "refused" class.)
func TestCloudDayTwoKeysUpdateClustersInPlace(t *testing.T) {
	for _, c := range []struct {
		stack    string
		override map[string]string
	}{
		{"gke", map[string]string{"gkeMasterAuthorizedNetworks": "[]"}},
		{"gke", map[string]string{"gkeMasterAuthorizedNetworks": `["203.0.113.0/24","198.51.100.0/24"]`}},
		{"gke", map[string]string{"gkeReleaseChannel": "STABLE"}},
		{"gke", map[string]string{"gkeDeletionProtection": "false"}},
		{"eks", map[string]string{"eksKubernetesVersion": "1.34"}},
		{"eks", map[string]string{"eksPublicAccessCidrs": "[]"}},
		{"eks", map[string]string{"eksMinNodes": "4", "eksDesiredNodes": "4"}},
		{"eks", map[string]string{"eksMaxNodes": "9"}},
	} {
		before, after := runDay2(t, c.stack, nil), runDay2(t, c.stack, c.override)
		changed := 0
		for _, res := range after.resources {
			allowed, watched := updatableInPlace[res.Type]
			if !watched {
				continue
			}
			paths := changedPaths("", inputs(before.find(res.Type, res.Name)), inputs(res))
			changed += len(paths)
			for _, p := range paths {
				assert.True(t, allowed[p], "%v changes %s %s's %s, which is not updated in place", c.override, res.Type, res.Name, p)
			}
		}
		assert.NotZero(t, changed, "%v: the premise: something changes", c.override)
	}

	gke := runDay2(t, "gke", nil)
	assert.Subset(t, gke.request(typeGKECluster, "redis").GetIgnoreChanges(), []string{"initialNodeCount", "nodeConfig"},
		"the default pool's inputs are read only at creation")
	eks := runDay2(t, "eks", nil)
	assert.Contains(t, eks.request(typeEKSCluster, "redis").GetIgnoreChanges(), "accessConfig.bootstrapClusterCreatorAdminPermissions",
		"read only at creation")
}
