#!/bin/sh
# Command of the redis container of a RedisCluster pod. It writes the server's config, starts the
# keeper beside it, and execs the server. The keeper does, again and again, all that a person
# would otherwise do by hand:
#
#  1. Meet every peer at its current address. The cluster bus dials IP addresses, whatever
#     cluster-announce-hostname says, so after every pod restarted with a new IP nobody could
#     reach anybody: nodes.conf names only old addresses. A CLUSTER MEET with the new address of
#     a node the cluster knows updates that node's address. The keeper asks each peer by its
#     stable name for its node ID and address, and meets those it does not know there.
#  2. Give a node with an empty disk its role, once it sees every pod of the release:
#     - a replica of its group's master when the group has one (a pod re-created empty, or a
#       replica of a new cluster);
#     - else, for the first pod of its group, the group's slots when nobody owns any of them
#       (a new cluster), or nothing when others own them (a new shard, which the rebalance Job
#       fills);
#     - else (its group's master is down and its replica not yet promoted) it waits.
#     Until then its default user has a token that nobody else knows for a password: no client
#     reads its empty dataset, and no replica that dials its address (the address of a pod lost
#     with its disk may come back) resyncs from it and throws its data away. Only the keepers of
#     the other pods get in, as the user "keeper", which may ask a node its ID, its address and
#     what it knows of the cluster.
#  3. Forget the nodes that are gone for good: a pod re-created under a new ID leaves its old
#     entry behind, and so does a pod of a shard that was removed.
set -eu
# shellcheck source=cluster-lib.sh
. "${TEMPLATE_DIR}/cluster-lib.sh"

