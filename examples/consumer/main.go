// Command consumer is an example of another Pulumi program that imports the RedisSentinel
// component: `pulumi up` here creates the shop's own cache. The program is in package shop, so
// that tests can run it under Pulumi's mocks.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/d3ad221e/redis-sentinel/examples/consumer/shop"
)

func main() {
	pulumi.Run(shop.Program)
}
