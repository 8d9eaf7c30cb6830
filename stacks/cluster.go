package stacks

import (
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"
)

// cluster is what a stack that creates a cluster hands the release.
type cluster struct {
	name       pulumi.StringOutput
	kubeconfig pulumi.StringOutput // a secret
	// provider deploys the release; it waits for everything the release needs (nodes, storage,
	// load balancer controller), so the release's objects wait too.
	provider *kubernetes.Provider
}

// newClusterProvider creates a kubernetes provider for a cluster: one this stack created, or the
// one the kubeconfig config key names (identified by its name in that kubeconfig).
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

// currentCluster returns the name of the cluster that a kubeconfig's current context uses, or ""
// when the kubeconfig names none that it defines. The name, not the server address, identifies
// the cluster: new credentials or a new endpoint of the same cluster keep it.
func currentCluster(kubeconfig string) string {
	var k struct {
		CurrentContext string `json:"current-context"`
		Contexts       []struct {
			Name    string `json:"name"`
			Context struct {
				Cluster string `json:"cluster"`
			} `json:"context"`
		} `json:"contexts"`
		Clusters []struct {
			Name string `json:"name"`
		} `json:"clusters"`
	}
	if yaml.Unmarshal([]byte(kubeconfig), &k) != nil {
		return ""
	}
	for _, ctx := range k.Contexts {
		if ctx.Name != k.CurrentContext {
			continue
		}
		for _, c := range k.Clusters {
			if c.Name == ctx.Context.Cluster && c.Name != "" {
				return c.Name
			}
		}
	}
	return ""
}
