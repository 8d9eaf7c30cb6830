package stacks

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/eks"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws/kms"
	helmv3 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v3"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	storagev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/storage/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// EKSConfig is the configuration of the eks stack's cluster.
type EKSConfig struct {
	Region string
	// AvailabilityZones of the VPC that the stack creates: at least three.
	AvailabilityZones []string
	VPCCIDR           string
	// VPCID and PrivateSubnetIDs name an existing VPC and its private subnets instead.
	VPCID                            string
	PrivateSubnetIDs                 []string
	KubernetesVersion                string
	InstanceTypes                    []string
	MinNodes, MaxNodes, DesiredNodes int
	// PublicAccessCIDRs may reach the API's public endpoint; empty turns the public endpoint off.
	PublicAccessCIDRs []string
	// LoadBalancerController installs the AWS Load Balancer Controller, which the release's
	// internal-NLB annotations need; without it the release uses the in-tree annotations.
	LoadBalancerController bool
}

var (
	awsRegionPattern    = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`)
	subnetIDPattern     = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	vpcIDPattern        = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	eksVersionPattern   = regexp.MustCompile(`^1\.[0-9]{2}$`)
	instanceTypePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	// Graviton families have a "g" right after the generation: m7g, c6gn, t4g, r7gd, g5g.
	gravitonPattern = regexp.MustCompile(`^[a-z]+[0-9]+g[a-z]*\.`)
)

// amiType is the node group's AMI for an instance type's architecture.
func amiType(instanceType string) string {
	if gravitonPattern.MatchString(instanceType) {
		return "AL2023_ARM_64_STANDARD"
	}
	return "AL2023_x86_64_STANDARD"
}

func readEKSConfig(r *reader, allowPublicControlPlane bool) EKSConfig {
	var e EKSConfig
	r.string("awsRegion", &e.Region)
	r.strings("eksAvailabilityZones", &e.AvailabilityZones)
	r.string("eksVpcCidr", &e.VPCCIDR)
	r.string("eksVpcId", &e.VPCID)
	r.strings("eksPrivateSubnetIds", &e.PrivateSubnetIDs)
	r.string("eksKubernetesVersion", &e.KubernetesVersion)
	r.strings("eksInstanceTypes", &e.InstanceTypes)
	r.positiveInt("eksMinNodes", &e.MinNodes)
	r.positiveInt("eksMaxNodes", &e.MaxNodes)
	r.positiveInt("eksDesiredNodes", &e.DesiredNodes)
	r.strings("eksPublicAccessCidrs", &e.PublicAccessCIDRs)
	r.bool("eksLoadBalancerController", &e.LoadBalancerController)

	r.match("awsRegion", e.Region, awsRegionPattern, "an AWS region such as eu-west-1")
	if len(e.PrivateSubnetIDs) == 0 {
		if len(e.AvailabilityZones) > maxEKSZones {
			r.fail("eksAvailabilityZones", e.AvailabilityZones, fmt.Sprintf("at most %d zones (the VPC is split into eighths)", maxEKSZones))
		}
		checkZones(r, "eksAvailabilityZones", e.AvailabilityZones, regexp.MustCompile(`^`+regexp.QuoteMeta(e.Region)+`[a-z]$`),
			"availability zones of awsRegion "+e.Region+" such as "+e.Region+"a")
		if n, err := network(e.VPCCIDR); err != nil || !isPrivate(n) || prefixLength(n) < 16 || prefixLength(n) > 20 {
			r.fail("eksVpcCidr", e.VPCCIDR, "a private IPv4 network from /16 to /20 such as 10.0.0.0/16 (it is split into three private and three public subnets)")
		}
		if e.VPCID != "" {
			r.fail("eksVpcId", e.VPCID, "empty unless eksPrivateSubnetIds names subnets of that VPC")
		}
	} else {
		if len(e.PrivateSubnetIDs) < 2 {
			r.fail("eksPrivateSubnetIds", e.PrivateSubnetIDs, "at least two private subnets in different availability zones (three for a zone-spread release)")
		}
		for i, id := range e.PrivateSubnetIDs {
			r.match(fmt.Sprintf("eksPrivateSubnetIds[%d]", i), id, subnetIDPattern, "a subnet ID such as subnet-0123456789abcdef0")
		}
		r.match("eksVpcId", e.VPCID, vpcIDPattern, "the ID of the subnets' VPC, such as vpc-0123456789abcdef0")
	}
	r.match("eksKubernetesVersion", e.KubernetesVersion, eksVersionPattern, "a Kubernetes minor version such as 1.33")
	if len(e.InstanceTypes) == 0 {
		r.fail("eksInstanceTypes", e.InstanceTypes, "at least one EC2 instance type such as m6i.large")
	}
	for i, t := range e.InstanceTypes {
		r.match(fmt.Sprintf("eksInstanceTypes[%d]", i), t, instanceTypePattern, "an EC2 instance type such as m6i.large")
		if i > 0 && amiType(t) != amiType(e.InstanceTypes[0]) {
			r.fail(fmt.Sprintf("eksInstanceTypes[%d]", i), t, fmt.Sprintf("an instance type of the same architecture as %s: one node group runs one AMI", e.InstanceTypes[0]))
		}
	}
	if e.MaxNodes > 0 && (e.MinNodes > e.MaxNodes || e.DesiredNodes < e.MinNodes || e.DesiredNodes > e.MaxNodes) {
		r.fail("eksDesiredNodes", e.DesiredNodes, fmt.Sprintf("from eksMinNodes (%d) to eksMaxNodes (%d), with eksMinNodes at most eksMaxNodes", e.MinNodes, e.MaxNodes))
	}
	r.cidrs("eksPublicAccessCidrs", e.PublicAccessCIDRs, allowPublicControlPlane, "allowPublicControlPlane")
	return e
}

// createdNetworks is the VPC that the stack creates: the VPC CNI gives every pod an address of
// its private subnets, and nothing but the cluster lives in it. Nothing for an existing VPC,
// whose range the stack does not know, or for an invalid eksVpcCidr, which readEKSConfig reports.
func (e EKSConfig) createdNetworks() []string {
	if _, err := network(e.VPCCIDR); err != nil || len(e.PrivateSubnetIDs) > 0 {
		return nil
	}
	return []string{e.VPCCIDR}
}

// checkRoom refuses a node group that may shrink below what the release needs: nothing in the
// cluster adds nodes for Pending pods.
func (e EKSConfig) checkRoom(r *reader, need room) {
	if e.MinNodes > 0 && e.MinNodes < need.nodes {
		r.fail("eksMinNodes", e.MinNodes, fmt.Sprintf("at least %d: %s", need.nodes, need.why))
	}
}

// maxEKSZones: each zone's private subnet takes an eighth of the VPC; the last eighth holds the
// public subnets.
const maxEKSZones = 6

//go:embed aws-load-balancer-controller-policy.json
var loadBalancerControllerPolicy string

// The AWS Load Balancer Controller's Helm chart, pinned; chart 1.13.0 ships controller v2.13.0.
const (
	loadBalancerControllerChart        = "aws-load-balancer-controller"
	loadBalancerControllerChartVersion = "1.13.0"
	loadBalancerControllerRepo         = "https://aws.github.io/eks-charts"
	loadBalancerControllerAccount      = "aws-load-balancer-controller"
	ebsCSIControllerAccount            = "ebs-csi-controller-sa"
)

// trustPolicy lets one AWS service principal assume a role. EKS Pod Identity also tags sessions.
func trustPolicy(service string, actions ...string) string {
	body, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"Service": service}, "Action": actions,
		}},
	})
	return string(body)
}

// role creates an IAM role that service may assume, with managed policies attached.
func role(ctx *pulumi.Context, name, trust string, policies []string, opts ...pulumi.ResourceOption) (*iam.Role, []pulumi.Resource, error) {
	r, err := iam.NewRole(ctx, name, &iam.RoleArgs{AssumeRolePolicy: pulumi.String(trust)}, opts...)
	if err != nil {
		return nil, nil, err
	}
	var attachments []pulumi.Resource
	for i, policy := range policies {
		a, err := iam.NewRolePolicyAttachment(ctx, fmt.Sprintf("%s-%d", name, i), &iam.RolePolicyAttachmentArgs{
			Role: r.Name, PolicyArn: pulumi.String(policy),
		}, opts...)
		if err != nil {
			return nil, nil, err
		}
		attachments = append(attachments, a)
	}
	return r, attachments, nil
}

// podIdentityTrust is the trust policy of roles that pods assume through EKS Pod Identity.
var podIdentityTrust = trustPolicy("pods.eks.amazonaws.com", "sts:AssumeRole", "sts:TagSession")

const awsManagedPolicy = "arn:aws:iam::aws:policy/"

// newEKSCluster creates an EKS cluster, its VPC unless one is given, the add-ons and storage the
// release needs, and (unless turned off) the AWS Load Balancer Controller.
func newEKSCluster(ctx *pulumi.Context, name string, e EKSConfig) (*cluster, error) {
	provider, err := aws.NewProvider(ctx, name+"-aws", &aws.ProviderArgs{Region: pulumi.String(e.Region)})
	if err != nil {
		return nil, err
	}
	awsOpts := []pulumi.ResourceOption{pulumi.Provider(provider)}

	vpcID, subnetIDs := pulumi.String(e.VPCID).ToStringOutput(), pulumi.ToStringArray(e.PrivateSubnetIDs).ToStringArrayOutput()
	if len(e.PrivateSubnetIDs) == 0 {
		vpcID, subnetIDs, err = newEKSNetwork(ctx, name, e, awsOpts)
		if err != nil {
			return nil, err
		}
	}

	key, err := kms.NewKey(ctx, name+"-secrets", &kms.KeyArgs{
		Description:          pulumi.String("Envelope encryption of the Kubernetes Secrets of EKS cluster " + name),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
	}, awsOpts...)
	if err != nil {
		return nil, err
	}
	if _, err := kms.NewAlias(ctx, name+"-secrets", &kms.AliasArgs{
		Name: pulumi.String("alias/" + name + "-eks-secrets"), TargetKeyId: key.KeyId,
	}, awsOpts...); err != nil {
		return nil, err
	}

	clusterRole, clusterPolicies, err := role(ctx, name+"-cluster", trustPolicy("eks.amazonaws.com", "sts:AssumeRole", "sts:TagSession"),
		[]string{awsManagedPolicy + "AmazonEKSClusterPolicy"}, awsOpts...)
	if err != nil {
		return nil, err
	}
	cl, err := eks.NewCluster(ctx, name, &eks.ClusterArgs{
		// The name is fixed, not auto-named: the kubeconfig's get-token and the subnets'
		// kubernetes.io/cluster/<name> tags must name the real cluster.
		Name:    pulumi.String(name),
		RoleArn: clusterRole.Arn,
		Version: pulumi.String(e.KubernetesVersion),
		VpcConfig: &eks.ClusterVpcConfigArgs{
			SubnetIds:             subnetIDs,
			EndpointPrivateAccess: pulumi.Bool(true),
			EndpointPublicAccess:  pulumi.Bool(len(e.PublicAccessCIDRs) > 0),
			PublicAccessCidrs:     pulumi.ToStringArray(e.PublicAccessCIDRs),
		},
		EncryptionConfig: &eks.ClusterEncryptionConfigArgs{
			Provider:  &eks.ClusterEncryptionConfigProviderArgs{KeyArn: key.Arn},
			Resources: pulumi.ToStringArray([]string{"secrets"}),
		},
		AccessConfig: &eks.ClusterAccessConfigArgs{
			AuthenticationMode:                      pulumi.String("API"),
			BootstrapClusterCreatorAdminPermissions: pulumi.Bool(true),
		},
		EnabledClusterLogTypes: pulumi.ToStringArray([]string{"api", "audit", "authenticator"}),
		// bootstrapClusterCreatorAdminPermissions is read only when the cluster is created and
		// cannot be updated: a difference (a provider that reads it back otherwise) must not
		// replace the cluster.
	}, append(awsOpts, pulumi.DependsOn(clusterPolicies),
		pulumi.IgnoreChanges([]string{"accessConfig.bootstrapClusterCreatorAdminPermissions"}))...)
	if err != nil {
		return nil, err
	}

	nodeRole, nodePolicies, err := role(ctx, name+"-nodes", trustPolicy("ec2.amazonaws.com", "sts:AssumeRole"), []string{
		awsManagedPolicy + "AmazonEKSWorkerNodePolicy",
		awsManagedPolicy + "AmazonEKS_CNI_Policy",
		awsManagedPolicy + "AmazonEC2ContainerRegistryReadOnly",
	}, awsOpts...)
	if err != nil {
		return nil, err
	}
	nodes, err := eks.NewNodeGroup(ctx, name, &eks.NodeGroupArgs{
		ClusterName: cl.Name,
		// The nodes follow the control plane: a new eksKubernetesVersion upgrades the control
		// plane, then the nodes, a node at a time (updateConfig) with the PodDisruptionBudgets
		// respected. Left unset, the nodes would stay on the version they were created with.
		Version:       cl.Version,
		NodeRoleArn:   nodeRole.Arn,
		SubnetIds:     subnetIDs,
		InstanceTypes: pulumi.ToStringArray(e.InstanceTypes),
		AmiType:       pulumi.String(amiType(e.InstanceTypes[0])),
		ScalingConfig: &eks.NodeGroupScalingConfigArgs{
			MinSize: pulumi.Int(e.MinNodes), MaxSize: pulumi.Int(e.MaxNodes), DesiredSize: pulumi.Int(e.DesiredNodes),
		},
		UpdateConfig: &eks.NodeGroupUpdateConfigArgs{MaxUnavailable: pulumi.Int(1)},
	}, append(awsOpts, pulumi.DependsOn(nodePolicies))...)
	if err != nil {
		return nil, err
	}

	ready := []pulumi.Resource{nodes}
	addon := func(addonName string, args *eks.AddonArgs, deps ...pulumi.Resource) (*eks.Addon, error) {
		args.ClusterName, args.AddonName = cl.Name, pulumi.String(addonName)
		// An explicit version, the newest EKS publishes for the control plane's Kubernetes
		// version. Left unset, EKS installs its default once and never upgrades it: after a
		// Kubernetes upgrade kube-proxy and coredns would lag behind. The add-ons depend on the
		// node group, so they move after the control plane and the nodes. When EKS publishes a
		// newer build, the next pulumi up shows it in the preview and updates the add-on in place.
		args.AddonVersion = eks.GetAddonVersionOutput(ctx, eks.GetAddonVersionOutputArgs{
			AddonName:         pulumi.String(addonName),
			KubernetesVersion: cl.Version,
			MostRecent:        pulumi.Bool(true),
		}, pulumi.Provider(provider)).Version()
		// This program owns the add-ons' configuration (configurationValues): on an update, as on
		// creation, fields edited by hand in the cluster are set back, so every upgrade starts
		// from what the code says. PRESERVE would carry hand edits into a new version they were
		// never tested with; NONE would fail the update.
		args.ResolveConflictsOnCreate = pulumi.String("OVERWRITE")
		args.ResolveConflictsOnUpdate = pulumi.String("OVERWRITE")
		a, err := eks.NewAddon(ctx, name+"-"+addonName, args, append(awsOpts, pulumi.DependsOn(append([]pulumi.Resource{nodes}, deps...)))...)
		if err == nil {
			ready = append(ready, a)
		}
		return a, err
	}
	podIdentity, err := addon("eks-pod-identity-agent", &eks.AddonArgs{})
	if err != nil {
		return nil, err
	}
	// The VPC CNI enforces NetworkPolicies only when asked to; the release relies on them.
	if _, err := addon("vpc-cni", &eks.AddonArgs{ConfigurationValues: pulumi.String(`{"enableNetworkPolicy":"true"}`)}); err != nil {
		return nil, err
	}
	for _, a := range []string{"kube-proxy", "coredns"} {
		if _, err := addon(a, &eks.AddonArgs{}); err != nil {
			return nil, err
		}
	}
	ebsRole, ebsPolicies, err := role(ctx, name+"-ebs-csi", podIdentityTrust,
		[]string{awsManagedPolicy + "service-role/AmazonEBSCSIDriverPolicy"}, awsOpts...)
	if err != nil {
		return nil, err
	}
	if _, err := addon("aws-ebs-csi-driver", &eks.AddonArgs{
		PodIdentityAssociations: eks.AddonPodIdentityAssociationArray{eks.AddonPodIdentityAssociationArgs{
			RoleArn: ebsRole.Arn, ServiceAccount: pulumi.String(ebsCSIControllerAccount),
		}},
	}, append(ebsPolicies, podIdentity)...); err != nil {
		return nil, err
	}

	config := kubeconfig(name, cl.Endpoint, cl.CertificateAuthority.Data().Elem(), execCredential{
		command:     "aws",
		args:        []string{"eks", "get-token", "--cluster-name", name, "--region", e.Region, "--output", "json"},
		installHint: "Install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
	})
	// Both kubernetes providers are identified by the cluster's ARN, not by the kubeconfig: a change
	// of endpoint access or CA must not replace them and every object they created.
	addons, err := newClusterProvider(ctx, name+"-eks-addons", config, cl.Arn, pulumi.DependsOn(ready))
	if err != nil {
		return nil, err
	}
	k8sOpts := []pulumi.ResourceOption{pulumi.Provider(addons)}

	// PVCs bind to gp3 volumes, encrypted; Retain keeps the data when a claim is deleted by mistake.
	gp3, err := storagev1.NewStorageClass(ctx, "gp3", &storagev1.StorageClassArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        pulumi.String("gp3"),
			Annotations: pulumi.StringMap{"storageclass.kubernetes.io/is-default-class": pulumi.String("true")},
		},
		Provisioner:          pulumi.String("ebs.csi.aws.com"),
		Parameters:           pulumi.StringMap{"type": pulumi.String("gp3"), "encrypted": pulumi.String("true")},
		VolumeBindingMode:    pulumi.String("WaitForFirstConsumer"),
		AllowVolumeExpansion: pulumi.Bool(true),
		ReclaimPolicy:        pulumi.String("Retain"),
	}, k8sOpts...)
	if err != nil {
		return nil, err
	}
	releaseNeeds := []pulumi.Resource{gp3}

	if e.LoadBalancerController {
		lbcPolicy, err := iam.NewPolicy(ctx, name+"-lb-controller", &iam.PolicyArgs{
			Description: pulumi.String("AWS Load Balancer Controller of EKS cluster " + name + " (network load balancers)"),
			Policy:      pulumi.String(loadBalancerControllerPolicy),
		}, awsOpts...)
		if err != nil {
			return nil, err
		}
		lbcRole, err := iam.NewRole(ctx, name+"-lb-controller", &iam.RoleArgs{AssumeRolePolicy: pulumi.String(podIdentityTrust)}, awsOpts...)
		if err != nil {
			return nil, err
		}
		attachment, err := iam.NewRolePolicyAttachment(ctx, name+"-lb-controller", &iam.RolePolicyAttachmentArgs{
			Role: lbcRole.Name, PolicyArn: lbcPolicy.Arn,
		}, awsOpts...)
		if err != nil {
			return nil, err
		}
		association, err := eks.NewPodIdentityAssociation(ctx, name+"-lb-controller", &eks.PodIdentityAssociationArgs{
			ClusterName:    cl.Name,
			Namespace:      pulumi.String("kube-system"),
			ServiceAccount: pulumi.String(loadBalancerControllerAccount),
			RoleArn:        lbcRole.Arn,
		}, append(awsOpts, pulumi.DependsOn([]pulumi.Resource{podIdentity, attachment}))...)
		if err != nil {
			return nil, err
		}
		controller, err := helmv3.NewRelease(ctx, loadBalancerControllerChart, &helmv3.ReleaseArgs{
			Chart:          pulumi.String(loadBalancerControllerChart),
			Version:        pulumi.String(loadBalancerControllerChartVersion),
			RepositoryOpts: &helmv3.RepositoryOptsArgs{Repo: pulumi.String(loadBalancerControllerRepo)},
			Namespace:      pulumi.String("kube-system"),
			Values: pulumi.Map{
				"clusterName":    cl.Name,
				"region":         pulumi.String(e.Region),
				"vpcId":          vpcID,
				"replicaCount":   pulumi.Int(2),
				"serviceAccount": pulumi.Map{"create": pulumi.Bool(true), "name": pulumi.String(loadBalancerControllerAccount)},
			},
		}, append(k8sOpts, pulumi.DependsOn([]pulumi.Resource{association}))...)
		if err != nil {
			return nil, err
		}
		releaseNeeds = append(releaseNeeds, controller)
	}

	// The release's provider waits for the storage class and the controller, so that the volume
	// claims bind and the LoadBalancer Service is handled by the controller its annotations name.
	release, err := newClusterProvider(ctx, name+"-eks", config, cl.Arn, pulumi.DependsOn(releaseNeeds))
	if err != nil {
		return nil, err
	}
	return &cluster{name: cl.Name, kubeconfig: config, provider: release}, nil
}

// newEKSNetwork creates a VPC with a public and a private subnet per availability zone, a NAT
// gateway per zone (nodes in private subnets reach the internet without a single point of
// failure), and the subnet tags that load balancers are placed by.
func newEKSNetwork(ctx *pulumi.Context, name string, e EKSConfig, opts []pulumi.ResourceOption) (pulumi.StringOutput, pulumi.StringArrayOutput, error) {
	parent, _ := network(e.VPCCIDR) // validated
	tags := func(n string, extra map[string]string) pulumi.StringMap {
		t := pulumi.StringMap{"Name": pulumi.String(n), "kubernetes.io/cluster/" + name: pulumi.String("shared")}
		for k, v := range extra {
			t[k] = pulumi.String(v)
		}
		return t
	}
	vpc, err := ec2.NewVpc(ctx, name, &ec2.VpcArgs{
		CidrBlock: pulumi.String(e.VPCCIDR), EnableDnsHostnames: pulumi.Bool(true), EnableDnsSupport: pulumi.Bool(true),
		Tags: tags(name, nil),
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
	}
	igw, err := ec2.NewInternetGateway(ctx, name, &ec2.InternetGatewayArgs{VpcId: vpc.ID(), Tags: tags(name, nil)}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
	}
	public, err := ec2.NewRouteTable(ctx, name+"-public", &ec2.RouteTableArgs{
		VpcId:  vpc.ID(),
		Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), GatewayId: igw.ID()}},
		Tags:   tags(name+"-public", nil),
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
	}

	var private pulumi.StringArray
	for i, zone := range e.AvailabilityZones {
		// Private subnets take an eighth of the VPC each, from the start; public ones are small
		// (1/64 each) and sit in the last eighth, so that up to six zones never overlap.
		pub, err := ec2.NewSubnet(ctx, name+"-public-"+zone, &ec2.SubnetArgs{
			VpcId: vpc.ID(), AvailabilityZone: pulumi.String(zone), CidrBlock: pulumi.String(subnet(parent, 6, 56+i)),
			Tags: tags(name+"-public-"+zone, map[string]string{"kubernetes.io/role/elb": "1"}),
		}, opts...)
		if err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, name+"-public-"+zone, &ec2.RouteTableAssociationArgs{
			SubnetId: pub.ID(), RouteTableId: public.ID(),
		}, opts...); err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		eip, err := ec2.NewEip(ctx, name+"-nat-"+zone, &ec2.EipArgs{Domain: pulumi.String("vpc"), Tags: tags(name+"-nat-"+zone, nil)}, opts...)
		if err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		nat, err := ec2.NewNatGateway(ctx, name+"-"+zone, &ec2.NatGatewayArgs{
			AllocationId: eip.ID(), SubnetId: pub.ID(), Tags: tags(name+"-"+zone, nil),
		}, append(opts, pulumi.DependsOn([]pulumi.Resource{igw}))...)
		if err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		priv, err := ec2.NewSubnet(ctx, name+"-private-"+zone, &ec2.SubnetArgs{
			VpcId: vpc.ID(), AvailabilityZone: pulumi.String(zone), CidrBlock: pulumi.String(subnet(parent, 3, i)),
			Tags: tags(name+"-private-"+zone, map[string]string{"kubernetes.io/role/internal-elb": "1"}),
		}, opts...)
		if err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		routes, err := ec2.NewRouteTable(ctx, name+"-private-"+zone, &ec2.RouteTableArgs{
			VpcId:  vpc.ID(),
			Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), NatGatewayId: nat.ID()}},
			Tags:   tags(name+"-private-"+zone, nil),
		}, opts...)
		if err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, name+"-private-"+zone, &ec2.RouteTableAssociationArgs{
			SubnetId: priv.ID(), RouteTableId: routes.ID(),
		}, opts...); err != nil {
			return pulumi.StringOutput{}, pulumi.StringArrayOutput{}, err
		}
		private = append(private, priv.ID())
	}
	return vpc.ID().ToStringOutput(), private.ToStringArrayOutput(), nil
}
