package stacks

import (
	"fmt"

	"github.com/d3ad221e/redis-sentinel/components"
)

// Values of the topology key: the kinds of release.
const (
	TopologySentinel = components.TopologySentinel
	TopologyCluster  = components.TopologyCluster
)

// unused is a key that the stack's topology has no use for, with what that topology uses instead.
type unused struct {
	key        string
	value, def any
	set        bool
	instead    string
}

// set says whether a key read into value was set away from its default. A key left out reads as
// the zero value; the Pulumi CLI hands the program Pulumi.yaml's default instead, so a key that
// was set to its default cannot be told from one left out, and needs no refusal either.
func set[T comparable](value, def T) bool {
	var zero T
	return value != zero && value != def
}

// noLoadBalancer is why a cluster refuses the load balancer keys.
const noLoadBalancer = "a cluster's clients must reach every node, which one load balancer address cannot give them (see Sentinel or Cluster in the README)"

// checkTopologyKeys refuses every key that only the other topology uses and that the
// configuration sets anyway: a user who sets one expects it to do something, and it would do
// nothing. networks are the clusterNetworks of the configuration itself, before the stack adds
// the ranges it creates.
func checkTopologyKeys(r *reader, c *Config, networks []string) {
	var keys []unused
	switch c.Topology {
	case TopologyCluster:
		rel, d := c.Release, components.DefaultArgs()
		keys = []unused{
			{"replicas", rel.Replicas, d.Replicas, set(rel.Replicas, d.Replicas), "a cluster runs shards x (1 + replicasPerShard) pods; set those instead"},
			{"quorum", rel.Quorum, 0, set(rel.Quorum, 0), "a cluster has no sentinels: a majority of its masters decides that a master failed"},
			{"masterSetName", rel.MasterSetName, d.MasterSetName, set(rel.MasterSetName, d.MasterSetName), "a cluster has no master set: clients find every master from the seedEndpoint or seedNodes outputs"},
			{"haproxyImage", c.HAProxyImage, components.DefaultHAProxyImage, set(c.HAProxyImage, components.DefaultHAProxyImage), "a cluster has no HAProxy: cluster-aware clients connect to every node themselves"},
			{"haproxyReplicas", rel.HAProxyReplicas, d.HAProxyReplicas, set(rel.HAProxyReplicas, d.HAProxyReplicas), "a cluster has no HAProxy: cluster-aware clients connect to every node themselves"},
			{"downAfterMilliseconds", rel.DownAfterMilliseconds, d.DownAfterMilliseconds, set(rel.DownAfterMilliseconds, d.DownAfterMilliseconds), "a cluster's nodes detect a failed master themselves: set clusterNodeTimeoutMilliseconds instead"},
			{"failoverTimeoutMilliseconds", rel.FailoverTimeoutMilliseconds, d.FailoverTimeoutMilliseconds, set(rel.FailoverTimeoutMilliseconds, d.FailoverTimeoutMilliseconds), "a cluster's replicas take over by themselves, paced by clusterNodeTimeoutMilliseconds: set that instead"},
			{"loadBalancer", rel.LoadBalancer, false, rel.LoadBalancer, noLoadBalancer},
			{"loadBalancerSourceRanges", rel.LoadBalancerSourceRanges, "[]", len(rel.LoadBalancerSourceRanges) > 0, noLoadBalancer},
			{"publicLoadBalancer", rel.PublicLoadBalancer, false, rel.PublicLoadBalancer, noLoadBalancer},
			{"clusterNetworks", networks, "[]", len(networks) > 0, "it only tells the load balancer's clients from the cluster's pods, and " + noLoadBalancer},
		}
	case TopologySentinel:
		a, d := c.Cluster, components.DefaultClusterArgs()
		keys = []unused{
			{"shards", a.Shards, d.Shards, set(a.Shards, d.Shards), "a Sentinel release has one master, which holds every key; for more, a release with topology cluster (see Sentinel or Cluster in the README)"},
			{"replicasPerShard", a.ReplicasPerShard, d.ReplicasPerShard, set(a.ReplicasPerShard, d.ReplicasPerShard), "a Sentinel release has one master: set its pods, the master and its replicas, with replicas instead"},
			{"clusterNodeTimeoutMilliseconds", a.NodeTimeoutMilliseconds, d.NodeTimeoutMilliseconds, set(a.NodeTimeoutMilliseconds, d.NodeTimeoutMilliseconds), "the sentinels detect a failed master: set downAfterMilliseconds instead"},
		}
	}
	for _, k := range keys {
		if k.set {
			r.fail(k.key, k.value, fmt.Sprintf("its default (%v) with topology %s: %s", k.def, c.Topology, k.instead))
		}
	}
}
