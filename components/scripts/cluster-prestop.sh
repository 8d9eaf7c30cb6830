#!/bin/sh
# preStop of a RedisCluster's redis container. If this node is a master that owns slots, one of
# its replicas takes over with CLUSTER FAILOVER before the kubelet sends SIGTERM: the master stops
# taking writes, the replica catches up with its offset and is promoted, so that no acknowledged
# write is lost and the shard is without a master for about a second, not cluster-node-timeout.
# While this pod is away, its shard's master takes writes without a replica in sync: each step
# below lowers min-replicas-to-write where it must, and the keepers (cluster-start.sh) put it back.
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

# hand_over: if this node is a master that owns slots, make one of its live replicas master.
hand_over() {
    view=$(cluster_nodes)
    myself=$(echo "$view" | awk '$3 ~ /myself/')
    case "$myself" in
    *master*) ;;
    *) return 0 ;;
    esac
    if [ "$(echo "$myself" | awk '{ print NF }')" -lt 9 ]; then
        return 0 # no slots: nothing to hand over
    fi
    myid=${myself%% *}
    replicas=$(echo "$view" | cluster_awk '$4 == me && $3 !~ /fail|handshake|noaddr/ && $8 == "connected" { print hostname($2) }' -v me="$myid")
    if [ -z "$replicas" ]; then
        log "preStop: this node is a master with no live replica; stopping"
        return 0
    fi
    want=$(write_bound)
    for replica in $replicas; do
        # The replica takes writes as soon as it is promoted: no replica of its own is in sync
        # then (this node resyncs from it, then goes), and with min-replicas-to-write it would
        # answer NOREPLICAS meanwhile (2 s seen on a real node). The keeper of a replica back in
        # sync puts the bound back, or its own keeper once it has stayed a replica.
        peer_cli "$replica" CONFIG SET min-replicas-to-write 0 >/dev/null
        reply=$(peer_cli "$replica" CLUSTER FAILOVER)
        log "preStop: asked $replica to take over: $reply"
        if [ "$reply" != OK ]; then
            peer_cli "$replica" CONFIG SET min-replicas-to-write "$want" >/dev/null
            continue
        fi
        # Until this node is a replica, while the replica answers: when every pod stops at once,
        # the replica may stop too after it accepted, and waiting for it only held the stop
        # until the deadline (seen in the lab).
        while [ "$(date +%s)" -lt "$DEADLINE" ] && [ "$(peer_cli "$replica" PING)" = PONG ]; do
            if [ "$(info_field "$(local_cli INFO replication)" role)" = slave ]; then
                log "preStop: $replica is master now"
                return 0
            fi
            sleep 0.2
        done
    done
    log "preStop: no replica took over; stopping anyway"
}

# spare_master: if this node is a replica (now), and its master has no other replica in sync,
# let the master take writes while this pod restarts. With min-replicas-to-write it would refuse
# every write of its shard until this pod is back and synced: seconds of a rolling update or a
# node drain, for each shard of a cluster with one replica per shard. The keeper of a replica
# that is back in sync puts the bound back (cluster-start.sh); a crash, which runs no preStop,
# keeps the bound.
spare_master() {
    info=$(local_cli INFO replication)
    [ "$(info_field "$info" role)" = slave ] || return 0
    master=$(info_field "$info" master_host)
    read -r online mine <<EOF
$(replicas_online "$master")
EOF
    if [ "$((online - mine))" -le 0 ]; then
        reply=$(peer_cli "$master" CONFIG SET min-replicas-to-write 0)
        log "preStop: $master keeps taking writes without this replica until one is back in sync: $reply"
    fi
}

# From here on, this pod's keeper no longer puts a master's bound back on the strength of this
# replica, which is about to go.
touch "$LEAVING"
hand_over
spare_master
