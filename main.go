// Command redis-sentinel is the Pulumi program: `pulumi up` on a stack (local, gke, eks).
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/d3ad221e/redis-sentinel/stacks"
)

func main() {
	pulumi.Run(stacks.Run)
}
