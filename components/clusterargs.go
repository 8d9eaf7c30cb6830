package components

import (
	"errors"
	"fmt"
)

// RedisClusterArgs configures a RedisCluster: the shared ReleaseArgs, and the cluster's shape.
// A zero value means "use the default" (see DefaultClusterArgs); a malformed one is an error.
type RedisClusterArgs struct {
	ReleaseArgs

	// Shards is the number of masters the 16384 slots are spread over: at least 3, the fewest
	// with which a majority of masters survives the loss of one (Redis Cluster's failure
	// detection and failover need a majority of masters).
	Shards int
	// ReplicasPerShard is the number of replicas of each master: at least 1, so that a shard
	// survives the loss of a pod.
	ReplicasPerShard int
	// NodeTimeoutMilliseconds is cluster-node-timeout: how long a master may be unreachable
	// before its replica takes over, and a node cut off from the majority stops serving.
	NodeTimeoutMilliseconds int
}

// Bounds of the cluster's shape. maxShards keeps the StatefulSet within what one release should
// hold (Redis Cluster's own advice is at most about 1000 nodes); maxReplicasPerShard is more
// copies than anyone needs for availability.
const (
	minShards           = 3
	maxShards           = 100
	maxReplicasPerShard = 5
)

// DefaultClusterArgs returns the value every zero field of RedisClusterArgs takes.
func DefaultClusterArgs() RedisClusterArgs {
	return RedisClusterArgs{
		ReleaseArgs:             defaultRelease(),
		Shards:                  3,
		ReplicasPerShard:        1,
		NodeTimeoutMilliseconds: 5000,
	}
}

// WithDefaults returns a copy of a in which every zero field holds its default.
func (a RedisClusterArgs) WithDefaults(name string) RedisClusterArgs {
	d := DefaultClusterArgs()
	a.ReleaseArgs = a.ReleaseArgs.withDefaults(name)
	setDefault(&a.Shards, d.Shards)
	setDefault(&a.ReplicasPerShard, d.ReplicasPerShard)
	setDefault(&a.NodeTimeoutMilliseconds, d.NodeTimeoutMilliseconds)
	return a
}

// Pods is the number of pods of the release: every shard's master and replicas.
func (a RedisClusterArgs) Pods() int {
	return a.Shards * (1 + a.ReplicasPerShard)
}

// Validate reports every problem of the component name and the (defaulted) args at once.
func (a RedisClusterArgs) Validate(name string) error {
	var errs []error
	fail := func(field string, value any, allowed string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Allowed: allowed})
	}
	a.ReleaseArgs.validate(name, fail)
	if a.Shards < minShards || a.Shards > maxShards {
		fail("shards", a.Shards, fmt.Sprintf("from %d to %d; with fewer than %d masters the loss of one leaves no majority to fail over", minShards, maxShards, minShards))
	}
	if a.ReplicasPerShard < 1 || a.ReplicasPerShard > maxReplicasPerShard {
		fail("replicasPerShard", a.ReplicasPerShard, fmt.Sprintf("from 1 to %d; without a replica a shard's data is gone with its pod", maxReplicasPerShard))
	}
	if a.NodeTimeoutMilliseconds < 2000 || a.NodeTimeoutMilliseconds > 600000 {
		fail("clusterNodeTimeoutMilliseconds", a.NodeTimeoutMilliseconds, "from 2000 to 600000; below 2000 nodes are marked failed falsely while they restart or resync")
	}
	return errors.Join(errs...)
}