: "${BUS_PORT:?}" "${DATA_DIR:?}" "${TOPOLOGY_DIR:?}"
ORDINAL=${POD_NAME##*-}
# JOINED exists on the data volume once this node's data belongs to the cluster: it owns slots,
# or it is a replica that has synced, or it is the empty master of a new shard.
JOINED=${DATA_DIR}/joined
# A container restarted in its pod (RUN_DIR is the pod's) is not leaving.
rm -f "$LEAVING"

if [ -e "$JOINED" ]; then
    default_passwords=$(password_rules)
else
    LOCAL_AUTH=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    echo "$LOCAL_AUTH" >"${RUN_DIR}/join-token"
    default_passwords="resetpass $(quote ">$LOCAL_AUTH")"
    log "empty data volume: the server takes no password but its own token until it has a role"
fi
{
    cat "${TEMPLATE_DIR}/cluster.conf"
    echo "cluster-announce-hostname ${POD_FQDN}"
    echo "user default on $default_passwords ~* &* +@all"
    echo "user keeper on $(password_rules) $KEEPER_RULES"
    echo "user monitor $(monitor_user "$MONITOR_RULES")"
    echo "masterauth $(quote "$(peer_password)")"
} >"${RUN_DIR}/redis.conf.new"
install_config redis.conf

# meet_peers: step 1, for every pod of the release and every node this one knows by name.
meet_peers() {
    view=$(cluster_nodes)
    [ -n "$view" ] || return 0
    hosts=$(
        i=0
        count=$(node_count)
        while [ "$i" -lt "$count" ]; do
            peer "$i"
            i=$((i + 1))
        done
        echo "$view" | cluster_awk '{ print hostname($2) }'
    )
    for host in $(echo "$hosts" | sort -u); do
        [ "$host" != "$POD_FQDN" ] || continue
        [ "$(ordinal_of "$host")" -ge 0 ] || continue
        answer=$(address_of "$host")
        [ -n "$answer" ] || continue
        id=${answer% *} ip=${answer#* }
        if ! echo "$view" | awk -v id="$id" -v at="$ip:" '$1 == id && index($2, at) == 1 && $3 !~ /handshake/ { found = 1 } END { exit !found }'; then
            # An error means a handshake with that address is under way already.
            [ "$(local_cli CLUSTER MEET "$ip" "$REDIS_PORT" "$BUS_PORT")" != OK ] || log "met $host ($id) at $ip"
        fi
    done
}

# sees_everyone VIEW: whether every other pod of the release is a connected node in VIEW.
sees_everyone() {
    i=0
    count=$(node_count)
    while [ "$i" -lt "$count" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        [ "$host" != "$POD_FQDN" ] || continue
        echo "$1" | awk -v host="$host" '
            $2 ~ "," host "$" && $3 !~ /myself|handshake|fail|noaddr/ && $8 == "connected" { found = 1 }
            END { exit !found }' || return 1
    done
}

# joined: the node has its role; from now on it takes the release's passwords.
joined() {
    # On standard input: an argument would show the passwords in the process list.
    printf 'ACL SETUSER default %s\n' "$(password_rules)" | local_cli >/dev/null
    LOCAL_AUTH=
    touch "$JOINED"
    rm -f "${RUN_DIR}/join-token"
    log "joined the cluster as $1; the server takes the release's password now"
}

# join: step 2, while the node has no role.
join() {
    view=$(cluster_nodes)
    [ -n "$view" ] || return 0
    info=$(local_cli INFO replication)
    if [ "$(info_field "$info" role)" = slave ]; then
        # Told to replicate (below) on an earlier round: joined once it has synced.
        if [ "$(info_field "$info" master_link_status)" = up ] && [ "$(info_field "$info" master_sync_in_progress)" = 0 ]; then
            joined "replica of $(info_field "$info" master_host)"
        fi
        return 0
    fi
    sees_everyone "$view" || return 0
    # What every other pod knows: the slots that a node which is down still owns, and this pod's
    # old node if it was re-created, are only in the views of those that knew them. A node with
    # an empty disk meets its peers anew and learns neither (seen with real processes: it took
    # the slots of its own old node, whose replica, with the data, then resynced from it, empty).
    known=$view
    i=0
    count=$(node_count)
    while [ "$i" -lt "$count" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        [ "$host" != "$POD_FQDN" ] || continue
        answer=$(keeper_cli "$host" CLUSTER NODES)
        [ -n "$answer" ] || return 0
        known=$(printf '%s\n%s' "$known" "$answer")
    done
    myid=$(echo "$view" | awk '$3 ~ /myself/ { print $1 }')
    group=$(group_of "$ORDINAL")
    # The group's master: a live master of this group that owns slots, or, in a new cluster or a
    # new shard, the group's empty master with a lower ordinal (the first pod of the group).
    master=$(echo "$view" | cluster_awk '
        $1 != me && $3 ~ /master/ && $3 !~ /fail|handshake|noaddr/ {
            o = ordinal(hostname($2))
            if (o < 0 || int(o / size) != group) next
            if (NF >= 9) { owner = $1 } else if (o < mine) { empty = $1 }
        }
        END { if (owner != "") print owner; else if (empty != "") print empty }' \
        -v me="$myid" -v size="$(($(topology replicas-per-shard) + 1))" -v group="$group" -v mine="$ORDINAL")
    if [ -n "$master" ]; then
        reply=$(local_cli CLUSTER REPLICATE "$master")
        log "replicating $master, the master of shard group $group: $reply"
        return 0
    fi
    size=$(($(topology replicas-per-shard) + 1))
    [ $((ORDINAL % size)) = 0 ] || return 0
    if echo "$known" | awk -v me="$myid" -v host=",$POD_FQDN" '$1 != me && index($2, host) { found = 1 } END { exit !found }'; then
        # This pod's old node is still known: its replica takes over its slots after
        # cluster-node-timeout, and this node then replicates it.
        return 0
    fi
    # shellcheck disable=SC2046 # two numbers
    set -- $(slot_range "$group" "$(topology shards)")
    if [ -z "$(owners_of "$1" "$2" "$known")" ]; then
        reply=$(local_cli CLUSTER ADDSLOTSRANGE "$1" "$2")
        log "nobody owned slots $1-$2 of shard $group: took them ($reply)"
        [ "$reply" = OK ] && joined "master of slots $1-$2"
    else
        joined "the empty master of new shard $group, for the rebalance to fill"
    fi
}

# forget_departed: step 3. Only nodes that failed and own no slots: a failed master with slots is
# a shard that lost every copy, which nobody should paper over.
forget_departed() {
    view=$(cluster_nodes)
    count=$(node_count)
    echo "$view" | cluster_awk 'NF == 8 && $3 ~ /fail/ && $3 !~ /fail\?|myself/ { print $1, hostname($2), ordinal(hostname($2)) }' |
        while read -r id host ordinal; do
            [ "$ordinal" -ge 0 ] || continue
            if [ "$ordinal" -lt "$count" ]; then
                # Still a pod of the release: forget only an old ID of a name that a live node
                # answers to now.
                echo "$view" | awk -v id="$id" -v host=",$host" '$1 != id && index($2, host) && $3 !~ /fail|handshake|noaddr/ { found = 1 } END { exit !found }' || continue
            fi
            reply=$(local_cli CLUSTER FORGET "$id")
            log "forgot $id ($host), which is gone: $reply"
        done
}

# restore_write_bound: a preStop lets a master take writes without a replica in sync: a
# replica's lets its master, a master's lets the replica it hands over to (cluster-prestop.sh).
# A replica's keeper puts its master's bound back, as cluster.conf says, once the master counts
# it in sync; not the master's own keeper, which would count the replica whose preStop lowered
# the bound, in sync for the moment before it stops (2 s of NOREPLICAS seen on a real node). A
# pod whose preStop runs (LEAVING) does neither. A replica whose own bound was lowered and that
# was still a replica at the round before (its handover did not come) gets it back too.
restore_write_bound() {
    [ ! -e "$LEAVING" ] || return 0
    want=$(write_bound)
    info=$(local_cli INFO replication)
    [ "$(info_field "$info" role)" = slave ] || return 0
    if [ "$(local_cli CONFIG GET min-replicas-to-write | sed -n 2p)" = "$want" ]; then
        lowered_as_replica=
    elif [ -n "$lowered_as_replica" ]; then
        log "no handover came: min-replicas-to-write $want ($(local_cli CONFIG SET min-replicas-to-write "$want"))"
        lowered_as_replica=
    else
        lowered_as_replica=1
    fi
    [ "$(info_field "$info" master_link_status)" = up ] || return 0
    master=$(info_field "$info" master_host)
    have=$(peer_cli "$master" CONFIG GET min-replicas-to-write | sed -n 2p)
    [ -n "$have" ] && [ "$have" != "$want" ] || return 0
    read -r online mine <<EOF
$(replicas_online "$master")
EOF
    if [ "$mine" -gt 0 ] && [ "$online" -ge "$want" ]; then
        log "in sync with $master: its min-replicas-to-write $want ($(peer_cli "$master" CONFIG SET min-replicas-to-write "$want"))"
    fi
}

# keep runs beside the server for its whole life ($$ is the server once this shell has exec'd).
keep() {
    lowered_as_replica=
    while kill -0 "$$" 2>/dev/null; do
        meet_peers
        if [ -e "$JOINED" ]; then
            forget_departed
            restore_write_bound
            reload_certificate
            sleep 2
        else
            join
            sleep 1
        fi
    done
}

certificate_sum >"${RUN_DIR}/redis-tls.sum"
# Twice forked, so that the keeper is no child of the server (see redis-start.sh).
(keep &)
echo "$$" >"${RUN_DIR}/redis.pid"
exec "$SERVER_BIN" "${RUN_DIR}/redis.conf"
