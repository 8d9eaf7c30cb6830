package tests

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// runCloudStack runs the program with a stack file of the repository (local, local-cluster, gke
// or eks), some keys replaced.
func runCloudStack(t *testing.T, stack string, overrides map[string]string) (*release, error) {
	t.Helper()
	cfg, err := render.LoadStackConfig(repoRoot, stack)
	require.NoError(t, err)
	for key, value := range overrides {
		cfg.Values[cfg.Project+":"+key] = value
	}
	rec, err := render.Run(stacksRun, cfg, false)
	return &release{t: t, resources: rec.Resources()}, err
}

func mustRunCloudStack(t *testing.T, stack string, overrides map[string]string) *release {
	t.Helper()
	r, err := runCloudStack(t, stack, overrides)
	require.NoError(t, err)
	return r
}

// inputs returns a registration's inputs as plain values (secrets shown).
func inputs(res render.Resource) map[string]any {
	return render.Object(res, true)
}

// path walks nested maps: path(m, "a", "b") is m["a"]["b"].
func path(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		next, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = next[k]
	}
	return v
}

func TestGKEClusterIsPrivateRegionalAndHardened(t *testing.T) {
	r := mustRunCloudStack(t, "gke", nil)
	cluster := inputs(r.find("gcp:container/cluster:Cluster", "redis"))
	assert.Equal(t, "europe-west1", cluster["location"], "regional")
	assert.Equal(t, true, path(cluster, "privateClusterConfig", "enablePrivateNodes"), "private nodes")
	assert.Equal(t, true, cluster["removeDefaultNodePool"], "no default node pool")
	assert.Equal(t, "acme-redis-prod.svc.id.goog", path(cluster, "workloadIdentityConfig", "workloadPool"), "Workload Identity")
	assert.Equal(t, "ADVANCED_DATAPATH", cluster["datapathProvider"], "Dataplane V2 enforces NetworkPolicies")
	assert.Equal(t, true, cluster["enableShieldedNodes"])
	assert.Equal(t, "REGULAR", path(cluster, "releaseChannel", "channel"))
	assert.Equal(t, []any{map[string]any{"cidrBlock": "203.0.113.0/24"}}, path(cluster, "masterAuthorizedNetworksConfig", "cidrBlocks"))

	pool := inputs(r.find("gcp:container/nodePool:NodePool", "redis"))
	assert.Equal(t, []any{"europe-west1-b", "europe-west1-c", "europe-west1-d"}, pool["nodeLocations"], "three zones")
	assert.Equal(t, map[string]any{"minNodeCount": int64(1), "maxNodeCount": int64(3)}, pool["autoscaling"])
	assert.Equal(t, "GKE_METADATA", path(pool, "nodeConfig", "workloadMetadataConfig", "mode"))
	assert.Equal(t, true, path(pool, "nodeConfig", "shieldedInstanceConfig", "enableSecureBoot"))

	subnet := inputs(r.find("gcp:compute/subnetwork:Subnetwork", "redis"))
	assert.Equal(t, true, subnet["privateIpGoogleAccess"])
	assert.Len(t, subnet["secondaryIpRanges"], 2, "pods and services ranges")
	r.find("gcp:compute/routerNat:RouterNat", "redis")
}

func TestGKEControlPlaneIsNeverOpenToTheInternetByDefault(t *testing.T) {
	r := mustRunCloudStack(t, "gke", map[string]string{"gkeMasterAuthorizedNetworks": "[]"})
	cluster := inputs(r.find("gcp:container/cluster:Cluster", "redis"))
	assert.Equal(t, true, path(cluster, "privateClusterConfig", "enablePrivateEndpoint"),
		"no authorized network: the endpoint is private")
	for _, res := range r.resources {
		body, err := json.Marshal(inputs(res))
		require.NoError(t, err)
		assert.NotContains(t, string(body), "0.0.0.0/0", "%s %s", res.Type, res.Name)
	}

	_, err := runCloudStack(t, "gke", map[string]string{"gkeMasterAuthorizedNetworks": `["0.0.0.0/0"]`})
	require.Error(t, err)
	r = mustRunCloudStack(t, "gke", map[string]string{"gkeMasterAuthorizedNetworks": `["0.0.0.0/0"]`, "allowPublicControlPlane": "true"})
	cluster = inputs(r.find("gcp:container/cluster:Cluster", "redis"))
	assert.Equal(t, false, path(cluster, "privateClusterConfig", "enablePrivateEndpoint"), "the explicit opt-in")
}

