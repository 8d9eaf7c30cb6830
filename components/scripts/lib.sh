#!/bin/sh
# Functions of a RedisSentinel's redis and sentinel containers; sourced, never run on its own.
# shellcheck source=common.sh
. "${TEMPLATE_DIR}/common.sh"

: "${REPLICAS:?}" "${MASTER_SET:?}" "${SENTINEL_PORT:?}"

# sentinel_master: "HOST PORT" of the master that the reachable sentinels name with the highest
# config-epoch. An answer with epoch 0 is ignored: it only repeats the default of sentinel.conf.
# So is the answer of a sentinel in the middle of a failover: it names the master it is replacing
# with the new epoch already, and a pod restarted then took itself for the master again and asked
# for a second failover (seen in the failover lab).
sentinel_master() (
    best_epoch=0 best=
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        answer=$(cli "$(peer "$i")" "$SENTINEL_PORT" SENTINEL master "$MASTER_SET" | awk '
            NR % 2 == 1 { key = $0; next }
            key == "ip" { host = $0 }
            key == "port" { port = $0 }
            key == "config-epoch" { epoch = $0 }
            key == "flags" { flags = $0 }
            END { if (host != "" && epoch ~ /^[0-9]+$/ && flags !~ /failover_in_progress/) print host, port, epoch }')
        epoch=${answer##* }
        if [ -n "$answer" ] && [ "$epoch" -gt "$best_epoch" ]; then
            best_epoch=$epoch best=${answer% *}
        fi
        i=$((i + 1))
    done
    [ -n "$best" ] && echo "$best"
)

# server_master exclude-self|include-self: "HOST PORT" of the master according to the redis servers, for
# when no sentinel knows. The answers are ranked, best first:
#   1. a server that reports role:master and has replicas connected;
#   2. the master that a replica follows over a live link;
#   3. the master that a replica followed until its link went down. After a crash this names the
#      restarting pod itself, which must then hand over rather than bootstrap with empty data;
#   4. a server that reports role:master with no replica: it may be an old master left behind
#      by a failover, whose data is stale. Ranked above 3, it was followed and the replicas
#      resynced from it: the dataset was lost (seen with real processes).
# With exclude-self the pod's own server is not asked (redis-start.sh: it is not running yet).
server_master() (
    exclude=$1
    best_rank=5 best=
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        if [ "$exclude" = exclude-self ] && [ "$host" = "$POD_FQDN" ]; then
            continue
        fi
        info=$(cli "$host" "$REDIS_PORT" INFO replication)
        rank='' candidate=''
        case "$(info_field "$info" role)" in
        master)
            candidate="$host $REDIS_PORT" rank=4
            [ "$(info_field "$info" connected_slaves)" -gt 0 ] && rank=1
            ;;
        slave)
            candidate="$(info_field "$info" master_host) $(info_field "$info" master_port)" rank=3
            [ "$(info_field "$info" master_link_status)" = up ] && rank=2
            ;;
        esac
        if [ -n "$rank" ] && [ "$rank" -lt "$best_rank" ]; then
            best_rank=$rank best=$candidate
        fi
    done
    [ -n "$best" ] && echo "$best"
)

# current_master exclude-self|include-self: what the sentinels say, or failing that what the servers say;
# empty if nobody knows.
current_master() {
    sentinel_master || server_master "$1" || true
}

