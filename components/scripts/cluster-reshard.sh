#!/bin/sh
# Command of a RedisCluster's resharding Jobs: cluster-reshard.sh drain | fill
#
# Pulumi runs them around a change of the StatefulSet and waits for each to complete:
#   drain  before the topology ConfigMap's data and the StatefulSet change: when `shards` is
#          smaller than the running release's (the ConfigMap's, which a new release created with
#          the new value), moves every slot off the shard groups that go, so that the pods the
#          StatefulSet deletes own nothing;
#   fill   after every update, once the StatefulSet's pods are ready: moves slots onto the empty
#          masters of new shard groups, until every master holds its share (on a new release it
#          only waits until the cluster serves every slot).
# Both wait for a healthy cluster first (every slot served, no node failing) and move slots with
# redis-cli's rebalance, which MIGRATEs the keys while clients go on writing (they follow ASK
# replies). Both can run again at any point, after a failure or a restart of the Job's pod, and
# then finish what is left: a slot left half-moved is completed first. A Job that cannot do its
# work safely fails, and the update stops before the StatefulSet changes.
set -eu
# shellcheck source=cluster-lib.sh
. "${TEMPLATE_DIR}/cluster-lib.sh"

: "${SHARDS:?}" "${REPLICAS_PER_SHARD:?}" "${HEALTHY_WAIT_SECONDS:?}"
SLOTS=16384
MODE=${1:-}
case "$MODE" in
drain | fill) ;;
*)
    echo "usage: cluster-reshard.sh drain|fill" >&2
    exit 2
    ;;
esac
if [ "$MODE" = drain ]; then
    running=$(topology shards)
    if [ "$running" -le "$SHARDS" ]; then
        log "running shards $running, wanted $SHARDS: nothing to drain"
        exit 0
    fi
    log "running shards $running, wanted $SHARDS: draining the shard groups that go"
fi

# Pods with an ordinal from KEEP on belong to the groups that a smaller `shards` removes.
KEEP=$((SHARDS * (1 + REPLICAS_PER_SHARD)))

# seed: the name of the first pod that answers.
seed() {
    i=0
    while [ "$i" -lt "$KEEP" ]; do
        host=$(peer "$i")
        if [ "$(peer_cli "$host" PING)" = PONG ]; then
            echo "$host"
            return 0
        fi
        i=$((i + 1))
    done
    return 1
}

# healthy HOST: every slot is served and no node of the shard groups that stay is failing or
# half-joined, in HOST's view. The removed groups' nodes fail once their pods are gone, until the
# keepers forget them. To fill, every node of the groups that stay must also be there, with a
# master for each group, and take the release's password: Pulumi's wait for the StatefulSet can
# end before the new pods exist (pulumi-kubernetes#4094), and a new node refuses the password
# until its keeper gave it its role. redis-cli's rebalance leaves out a node that refuses it, and
# with it the new shard (seen in the lab: "No rebalancing needed", the new master empty).
healthy() {
    info=$(peer_cli "$1" CLUSTER INFO)
    [ "$(info_field "$info" cluster_state)" = ok ] &&
        [ "$(info_field "$info" cluster_slots_ok)" = "$SLOTS" ] &&
        peer_cli "$1" CLUSTER NODES | cluster_awk '
            { o = ordinal(hostname($2)) }
            o < keep && $3 ~ /fail|handshake|noaddr/ { bad = 1 }
            o >= 0 && o < keep { nodes++; if ($3 ~ /master/) masters++ }
            END { exit bad || (mode == "fill" && (nodes != keep || masters != shards)) }' \
            -v keep="$KEEP" -v shards="$SHARDS" -v mode="$MODE" &&
        { [ "$MODE" = drain ] || all_take_password; }
}

# all_take_password: every pod of the shard groups that stay answers the release's password.
all_take_password() {
    i=0
    while [ "$i" -lt "$KEEP" ]; do
        [ "$(peer_cli "$(peer "$i")" PING)" = PONG ] || return 1
        i=$((i + 1))
    done
}

deadline=$(($(date +%s) + HEALTHY_WAIT_SECONDS))
until host=$(seed) && healthy "$host"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        log "the cluster is not healthy after ${HEALTHY_WAIT_SECONDS}s; refusing to move slots"
        peer_cli "${host:-$(peer 0)}" CLUSTER NODES >&2 || true
        exit 1
    fi
    sleep 2
done
nodes=$(peer_cli "$host" CLUSTER NODES)
# redis-cli --cluster authenticates to every node with one password: the one that every node
# accepts, even in the middle of a rotation.
REDISCLI_AUTH=$(peer_password)
export REDISCLI_AUTH

# cluster_tool COMMAND ARGS...: redis-cli --cluster COMMAND, with TLS when the release has it.
cluster_tool() {
    # shellcheck disable=SC2086 # TLS_FLAGS is words
    "$CLI_BIN" $TLS_FLAGS --cluster "$@" >&2
}

# A slot left MIGRATING or IMPORTING by an earlier run that stopped half-way: complete it. Every
# slot is covered here (healthy), so fix only closes open slots.
if echo "$nodes" | grep -q '\[[0-9]*-[<>]-'; then
    log "completing slots that an earlier run left half-moved"
    cluster_tool fix "$host:$REDIS_PORT" --cluster-yes
fi

# The masters of the groups this change removes, as --cluster-weight ID=0 arguments.
removed=$(echo "$nodes" | cluster_awk '$3 ~ /master/ && ordinal(hostname($2)) >= keep { print "--cluster-weight " $1 "=0" }' -v keep="$KEEP")
case "$MODE" in
drain)
    if [ -z "$removed" ]; then
        log "no shard group to remove"
        exit 0
    fi
    log "moving every slot off the removed shard groups' masters"
    # shellcheck disable=SC2086 # one argument per word
    cluster_tool rebalance "$host:$REDIS_PORT" $removed --cluster-yes
    ;;
fill)
    # The nodes of removed groups, once the cluster agrees they failed, are forgotten on every node
    # that stays (the keepers would, once the topology ConfigMap reaches them), before
    # redis-cli's rebalance meets them.
    for id in $(echo "$nodes" | cluster_awk 'NF == 8 && $3 ~ /fail/ && $3 !~ /fail\?/ && ordinal(hostname($2)) >= keep { print $1 }' -v keep="$KEEP"); do
        i=0
        while [ "$i" -lt "$KEEP" ]; do
            log "$(peer "$i"): forget $id, a node of a removed shard group: $(peer_cli "$(peer "$i")" CLUSTER FORGET "$id")"
            i=$((i + 1))
        done
    done
    log "moving slots onto empty masters, to an even share"
    cluster_tool rebalance "$host:$REDIS_PORT" --cluster-use-empty-masters --cluster-yes
    ;;
esac
# What the Job leaves: the slot map as the seed sees it.
peer_cli "$host" CLUSTER NODES | awk '$3 ~ /master/ { printf "%s", $2; for (i = 9; i <= NF; i++) printf " %s", $i; print "" }' >&2
log "$MODE done"