func TestGKEWithAnExistingNetworkCreatesNone(t *testing.T) {
	r := mustRunCloudStack(t, "gke", map[string]string{"gkeNetwork": "shared-vpc", "gkeSubnetwork": "redis-nodes", "clusterNetworks": `["10.128.0.0/20", "10.132.0.0/14"]`})
	assert.Empty(t, r.ofType("gcp:compute/network:Network"))
	assert.Empty(t, r.ofType("gcp:compute/subnetwork:Subnetwork"))
	cluster := inputs(r.find("gcp:container/cluster:Cluster", "redis"))
	assert.Equal(t, "shared-vpc", cluster["network"])
	assert.Equal(t, "redis-nodes", cluster["subnetwork"])
}

func TestEKSNodesLiveOnlyInPrivateSubnets(t *testing.T) {
	r := mustRunCloudStack(t, "eks", nil)
	var private, public []any
	for _, res := range r.ofType("aws:ec2/subnet:Subnet") {
		tags := inputs(res)["tags"].(map[string]any)
		switch {
		case tags["kubernetes.io/role/internal-elb"] == "1":
			private = append(private, res.Name+"-id")
		case tags["kubernetes.io/role/elb"] == "1":
			public = append(public, res.Name+"-id")
		}
	}
	require.Len(t, private, 3)
	require.Len(t, public, 3)
	group := inputs(r.find("aws:eks/nodeGroup:NodeGroup", "redis"))
	assert.ElementsMatch(t, private, group["subnetIds"])
	cluster := inputs(r.find("aws:eks/cluster:Cluster", "redis"))
	assert.ElementsMatch(t, private, path(cluster, "vpcConfig", "subnetIds"))
	assert.Len(t, r.ofType("aws:ec2/natGateway:NatGateway"), 3, "one NAT gateway per zone")
}

func TestEKSSubnetsNeverOverlapUpToSixZones(t *testing.T) {
	r := mustRunCloudStack(t, "eks", map[string]string{
		"eksAvailabilityZones": `["eu-west-1a","eu-west-1b","eu-west-1c","eu-west-1d","eu-west-1e","eu-west-1f"]`,
		"eksVpcCidr":           "10.0.0.0/20",
	})
	var networks []*net.IPNet
	for _, res := range r.ofType("aws:ec2/subnet:Subnet") {
		_, n, err := net.ParseCIDR(inputs(res)["cidrBlock"].(string))
		require.NoError(t, err)
		_, vpc, _ := net.ParseCIDR("10.0.0.0/20")
		assert.True(t, vpc.Contains(n.IP), "%s inside the VPC", n)
		for _, other := range networks {
			assert.False(t, other.Contains(n.IP) || n.Contains(other.IP), "%s overlaps %s", n, other)
		}
		networks = append(networks, n)
	}
	assert.Len(t, networks, 12)
}

func TestEKSClusterHasTheNameItsKubeconfigAndTagsUse(t *testing.T) {
	r := mustRunCloudStack(t, "eks", nil)
	assert.Equal(t, "redis", inputs(r.find("aws:eks/cluster:Cluster", "redis"))["name"], "not auto-named")
	for _, res := range r.ofType("aws:ec2/subnet:Subnet") {
		assert.Equal(t, "shared", path(inputs(res), "tags", "kubernetes.io/cluster/redis"), res.Name)
	}
	text := render.Object(r.find("pulumi:providers:kubernetes", "redis-eks"), true)["kubeconfig"].(string)
	assert.Contains(t, text, "- --cluster-name\n")
	assert.Contains(t, text, "- redis\n")
	cni := inputs(r.find("aws:eks/addon:Addon", "redis-vpc-cni"))
	assert.JSONEq(t, `{"enableNetworkPolicy":"true"}`, cni["configurationValues"].(string), "the VPC CNI enforces the release's NetworkPolicies")
}

