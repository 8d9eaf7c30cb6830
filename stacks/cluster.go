package stacks

import (
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// cluster is what a stack that creates a cluster hands the release.
type cluster struct {
	name       pulumi.StringOutput
	kubeconfig pulumi.StringOutput // a secret
	// provider deploys the release; it waits for everything the release needs (nodes, storage,
	// load balancer controller), so the release's objects wait too.
	provider *kubernetes.Provider
}

// newClusterProvider creates a kubernetes provider for a cluster this stack created.
//
// identifier becomes the provider's clusterIdentifier: it must name the cluster itself (GKE's
// cluster ID, EKS's cluster ARN) and be known in a preview whenever the cluster is not being
// replaced. With it set, the kubernetes provider is replaced only when the identifier changes;
// without it, the provider guesses from the kubeconfig, and a new server address or CA (a GKE
// control plane whose endpoint turns private when gkeMasterAuthorizedNetworks becomes empty, say)
// replaces the provider and with it every Kubernetes object of the release: StatefulSet,
// Namespace and all. Adding the identifier to an existing provider is an update, not a
// replacement (pulumi-kubernetes compares it only when both sides have one), provided the
// kubeconfig does not change in that same update.
func newClusterProvider(ctx *pulumi.Context, name string, kubeconfig pulumi.StringOutput, identifier pulumi.StringOutput, opts ...pulumi.ResourceOption) (*kubernetes.Provider, error) {
	return kubernetes.NewProvider(ctx, name, &kubernetes.ProviderArgs{
		Kubeconfig:        kubeconfig,
		ClusterIdentifier: identifier,
	}, opts...)
}
