#!/bin/sh
# preStop of a RedisCluster's redis container. If this node is a master that owns slots, one of
# its replicas takes over with CLUSTER FAILOVER before the kubelet sends SIGTERM: the master stops
# taking writes, the replica catches up with its offset and is promoted, so that no acknowledged
# write is lost and the shard is without a master for about a second, not cluster-node-timeout.
set -eu
# shellcheck source=cluster-lib.sh
. "${TEMPLATE_DIR}/cluster-lib.sh"

# Log lines go to the server's standard output, as in redis-prestop.sh.
server_stdout=/proc/$(cat "${RUN_DIR}/redis.pid" 2>/dev/null || true)/fd/1
if { true >>"$server_stdout"; } 2>/dev/null; then
    exec 2>>"$server_stdout"
fi
PRESTOP_DEADLINE_SECONDS=${PRESTOP_DEADLINE_SECONDS:-20}
DEADLINE=$(($(date +%s) + PRESTOP_DEADLINE_SECONDS))

view=$(cluster_nodes)
myself=$(echo "$view" | awk '$3 ~ /myself/')
case "$myself" in
*master*) ;;
*) exit 0 ;;
esac
if [ "$(echo "$myself" | awk '{ print NF }')" -lt 9 ]; then
    exit 0 # no slots: nothing to hand over
fi
myid=${myself%% *}
replicas=$(echo "$view" | cluster_awk '$4 == me && $3 !~ /fail|handshake|noaddr/ && $8 == "connected" { print hostname($2) }' -v me="$myid")
if [ -z "$replicas" ]; then
    log "preStop: this node is a master with no live replica; stopping"
    exit 0
fi
for replica in $replicas; do
    reply=$(peer_cli "$replica" CLUSTER FAILOVER)
    log "preStop: asked $replica to take over: $reply"
    [ "$reply" = OK ] || continue
    while [ "$(date +%s)" -lt "$DEADLINE" ]; do
        if [ "$(info_field "$(local_cli INFO replication)" role)" = slave ]; then
            log "preStop: $replica is master now"
            exit 0
        fi
        sleep 0.2
    done
done
log "preStop: no replica took over by the deadline; stopping anyway"