func TestEKSGravitonNodesGetTheARMImage(t *testing.T) {
	group := inputs(mustRunCloudStack(t, "eks", map[string]string{"eksInstanceTypes": `["m7g.large","c6gn.xlarge"]`}).find("aws:eks/nodeGroup:NodeGroup", "redis"))
	assert.Equal(t, "AL2023_ARM_64_STANDARD", group["amiType"])
	group = inputs(mustRunCloudStack(t, "eks", map[string]string{"eksInstanceTypes": `["m6i.large","g5.xlarge"]`}).find("aws:eks/nodeGroup:NodeGroup", "redis"))
	assert.Equal(t, "AL2023_x86_64_STANDARD", group["amiType"], "g5 is an x86 GPU family, not Graviton")
}

func TestEKSEndpointAccessIsAsConfigured(t *testing.T) {
	cluster := inputs(mustRunCloudStack(t, "eks", nil).find("aws:eks/cluster:Cluster", "redis"))
	assert.Equal(t, true, path(cluster, "vpcConfig", "endpointPrivateAccess"))
	assert.Equal(t, true, path(cluster, "vpcConfig", "endpointPublicAccess"))
	assert.Equal(t, []any{"203.0.113.0/24"}, path(cluster, "vpcConfig", "publicAccessCidrs"))

	cluster = inputs(mustRunCloudStack(t, "eks", map[string]string{"eksPublicAccessCidrs": "[]"}).find("aws:eks/cluster:Cluster", "redis"))
	assert.Equal(t, false, path(cluster, "vpcConfig", "endpointPublicAccess"), "no CIDR, no public endpoint")
}

func TestEKSEncryptsSecretsAndInstallsWhatTheReleaseNeeds(t *testing.T) {
	r := mustRunCloudStack(t, "eks", nil)
	cluster := inputs(r.find("aws:eks/cluster:Cluster", "redis"))
	assert.Equal(t, []any{"secrets"}, path(cluster, "encryptionConfig", "resources"))
	key := inputs(r.find("aws:kms/key:Key", "redis-secrets"))
	assert.Equal(t, true, key["enableKeyRotation"])
	assert.Equal(t, "arn:aws:mock:::aws:kms/key:Key/redis-secrets", path(cluster, "encryptionConfig", "provider", "keyArn"),
		"the cluster's secrets use the stack's KMS key")

	var addons []any
	for _, res := range r.ofType("aws:eks/addon:Addon") {
		addons = append(addons, inputs(res)["addonName"])
	}
	assert.ElementsMatch(t, []any{"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver", "eks-pod-identity-agent"}, addons)
	ebs := inputs(r.find("aws:eks/addon:Addon", "redis-aws-ebs-csi-driver"))
	assert.Equal(t, "ebs-csi-controller-sa", path(ebs["podIdentityAssociations"].([]any)[0].(map[string]any), "serviceAccount"))

	storage := r.object("kubernetes:storage.k8s.io/v1:StorageClass", "gp3")
	assert.Equal(t, "ebs.csi.aws.com", storage["provisioner"])
	assert.Equal(t, "gp3", path(storage, "parameters", "type"))
	assert.Equal(t, "true", path(storage, "metadata", "annotations", "storageclass.kubernetes.io/is-default-class"),
		"the release's claims (no class named) bind to it")
	assert.Equal(t, "WaitForFirstConsumer", storage["volumeBindingMode"], "volumes in the zone of their pod")

	controller := inputs(r.find("kubernetes:helm.sh/v3:Release", "aws-load-balancer-controller"))
	assert.Equal(t, "1.13.0", controller["version"], "pinned")
	association := inputs(r.find("aws:eks/podIdentityAssociation:PodIdentityAssociation", "redis-lb-controller"))
	assert.Equal(t, "aws-load-balancer-controller", association["serviceAccount"])
	assert.Equal(t, "kube-system", association["namespace"])
	policy := inputs(r.find("aws:iam/policy:Policy", "redis-lb-controller"))
	var document map[string]any
	require.NoError(t, json.Unmarshal([]byte(policy["policy"].(string)), &document), "the controller's policy is valid JSON")
	assert.Contains(t, policy["policy"], "elasticloadbalancing:CreateLoadBalancer")
}

