#!/bin/sh
# Functions of a RedisCluster's redis container; sourced, never run on its own.
#
# Layout: the pods form groups of GROUP_SIZE (1 + replicasPerShard) consecutive ordinals, one
# group per shard. A group's pods only ever replicate each other, so a change of the number of
# shards adds or removes whole groups at the end of the StatefulSet, and the anti-affinity that
# keeps every pod on a node of its own keeps a shard's master and replicas apart.
# shellcheck source=common.sh
. "${TEMPLATE_DIR}/common.sh"

SLOTS=16384

# topology KEY: a value of the release's topology ConfigMap (shards, replicas-per-shard). It is
# mounted, not copied into the pod template, so that a change of shards reaches running pods
# without restarting them.
topology() {
    cat "${TOPOLOGY_DIR:?}/$1"
}

# node_count: the number of pods the release has now.
node_count() {
    echo $(($(topology shards) * (1 + $(topology replicas-per-shard))))
}

# group_of ORDINAL: the shard group of a pod.
group_of() {
    echo $(($1 / (1 + $(topology replicas-per-shard))))
}

# local_cli ARGS...: a call to this pod's server: with the release's passwords once the node has
# joined, with its own token (LOCAL_AUTH, cluster-start.sh) before.
local_cli() (
    if [ -n "${LOCAL_AUTH:-}" ]; then
        CLI_USER=default CLI_AUTH=$LOCAL_AUTH
    fi
    cli localhost "$REDIS_PORT" "$@"
)

# peer_cli HOST ARGS...: a call to another pod's server with the release's passwords.
peer_cli() (
    host=$1
    shift
    cli "$host" "$REDIS_PORT" "$@"
)

# write_bound: min-replicas-to-write as cluster.conf sets it, which the preStop hooks lower and
# the keepers put back.
write_bound() {
    sed -n 's/^min-replicas-to-write //p' "${TEMPLATE_DIR}/cluster.conf"
}

# LEAVING marks a pod whose preStop runs: its keeper then never lets a master count on it.
# shellcheck disable=SC2034 # cluster-prestop.sh sets it, cluster-start.sh reads and clears it
LEAVING=${RUN_DIR}/leaving

# replicas_online MASTER: how many replicas MASTER lists as online, then how many of them are
# this node. This node's address as the master sees it, which it lists its replicas by, is the
# far end of a connection to it: a node's own line in CLUSTER NODES keeps an old address after a
# restart with a new one until a peer MEETs it (seen in the lab).
replicas_online() {
    myip=$(peer_cli "$1" CLIENT INFO | tr ' ' '\n' | sed -n 's/^addr=\(.*\):[0-9]*$/\1/p')
    peer_cli "$1" INFO replication | awk -F'[:,=]' -v me="$myip" '
        /^slave[0-9]+:/ && /state=online/ { n++; for (i = 2; i < NF; i++) if ($i == "ip" && $(i + 1) == me) self++ }
        END { print n + 0, self + 0 }'
}

# cluster_nodes: CLUSTER NODES of this pod's server, one node per line:
#   ID IP:PORT@BUS[,HOSTNAME] FLAGS MASTER-ID PING PONG EPOCH LINK SLOTS...
cluster_nodes() {
    local_cli CLUSTER NODES
}

# cluster_awk PROGRAM [AWK OPTIONS]: awk with two functions for CLUSTER NODES lines:
# hostname(ADDRESS), the name a node announces ("" for none), and ordinal(HOST), the ordinal of
# the pod of this StatefulSet named HOST (-1 for any other name).
cluster_awk() {
    program=$1
    shift
    awk -v domain=".${PEER_DOMAIN}" -v sts="${STATEFULSET}-" "$@" '
        function hostname(address, parts) { return split(address, parts, ",") > 1 ? parts[2] : "" }
        function ordinal(host, o) {
            if (index(host, sts) != 1 || substr(host, length(host) - length(domain) + 1) != domain) return -1
            o = substr(host, length(sts) + 1, length(host) - length(sts) - length(domain))
            return o ~ /^[0-9]+$/ ? o + 0 : -1
        }
        '"$program"
}

# ordinal_of HOSTNAME: the ordinal of a pod of this StatefulSet named HOSTNAME; -1 otherwise.
ordinal_of() {
    echo "$1" | cluster_awk '{ print ordinal($0) }'
}

# keeper_cli HOST ARGS...: a call to HOST's server as the user keeper, which a node with an empty
# disk admits too (cluster-start.sh). It may only ask a node who it is, what it knows and where
# it was reached (KEEPER_RULES).
keeper_cli() (
    host=$1
    shift
    CLI_USER=keeper cli "$host" "$REDIS_PORT" "$@"
)

# address_of HOST: "ID IP" of the server at HOST as HOST itself answers: its node ID, and the
# address this pod reached it at (the pod's IP: the local end of the connection, CLIENT INFO's
# laddr). Asking the peer, not a resolver, needs no tool beyond redis-cli in the image.
address_of() {
    printf 'CLUSTER MYID\nCLIENT INFO\n' | keeper_cli "$1" | awk '
        NR == 1 && /^[0-9a-f]+$/ { id = $0 }
        { for (i = 1; i <= NF; i++) if ($i ~ /^laddr=/) { a = substr($i, 7); sub(/:[0-9]+$/, "", a) } }
        END { if (id != "" && a != "") print id, a }'
}

# slot_range SHARD SHARDS: "FIRST LAST" of the slots that SHARD of SHARDS owns when the cluster
# is created (and that a rebalance moves towards).
slot_range() {
    echo "$(($1 * SLOTS / $2)) $((($1 + 1) * SLOTS / $2 - 1))"
}

# owners_of FIRST LAST NODES: the IDs of the nodes in NODES (CLUSTER NODES) that own any slot
# from FIRST to LAST.
owners_of() {
    echo "$3" | awk -v first="$1" -v last="$2" '{
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
            if (lo <= last && hi >= first) { print $1; break }
        }
    }'
}
