package stacks

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/compute"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/container"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/projects"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/serviceaccount"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// GKEConfig is the configuration of the gke stack's cluster.
type GKEConfig struct {
	Project string
	Region  string
	// Zones of the node pool: at least three, so that the redis pods spread over three zones.
	Zones                            []string
	MachineType                      string
	MinNodesPerZone, MaxNodesPerZone int
	ReleaseChannel                   string
	// MasterAuthorizedNetworks may reach the control plane's public endpoint. Empty: the
	// endpoint is private, reachable only from inside the VPC.
	MasterAuthorizedNetworks []string
	MasterCIDR               string
	// Network and Subnetwork name an existing VPC; empty creates one (with Cloud NAT, so that
	// private nodes can pull images) from SubnetCIDR, PodsCIDR and ServicesCIDR.
	Network, Subnetwork                string
	SubnetCIDR, PodsCIDR, ServicesCIDR string
	PodsRangeName, ServicesRangeName   string
	DeletionProtection                 bool
}

var (
	gcpProjectPattern  = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	gcpRegionPattern   = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	gcpNamePattern     = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	machineTypePattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)+$`)
	releaseChannels    = map[string]bool{"RAPID": true, "REGULAR": true, "STABLE": true, "EXTENDED": true}
)

// nodeAccountID is the ID of the nodes' service account: 6 to 30 characters.
func nodeAccountID(name string) string { return name + "-nodes" }

func readGKEConfig(r *reader, name string, allowPublicControlPlane bool) GKEConfig {
	var g GKEConfig
	r.string("gcpProject", &g.Project)
	r.string("gcpRegion", &g.Region)
	r.strings("gkeZones", &g.Zones)
	r.string("gkeMachineType", &g.MachineType)
	r.int("gkeMinNodesPerZone", &g.MinNodesPerZone, 0, "a whole number of at least 0")
	r.positiveInt("gkeMaxNodesPerZone", &g.MaxNodesPerZone)
	r.string("gkeReleaseChannel", &g.ReleaseChannel)
	r.strings("gkeMasterAuthorizedNetworks", &g.MasterAuthorizedNetworks)
	r.string("gkeMasterCidr", &g.MasterCIDR)
	r.string("gkeNetwork", &g.Network)
	r.string("gkeSubnetwork", &g.Subnetwork)
	r.string("gkeSubnetCidr", &g.SubnetCIDR)
	r.string("gkePodsCidr", &g.PodsCIDR)
	r.string("gkeServicesCidr", &g.ServicesCIDR)
	r.string("gkePodsRangeName", &g.PodsRangeName)
	r.string("gkeServicesRangeName", &g.ServicesRangeName)
	r.bool("gkeDeletionProtection", &g.DeletionProtection)

	if id := nodeAccountID(name); len(id) > 30 {
		r.fail("name", name, fmt.Sprintf("at most %d characters on gke: the nodes' service account %q must fit in 30", 30-len(id)+len(name), id))
	}
	r.match("gcpProject", g.Project, gcpProjectPattern, "a Google Cloud project ID (6 to 30 characters: a-z, 0-9, '-')")
	r.match("gcpRegion", g.Region, gcpRegionPattern, "a Google Cloud region such as europe-west1")
	checkZones(r, "gkeZones", g.Zones, regexp.MustCompile(`^`+regexp.QuoteMeta(g.Region)+`-[a-z]$`), "zones of gcpRegion "+g.Region+" such as "+g.Region+"-b")
	r.match("gkeMachineType", g.MachineType, machineTypePattern, "a machine type such as e2-standard-4")
	if g.MaxNodesPerZone > 0 && g.MinNodesPerZone > g.MaxNodesPerZone {
		r.fail("gkeMinNodesPerZone", g.MinNodesPerZone, fmt.Sprintf("at most gkeMaxNodesPerZone (%d)", g.MaxNodesPerZone))
	}
	if !releaseChannels[g.ReleaseChannel] {
		r.fail("gkeReleaseChannel", g.ReleaseChannel, "RAPID, REGULAR, STABLE or EXTENDED")
	}
	r.cidrs("gkeMasterAuthorizedNetworks", g.MasterAuthorizedNetworks, allowPublicControlPlane, "allowPublicControlPlane")
	if n, err := network(g.MasterCIDR); err != nil || !isPrivate(n) || prefixLength(n) != 28 {
		r.fail("gkeMasterCidr", g.MasterCIDR, "a private /28 such as 172.16.0.16/28, for the control plane's private endpoint")
	}
	if (g.Network == "") != (g.Subnetwork == "") {
		r.fail("gkeSubnetwork", g.Subnetwork, "set together with gkeNetwork (an existing VPC), or both empty to create one")
	}
	for key, name := range map[string]string{"gkeNetwork": g.Network, "gkeSubnetwork": g.Subnetwork} {
		if name != "" {
			r.match(key, name, gcpNamePattern, "a Google Cloud resource name (a-z, 0-9, '-')")
		}
	}
	for key, name := range map[string]string{"gkePodsRangeName": g.PodsRangeName, "gkeServicesRangeName": g.ServicesRangeName} {
		r.match(key, name, gcpNamePattern, "a secondary range name such as pods")
	}
	if g.Network == "" {
		checkDisjointNetworks(r, []string{"gkeSubnetCidr", "gkePodsCidr", "gkeServicesCidr", "gkeMasterCidr"},
			[]string{g.SubnetCIDR, g.PodsCIDR, g.ServicesCIDR, g.MasterCIDR})
	}
	return g
}

// createdNetworks are the ranges of the nodes and pods in the VPC that the stack creates; nothing
// (the stack cannot know them) for an existing network, or for ranges that are invalid, which
// readGKEConfig reports.
func (g GKEConfig) createdNetworks() []string {
	if g.Network != "" {
		return nil
	}
	var out []string
	for _, cidr := range []string{g.SubnetCIDR, g.PodsCIDR} {
		if _, err := network(cidr); err == nil {
			out = append(out, cidr)
		}
	}
	return out
}

// checkRoom refuses a node pool whose autoscaling cannot reach what the release needs: the
// autoscaler adds nodes for Pending pods only up to gkeMaxNodesPerZone in each zone.
func (g GKEConfig) checkRoom(r *reader, need room) {
	zones := len(g.Zones)
	if zones == 0 || g.MaxNodesPerZone*zones >= need.nodes {
		return
	}
	perZone := (need.nodes + zones - 1) / zones
	r.fail("gkeMaxNodesPerZone", g.MaxNodesPerZone, fmt.Sprintf("at least %d (%d nodes over %d zones): %s", perZone, need.nodes, zones, need.why))
}

// checkZones requires at least three distinct zones, each matching pattern.
func checkZones(r *reader, key string, zones []string, pattern *regexp.Regexp, allowed string) {
	if len(zones) < 3 {
		r.fail(key, zones, "at least three zones, so that the pods spread over three failure domains")
	}
	seen := map[string]bool{}
	for i, zone := range zones {
		field := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case !pattern.MatchString(zone):
			r.fail(field, zone, allowed)
		case seen[zone]:
			r.fail(field, zone, "a zone not listed before")
		}
		seen[zone] = true
	}
}

// checkDisjointNetworks requires each CIDR to be a private IPv4 network that overlaps no other.
func checkDisjointNetworks(r *reader, keys, cidrs []string) {
	parsed := make([]*net.IPNet, len(cidrs))
	for i, cidr := range cidrs {
		n, err := network(cidr)
		if err != nil || !isPrivate(n) {
			r.fail(keys[i], cidr, "a private IPv4 network such as 10.10.0.0/20")
			continue
		}
		parsed[i] = n
		for j := 0; j < i; j++ {
			if parsed[j] != nil && overlaps(parsed[j], n) {
				r.fail(keys[i], cidr, fmt.Sprintf("a range that does not overlap %s (%s)", keys[j], cidrs[j]))
			}
		}
	}
}

func isPrivate(n *net.IPNet) bool { return n.IP.IsPrivate() }

func prefixLength(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}

// gkeAPIs are the Google APIs the stack calls or its nodes use. A project may have any of them
// off (a new one has compute, container and iam off); Service Usage, on in every project,
// turns them on.
var gkeAPIs = []string{
	"compute.googleapis.com",              // the VPC, Cloud NAT, the nodes' VMs
	"container.googleapis.com",            // the cluster and its node pool
	"iam.googleapis.com",                  // the nodes' service account
	"cloudresourcemanager.googleapis.com", // the project IAM bindings of that account
	"logging.googleapis.com",              // what the nodes and the control plane log
	"monitoring.googleapis.com",           // and their metrics
}

// nodeRoles are the least roles GKE nodes need: logs, metrics and pulling images (the
// artifactregistry reader for images in the project's Artifact Registry).
var nodeRoles = []string{
	"roles/logging.logWriter",
	"roles/monitoring.metricWriter",
	"roles/monitoring.viewer",
	"roles/stackdriver.resourceMetadata.writer",
	"roles/artifactregistry.reader",
}

// newGKECluster creates a private regional GKE cluster and returns what the release needs of it.
func newGKECluster(ctx *pulumi.Context, name string, g GKEConfig) (*cluster, error) {
	provider, err := gcp.NewProvider(ctx, name+"-gcp", &gcp.ProviderArgs{
		Project: pulumi.String(g.Project), Region: pulumi.String(g.Region),
	})
	if err != nil {
		return nil, err
	}
	gcpOpts := []pulumi.ResourceOption{pulumi.Provider(provider)}

	// Every other GCP resource waits for the APIs it is created through. They stay enabled on
	// destroy: other workloads of the project may use them.
	var apis []pulumi.Resource
	for _, api := range gkeAPIs {
		service, err := projects.NewService(ctx, name+"-api-"+strings.TrimSuffix(api, ".googleapis.com"), &projects.ServiceArgs{
			Project:          pulumi.String(g.Project),
			Service:          pulumi.String(api),
			DisableOnDestroy: pulumi.Bool(false),
		}, gcpOpts...)
		if err != nil {
			return nil, err
		}
		apis = append(apis, service)
	}
	gcpOpts = append(gcpOpts, pulumi.DependsOn(apis))

	networkID, subnetworkID := pulumi.String(g.Network).ToStringOutput(), pulumi.String(g.Subnetwork).ToStringOutput()
	if g.Network == "" {
		vpc, err := compute.NewNetwork(ctx, name, &compute.NetworkArgs{
			AutoCreateSubnetworks: pulumi.Bool(false),
			RoutingMode:           pulumi.String("REGIONAL"),
		}, gcpOpts...)
		if err != nil {
			return nil, err
		}
		subnet, err := compute.NewSubnetwork(ctx, name, &compute.SubnetworkArgs{
			Network:               vpc.ID(),
			Region:                pulumi.String(g.Region),
			IpCidrRange:           pulumi.String(g.SubnetCIDR),
			PrivateIpGoogleAccess: pulumi.Bool(true),
			SecondaryIpRanges: compute.SubnetworkSecondaryIpRangeArray{
				compute.SubnetworkSecondaryIpRangeArgs{RangeName: pulumi.String(g.PodsRangeName), IpCidrRange: pulumi.String(g.PodsCIDR)},
				compute.SubnetworkSecondaryIpRangeArgs{RangeName: pulumi.String(g.ServicesRangeName), IpCidrRange: pulumi.String(g.ServicesCIDR)},
			},
		}, gcpOpts...)
		if err != nil {
			return nil, err
		}
		router, err := compute.NewRouter(ctx, name, &compute.RouterArgs{Network: vpc.ID(), Region: pulumi.String(g.Region)}, gcpOpts...)
		if err != nil {
			return nil, err
		}
		// Private nodes have no external address: Cloud NAT lets them pull public images.
		if _, err := compute.NewRouterNat(ctx, name, &compute.RouterNatArgs{
			Router:                        router.Name,
			Region:                        pulumi.String(g.Region),
			NatIpAllocateOption:           pulumi.String("AUTO_ONLY"),
			SourceSubnetworkIpRangesToNat: pulumi.String("ALL_SUBNETWORKS_ALL_IP_RANGES"),
		}, gcpOpts...); err != nil {
			return nil, err
		}
		networkID, subnetworkID = vpc.ID().ToStringOutput(), subnet.ID().ToStringOutput()
	}

	nodes, err := serviceaccount.NewAccount(ctx, name+"-nodes", &serviceaccount.AccountArgs{
		AccountId:   pulumi.String(nodeAccountID(name)),
		DisplayName: pulumi.String("GKE nodes of " + name),
	}, gcpOpts...)
	if err != nil {
		return nil, err
	}
	// Nodes start logging and pulling images as they boot: their roles are bound first.
	var nodeBindings []pulumi.Resource
	for _, role := range nodeRoles {
		binding, err := projects.NewIAMMember(ctx, name+"-nodes-"+role[len("roles/"):], &projects.IAMMemberArgs{
			Project: pulumi.String(g.Project),
			Role:    pulumi.String(role),
			Member:  pulumi.Sprintf("serviceAccount:%s", nodes.Email),
		}, gcpOpts...)
		if err != nil {
			return nil, err
		}
		nodeBindings = append(nodeBindings, binding)
	}
	nodesReady := pulumi.DependsOn(nodeBindings)

	var authorized container.ClusterMasterAuthorizedNetworksConfigCidrBlockArray
	for _, cidr := range g.MasterAuthorizedNetworks {
		authorized = append(authorized, container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs{CidrBlock: pulumi.String(cidr)})
	}
	gke, err := container.NewCluster(ctx, name, &container.ClusterArgs{
		Location:              pulumi.String(g.Region),
		RemoveDefaultNodePool: pulumi.Bool(true),
		InitialNodeCount:      pulumi.Int(1),
		Network:               networkID,
		Subnetwork:            subnetworkID,
		NetworkingMode:        pulumi.String("VPC_NATIVE"),
		IpAllocationPolicy: &container.ClusterIpAllocationPolicyArgs{
			ClusterSecondaryRangeName:  pulumi.String(g.PodsRangeName),
			ServicesSecondaryRangeName: pulumi.String(g.ServicesRangeName),
		},
		PrivateClusterConfig: &container.ClusterPrivateClusterConfigArgs{
			EnablePrivateNodes:    pulumi.Bool(true),
			EnablePrivateEndpoint: pulumi.Bool(len(g.MasterAuthorizedNetworks) == 0),
			MasterIpv4CidrBlock:   pulumi.String(g.MasterCIDR),
		},
		MasterAuthorizedNetworksConfig: &container.ClusterMasterAuthorizedNetworksConfigArgs{CidrBlocks: authorized},
		ReleaseChannel:                 &container.ClusterReleaseChannelArgs{Channel: pulumi.String(g.ReleaseChannel)},
		WorkloadIdentityConfig:         &container.ClusterWorkloadIdentityConfigArgs{WorkloadPool: pulumi.String(g.Project + ".svc.id.goog")},
		// Dataplane V2 enforces NetworkPolicies, which the release relies on.
		DatapathProvider:    pulumi.String("ADVANCED_DATAPATH"),
		EnableShieldedNodes: pulumi.Bool(true),
		DeletionProtection:  pulumi.Bool(g.DeletionProtection),
		// GKE creates the cluster with a default pool before it removes it; its nodes run as our
		// account too, not as the Compute Engine default one (which may lack the roles, or be
		// disabled by an organization policy). It describes only that short-lived pool, so
		// changes to it are ignored: adding it to an existing cluster changes nothing (several
		// of its fields would otherwise replace the cluster). initialNodeCount sizes the same
		// pool and cannot be updated either.
		NodeConfig: &container.ClusterNodeConfigArgs{
			ServiceAccount: nodes.Email,
			OauthScopes:    pulumi.ToStringArray([]string{"https://www.googleapis.com/auth/cloud-platform"}),
		},
	}, append(gcpOpts, nodesReady, pulumi.IgnoreChanges([]string{"nodeConfig", "initialNodeCount"}))...)
	if err != nil {
		return nil, err
	}
	pool, err := container.NewNodePool(ctx, name, &container.NodePoolArgs{
		Cluster:          gke.Name,
		Location:         pulumi.String(g.Region),
		NodeLocations:    pulumi.ToStringArray(g.Zones),
		InitialNodeCount: pulumi.Int(max(g.MinNodesPerZone, 1)),
		Autoscaling: &container.NodePoolAutoscalingArgs{
			MinNodeCount: pulumi.Int(g.MinNodesPerZone),
			MaxNodeCount: pulumi.Int(g.MaxNodesPerZone),
		},
		Management: &container.NodePoolManagementArgs{AutoRepair: pulumi.Bool(true), AutoUpgrade: pulumi.Bool(true)},
		// One node at a time, and a new one before an old one goes: PDBs can hold.
		UpgradeSettings: &container.NodePoolUpgradeSettingsArgs{MaxSurge: pulumi.Int(1), MaxUnavailable: pulumi.Int(0)},
		NodeConfig: &container.NodePoolNodeConfigArgs{
			MachineType:    pulumi.String(g.MachineType),
			ServiceAccount: nodes.Email,
			OauthScopes:    pulumi.ToStringArray([]string{"https://www.googleapis.com/auth/cloud-platform"}),
			ShieldedInstanceConfig: &container.NodePoolNodeConfigShieldedInstanceConfigArgs{
				EnableSecureBoot: pulumi.Bool(true), EnableIntegrityMonitoring: pulumi.Bool(true),
			},
			WorkloadMetadataConfig: &container.NodePoolNodeConfigWorkloadMetadataConfigArgs{Mode: pulumi.String("GKE_METADATA")},
		},
		// initialNodeCount only sizes a new pool and cannot be updated: a new gkeMinNodesPerZone
		// would replace the pool (a new pool, then the whole old one drained and deleted, not a
		// node at a time). The autoscaling bounds above are updated in place and move the pool
		// to the new minimum.
	}, append(gcpOpts, nodesReady, pulumi.IgnoreChanges([]string{"initialNodeCount"}))...)
	if err != nil {
		return nil, err
	}

	config := kubeconfig(name, pulumi.Sprintf("https://%s", gke.Endpoint), gke.MasterAuth.ClusterCaCertificate().Elem(), execCredential{
		command:     "gke-gcloud-auth-plugin",
		installHint: "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
	})
	// The release's provider waits for the node pool, so that no pod is created before a node exists.
	// The cluster's ID (projects/P/locations/L/clusters/NAME, NAME auto-named, so a new one on
	// replacement) identifies the cluster; the endpoint in the kubeconfig changes with
	// gkeMasterAuthorizedNetworks and must not replace the provider.
	k8s, err := newClusterProvider(ctx, name+"-gke", config, gke.ID().ToStringOutput(),
		pulumi.DependsOn([]pulumi.Resource{pool}))
	if err != nil {
		return nil, err
	}
	return &cluster{name: gke.Name, kubeconfig: config, provider: k8s}, nil
}