// Every Kubernetes object of the release goes to the new cluster, never to whatever cluster the
// ambient kubeconfig points at.
func TestTheReleaseUsesTheNewClustersProvider(t *testing.T) {
	for stack, provider := range map[string]string{
		"gke": "pulumi:providers:kubernetes::redis-gke",
		"eks": "pulumi:providers:kubernetes::redis-eks",
	} {
		r := mustRunCloudStack(t, stack, nil)
		count := 0
		for _, res := range r.resources {
			if strings.HasPrefix(res.Type, "kubernetes:") {
				assert.NotEmpty(t, res.Provider, "%s: %s %s uses the ambient provider", stack, res.Type, res.Name)
				if res.Parent == typeComponent+"::redis" {
					assert.Equal(t, provider, res.Provider, "%s: %s %s", stack, res.Type, res.Name)
					count++
				}
			}
		}
		assert.GreaterOrEqual(t, count, 12, stack)
	}
}

func TestAKubeconfigForAnExistingClusterIsUsed(t *testing.T) {
	r := mustRunStack(t, map[string]string{"kubeconfig": testKubeconfig("kind-redis", "https://127.0.0.1:6443")})
	provider := r.find("pulumi:providers:kubernetes", "redis-cluster")
	assert.True(t, provider.Inputs["kubeconfig"].ContainsSecrets(), "the kubeconfig stays a secret")
	for _, res := range r.ofType(typeStatefulSet) {
		assert.Equal(t, "pulumi:providers:kubernetes::redis-cluster", res.Provider)
	}
}

// The EKS annotations and the controller come from one key: with the controller, its
// annotations; without it, the in-tree ones. Both describe an internal NLB.
func TestEKSLoadBalancerAnnotationsAlwaysMatchTheInstalledController(t *testing.T) {
	for _, c := range []struct {
		controller string
		want       map[string]any
	}{
		{"true", eksControllerAnnotations},
		{"false", map[string]any{
			"service.beta.kubernetes.io/aws-load-balancer-internal": "true",
			"service.beta.kubernetes.io/aws-load-balancer-type":     "nlb",
		}},
	} {
		r := mustRunCloudStack(t, "eks", map[string]string{"eksLoadBalancerController": c.controller})
		lb := r.object(typeService, "redis-master-lb")
		assert.Equal(t, c.want, path(lb, "metadata", "annotations"), "controller %s", c.controller)
		installed := len(r.ofType("kubernetes:helm.sh/v3:Release")) == 1
		assert.Equal(t, c.controller == "true", installed, "controller %s: the Helm release exists exactly when its annotations are used", c.controller)
		assert.Equal(t, c.controller == "true", len(r.ofType("aws:eks/podIdentityAssociation:PodIdentityAssociation")) == 1)

		// The NLB's IP targets are the HAProxy pods: its health checks come from its own
		// addresses in the VPC, which only reach the health port. The in-tree NLB checks nodes.
		var policy networkingv1.NetworkPolicy
		r.decode(typeNetworkPolicy, "redis-haproxy", &policy)
		var healthRules int
		for _, rule := range policy.Spec.Ingress {
			if len(rule.From) == 0 {
				require.Len(t, rule.Ports, 1, "a rule open to every source opens one port")
				assert.Equal(t, 8404, rule.Ports[0].Port.IntValue(), "only HAProxy's health port is open to every source")
				healthRules++
			}
		}
		assert.Equal(t, c.controller == "true", healthRules == 1, "controller %s", c.controller)
	}
}

// The VPC CNI gives EKS pods addresses of the VPC, and GKE pods have addresses of the VPC's
// secondary range: a NetworkPolicy ipBlock that contains them lets every pod of the cluster reach
// HAProxy without the client labels. Only clients outside the cluster may pass by address.
func TestNoPodOrNodeOfTheClusterReachesHAProxyByAddress(t *testing.T) {
	for stack, insiders := range map[string][]string{
		// The private subnets' pods and nodes, and the public subnets' NAT gateways.
		"eks": {"10.0.0.10", "10.0.32.10", "10.0.64.10", "10.0.224.10", "10.0.255.254"},
		// Nodes (gkeSubnetCidr) and pods (gkePodsCidr).
		"gke": {"10.10.0.10", "10.10.15.254", "10.20.0.10", "10.23.255.254"},
	} {
		var policy networkingv1.NetworkPolicy
		mustRunCloudStack(t, stack, nil).decode(typeNetworkPolicy, "redis-haproxy", &policy)
		blocks := 0
		for _, rule := range policy.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.IPBlock == nil {
					continue
				}
				blocks++
				for _, address := range insiders {
					assert.False(t, ipBlockAdmits(t, peer.IPBlock, address), "%s: %s admits %s, an address of the cluster", stack, peer.IPBlock.CIDR, address)
				}
			}
		}
		assert.NotZero(t, blocks, "%s: the load balancer's clients pass by address", stack)
	}
}

