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