# request_failover SECONDS: ask one sentinel of another pod to hand the master role to a replica,
# again and again for up to SECONDS while none accepts. Only one is asked: two forced failovers at
# once could promote two different replicas. Sentinels learn the replicas from the master's INFO,
# every 10 s: until then they answer NOGOODSLAVE (in the failover lab a planned restart 2 s after
# bootstrap gave up at once and cost 37 s without writes).
request_failover() (
    deadline=$(($(date +%s) + $1))
    while :; do
        i=0
        while [ "$i" -lt "$REPLICAS" ]; do
            host=$(peer "$i")
            i=$((i + 1))
            [ "$host" != "$POD_FQDN" ] || continue
            # A sentinel in TILT mode accepts the request and acts on it only when TILT ends, up
            # to 30 s later (seen on the real node: 16.8 s without a writable master).
            if [ "$(info_field "$(cli "$host" "$SENTINEL_PORT" INFO sentinel)" sentinel_tilt)" = 1 ]; then
                log "sentinel at $host is in TILT mode: not asking it"
                continue
            fi
            reply=$(cli "$host" "$SENTINEL_PORT" SENTINEL failover "$MASTER_SET")
            case "$reply" in
            OK | *INPROG*)
                log "sentinel at $host accepted the failover ($reply)"
                return 0
                ;;
            esac
            [ -n "$reply" ] && log "sentinel at $host refused the failover: $reply"
        done
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 1
    done
)

# sync_replicas SECONDS: wait up to SECONDS until every connected replica has every write this
# master took; prints how many have. Sentinel promotes the replica that its own view (INFO, at
# most a second old) shows furthest ahead, not the one that is: a promoted replica that lagged by
# the last writes made the others resync from it, and writes that a replica had acknowledged
# (WAIT 1) were lost (seen on the real node, in a rolling update). WAIT counts the acknowledgements
# of this connection's last write; a PUBLISH, which min-replicas-to-write does not refuse, makes
# that write every write the master took before it.
sync_replicas() {
    replicas=$(info_field "$(cli localhost "$REDIS_PORT" INFO replication)" connected_slaves)
    printf 'PUBLISH redis-sentinel:handover %s\nWAIT %s %s\n' "$POD_NAME" "${replicas:-0}" "$(($1 * 1000))" |
        cli localhost "$REDIS_PORT" | tail -n 1
}

# wait_for_other_master SECONDS [ask-peers]: wait until the sentinels name a master other than
# this pod; with ask-peers, or until a peer answers that it is master: the replica that the
# sentinels promoted for this pod's handover. The sentinels name it only once their failover is
# over: they see the promotion in their next INFO of it, up to a second later, and then reconfigure
# the other replicas. Meanwhile the new master has no replica in sync and refuses writes (2.03 s
# on the real node, 0.9 s of it before the sentinels saw it). Prints "HOST PORT" of that master;
# fails when SECONDS pass first.
wait_for_other_master() (
    deadline=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if [ "${2:-}" = ask-peers ] && master=$(promoted_peer); then
            echo "$master"
            return 0
        fi
        master=$(sentinel_master || true)
        if [ -n "$master" ] && [ "${master% *}" != "$POD_FQDN" ]; then
            echo "$master"
            return 0
        fi
        # Clients wait for this loop (in the preStop): poll often; busybox and coreutils sleep
        # both take fractions.
        sleep 0.2
    done
    return 1
)

# promoted_peer: "HOST PORT" of a peer that answers that it is master.
promoted_peer() (
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        [ "$host" != "$POD_FQDN" ] || continue
        if [ "$(info_field "$(cli "$host" "$REDIS_PORT" INFO replication)" role)" = master ]; then
            echo "$host $REDIS_PORT"
            return 0
        fi
    done
    return 1
)

# redirect_followers HOST PORT: point every peer that still replicates from this pod at the
# master HOST PORT. Sentinel reconfigures only the replicas its master lists; a replica that
# followed this pod when it went down synced from it once it was back and stayed chained behind
# it, unknown to the sentinels, for good (seen in the failover lab).
redirect_followers() (
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        if [ "$host" = "$POD_FQDN" ] || [ "$host" = "$1" ]; then
            continue
        fi
        info=$(cli "$host" "$REDIS_PORT" INFO replication)
        if [ "$(info_field "$info" role)" = slave ] && [ "$(info_field "$info" master_host)" = "$POD_FQDN" ]; then
            reply=$(cli "$host" "$REDIS_PORT" REPLICAOF "$1" "$2")
            log "$host still followed this pod: pointed it at $1 ($reply)"
        fi
    done
)