// ipBlockAdmits says whether a NetworkPolicy ipBlock matches an address.
func ipBlockAdmits(t *testing.T, block *networkingv1.IPBlock, address string) bool {
	t.Helper()
	ip := net.ParseIP(address)
	_, cidr, err := net.ParseCIDR(block.CIDR)
	require.NoError(t, err)
	if !cidr.Contains(ip) {
		return false
	}
	for _, except := range block.Except {
		_, n, err := net.ParseCIDR(except)
		require.NoError(t, err)
		if n.Contains(ip) {
			return false
		}
	}
	return true
}

func TestGKELoadBalancerIsInternal(t *testing.T) {
	lb := mustRunCloudStack(t, "gke", nil).object(typeService, "redis-master-lb")
	assert.Equal(t, map[string]any{"networking.gke.io/load-balancer-type": "Internal"}, path(lb, "metadata", "annotations"))
	assert.Equal(t, []any{"10.0.0.0/8"}, path(lb, "spec", "loadBalancerSourceRanges"))
}

func TestClusterProvidersUseASecretKubeconfigWithAnExecPlugin(t *testing.T) {
	for _, stack := range []string{"gke", "eks"} {
		r := mustRunCloudStack(t, stack, nil)
		provider := r.find("pulumi:providers:kubernetes", "redis-"+stack)
		kubeconfig := provider.Inputs["kubeconfig"]
		assert.True(t, kubeconfig.ContainsSecrets(), stack)
		text := render.Object(render.Resource{Inputs: resource.PropertyMap{"k": kubeconfig}}, true)["k"].(string)
		assert.Contains(t, text, "client.authentication.k8s.io/v1beta1", "%s: a token from the exec plugin, no stored credential", stack)
	}
}

// invalidStackConfig is a mistake in a stack's configuration (a stack file of the repository,
// some keys replaced), with the words its error must contain.
type invalidStackConfig struct {
	sentence  string
	stack     string
	overrides map[string]string
	want      []string
}

// assertEveryConfigIsRefused runs each configuration: each must fail with its words, and
// register nothing.
func assertEveryConfigIsRefused(t *testing.T, configs []invalidStackConfig) {
	t.Helper()
	for _, c := range configs {
		t.Run(c.sentence, func(t *testing.T) {
			r, err := runCloudStack(t, c.stack, c.overrides)
			require.Error(t, err)
			for _, want := range c.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.Empty(t, r.resources, "nothing may be registered when the config is invalid")
		})
	}
}

// invalidCloudConfigs are mistakes in the cloud keys, each with the words its error must contain.
var invalidCloudConfigs = []invalidStackConfig{
	{"a gke stack without a project", "gke", map[string]string{"gcpProject": ""}, []string{`gcpProject: ""`, "project ID"}},
	{"a project ID with capitals", "gke", map[string]string{"gcpProject": "Acme Prod"}, []string{`gcpProject: "Acme Prod"`}},
	{"a region with a space", "gke", map[string]string{"gcpRegion": "europe west1"}, []string{`gcpRegion: "europe west1"`}},
	{"two zones cannot spread three pods", "gke", map[string]string{"gkeZones": `["europe-west1-b","europe-west1-c"]`}, []string{"gkeZones: [europe-west1-b europe-west1-c]", "at least three zones"}},
	{"a zone of another region", "gke", map[string]string{"gkeZones": `["europe-west1-b","europe-west1-c","us-central1-a"]`}, []string{`gkeZones[2]: "us-central1-a"`, "zones of gcpRegion europe-west1"}},
	{"a zone listed twice", "gke", map[string]string{"gkeZones": `["europe-west1-b","europe-west1-c","europe-west1-b"]`}, []string{`gkeZones[2]: "europe-west1-b"`, "not listed before"}},
	{"no machine type", "gke", map[string]string{"gkeMachineType": ""}, []string{`gkeMachineType: ""`}},
	{"more nodes at least than at most", "gke", map[string]string{"gkeMinNodesPerZone": "4", "gkeMaxNodesPerZone": "2"}, []string{"gkeMinNodesPerZone: 4", "at most gkeMaxNodesPerZone (2)"}},
	{"zero nodes at most", "gke", map[string]string{"gkeMaxNodesPerZone": "0"}, []string{`gkeMaxNodesPerZone: "0"`}},
	{"a release channel that does not exist", "gke", map[string]string{"gkeReleaseChannel": "NIGHTLY"}, []string{`gkeReleaseChannel: "NIGHTLY"`, "RAPID, REGULAR, STABLE or EXTENDED"}},
	{"a control plane open to the internet without the opt-in", "gke", map[string]string{"gkeMasterAuthorizedNetworks": `["0.0.0.0/0"]`}, []string{`gkeMasterAuthorizedNetworks[0]: "0.0.0.0/0"`, "allowPublicControlPlane"}},
	{"an authorized network that is not a CIDR", "gke", map[string]string{"gkeMasterAuthorizedNetworks": `["office"]`}, []string{`gkeMasterAuthorizedNetworks[0]: "office"`}},
	{"a control plane range that is not a /28", "gke", map[string]string{"gkeMasterCidr": "172.16.0.0/24"}, []string{`gkeMasterCidr: "172.16.0.0/24"`, "/28"}},
	{"a pods range overlapping the nodes' range", "gke", map[string]string{"gkePodsCidr": "10.10.8.0/21"}, []string{`gkePodsCidr: "10.10.8.0/21"`, "does not overlap gkeSubnetCidr"}},
	{"a public range for the nodes", "gke", map[string]string{"gkeSubnetCidr": "8.8.0.0/20"}, []string{`gkeSubnetCidr: "8.8.0.0/20"`, "private"}},
	{"a subnetwork without its network", "gke", map[string]string{"gkeSubnetwork": "nodes"}, []string{`gkeSubnetwork: "nodes"`, "together with gkeNetwork"}},
	{"a kubeconfig for a stack that creates its cluster", "gke", map[string]string{"kubeconfig": "apiVersion: v1"}, []string{"kubeconfig:", "cloud none or aks"}},
	{"an AWS region that is half a region", "eks", map[string]string{"awsRegion": "eu-west"}, []string{`awsRegion: "eu-west"`}},
	{"two availability zones", "eks", map[string]string{"eksAvailabilityZones": `["eu-west-1a","eu-west-1b"]`}, []string{"eksAvailabilityZones: [eu-west-1a eu-west-1b]", "at least three"}},
	{"an availability zone of another region", "eks", map[string]string{"eksAvailabilityZones": `["eu-west-1a","eu-west-1b","us-east-1a"]`}, []string{`eksAvailabilityZones[2]: "us-east-1a"`}},
	{"more zones than the VPC has eighths for", "eks", map[string]string{"eksAvailabilityZones": `["eu-west-1a","eu-west-1b","eu-west-1c","eu-west-1d","eu-west-1e","eu-west-1f","eu-west-1g"]`}, []string{"eksAvailabilityZones: [eu-west-1a", "at most 6 zones"}},
	{"a release name too long for the nodes' service account", "gke", map[string]string{"name": "redis-sentinel-production"}, []string{`name: "redis-sentinel-production"`, "at most 24 characters on gke"}},
	{"a VPC too small to split", "eks", map[string]string{"eksVpcCidr": "10.0.0.0/24"}, []string{`eksVpcCidr: "10.0.0.0/24"`, "/16 to /20"}},
	{"existing subnets without their VPC", "eks", map[string]string{"eksPrivateSubnetIds": `["subnet-0123456789abcdef0","subnet-0123456789abcdef1"]`}, []string{`eksVpcId: ""`}},
	{"a subnet ID that is a name", "eks", map[string]string{"eksVpcId": "vpc-0123456789abcdef0", "eksPrivateSubnetIds": `["private-a","subnet-0123456789abcdef1"]`}, []string{`eksPrivateSubnetIds[0]: "private-a"`}},
	{"a Kubernetes version that is a word", "eks", map[string]string{"eksKubernetesVersion": "latest"}, []string{`eksKubernetesVersion: "latest"`}},
	{"no instance types", "eks", map[string]string{"eksInstanceTypes": "[]"}, []string{"eksInstanceTypes: []", "at least one"}},
	{"an instance type without a size", "eks", map[string]string{"eksInstanceTypes": `["m6i"]`}, []string{`eksInstanceTypes[0]: "m6i"`}},
	{"Graviton and x86 in one node group", "eks", map[string]string{"eksInstanceTypes": `["m6i.large","m7g.large"]`}, []string{`eksInstanceTypes[1]: "m7g.large"`, "same architecture as m6i.large"}},
	{"more desired nodes than the maximum", "eks", map[string]string{"eksDesiredNodes": "9"}, []string{"eksDesiredNodes: 9", "from eksMinNodes (3) to eksMaxNodes (6)"}},
	{"a public API open to the internet without the opt-in", "eks", map[string]string{"eksPublicAccessCidrs": `["0.0.0.0/0"]`}, []string{`eksPublicAccessCidrs[0]: "0.0.0.0/0"`, "allowPublicControlPlane"}},
	{"the stack's internal NLB with its source ranges emptied", "eks", map[string]string{"loadBalancerSourceRanges": "[]"}, []string{"loadBalancerSourceRanges: [] is not allowed", "at least one client CIDR"}},
	{"the stack's internal load balancer with its source ranges emptied", "gke", map[string]string{"loadBalancerSourceRanges": "[]"}, []string{"loadBalancerSourceRanges: [] is not allowed", "at least one client CIDR"}},
	{"the VPC as the NLB's source range: every pod has an address in it", "eks", map[string]string{"loadBalancerSourceRanges": `["10.0.0.0/16"]`}, []string{`loadBalancerSourceRanges[0]: "10.0.0.0/16"`, "inside clusterNetworks entry 10.0.0.0/16"}},
	{"the pods' range as a source range", "gke", map[string]string{"loadBalancerSourceRanges": `["10.20.0.0/14"]`}, []string{`loadBalancerSourceRanges[0]: "10.20.0.0/14"`, "inside clusterNetworks entry 10.20.0.0/14"}},
	{"an existing VPC whose ranges the stack cannot know", "eks", map[string]string{"eksVpcId": "vpc-0123456789abcdef0", "eksPrivateSubnetIds": `["subnet-0123456789abcdef0","subnet-0123456789abcdef1","subnet-0123456789abcdef2"]`}, []string{"clusterNetworks: [] is not allowed"}},
	{"more redis pods than the node group's least nodes", "eks", map[string]string{"replicas": "5"}, []string{"eksMinNodes: 3 is not allowed", "at least 5", "a node of its own"}},
	{"no node left for the new HAProxy pod of a rollout", "eks", map[string]string{"haproxyReplicas": "3"}, []string{"eksMinNodes: 3 is not allowed", "at least 4", "haproxyReplicas (3) HAProxy pods and one more for a rolling update"}},
	{"more redis pods than the node pool can grow to", "gke", map[string]string{"replicas": "7", "gkeMaxNodesPerZone": "2"}, []string{"gkeMaxNodesPerZone: 2 is not allowed", "at least 3 (7 nodes over 3 zones)"}},
	{"an opt-in that is not a boolean", "eks", map[string]string{"eksLoadBalancerController": "sometimes"}, []string{`eksLoadBalancerController: "sometimes"`}},
}

func TestEveryInvalidCloudConfigIsRefusedClearlyAndRegistersNothing(t *testing.T) {
	require.GreaterOrEqual(t, len(invalidCloudConfigs), 15)
	assertEveryConfigIsRefused(t, invalidCloudConfigs)
}

func TestTheKeysOfOtherCloudsAreNotJudged(t *testing.T) {
	// The local stack leaves gcpProject empty and gkeZones unset; they are not its business.
	mustRunStack(t, map[string]string{"eksInstanceTypes": "[]"})
}
