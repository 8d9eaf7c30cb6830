#!/bin/sh
# Command of the redis container. It decides the role on every start, not only on the pod's first:
# an init container does not run again when just this container restarts.
#
#  1. The sentinels (highest config-epoch > 0), else the other servers, name the current master.
#  2. If they name this very pod, it came back before down-after expired, with empty or stale
#     data: starting as master would make the replicas resync from it and lose the dataset. So it
#     first asks a sentinel to fail over, waits for the new master and starts as its replica.
#  3. Nobody knows a master: ordinal 0 bootstraps as master; other ordinals wait for it.
set -eu
# shellcheck source=lib.sh
. "${TEMPLATE_DIR}/lib.sh"

BOOTSTRAP_WAIT_SECONDS=${BOOTSTRAP_WAIT_SECONDS:-60}
FAILOVER_WAIT_SECONDS=${FAILOVER_WAIT_SECONDS:-30}
ORDINAL=${POD_NAME##*-}

master=$(current_master exclude-self)
deadline=$(($(date +%s) + BOOTSTRAP_WAIT_SECONDS))
while [ -z "$master" ] && [ "$ORDINAL" != 0 ] && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 2
    master=$(current_master exclude-self)
done

if [ "${master% *}" = "$POD_FQDN" ]; then
    log "the sentinels still name this pod as master: handing over before starting"
    request_failover "$((FAILOVER_WAIT_SECONDS / 2))" || log "no sentinel accepted a failover yet; waiting for them to act"
    if ! master=$(wait_for_other_master "$FAILOVER_WAIT_SECONDS"); then
        log "no other master after ${FAILOVER_WAIT_SECONDS}s; exiting so that the kubelet retries"
        exit 1
    fi
fi
if [ -z "$master" ] && [ "$ORDINAL" != 0 ]; then
    master="$(peer 0) $REDIS_PORT"
    log "nobody knows a master after ${BOOTSTRAP_WAIT_SECONDS}s; following ordinal 0"
fi

{
    cat "${TEMPLATE_DIR}/redis.conf"
    echo "replica-announce-ip ${POD_FQDN}"
    echo "requirepass $(quote "$REDIS_PASSWORD")"
    echo "masterauth $(quote "$REDIS_PASSWORD")"
    if [ -n "$master" ]; then
        echo "replicaof ${master}"
        echo "replica-priority 0"
    fi
} >"${RUN_DIR}/redis.conf.new"
install_config redis.conf

# become_candidate_once_synced: a replica starts with priority 0, which Sentinel never promotes,
# and gets the default priority once it has synced with its master. Sentinel promoted a replica
# half a second after it restarted, before it had synced, with only the data it had saved when it
# stopped: the writes the master took since were lost (seen in the failover lab, full restart).
# It runs beside the server and ends with it ($$ is the server once this shell has exec'd).
become_candidate_once_synced() {
    while kill -0 "$$" 2>/dev/null; do
        info=$(cli localhost "$REDIS_PORT" INFO replication)
        if [ "$(info_field "$info" master_link_status)" = up ] && [ "$(info_field "$info" master_sync_in_progress)" = 0 ]; then
            cli localhost "$REDIS_PORT" CONFIG SET replica-priority 100 >/dev/null
            log "synced with the master: a failover candidate now"
            return
        fi
        sleep 0.5
    done
}

if [ -n "$master" ]; then
    redirect_followers "${master% *}" "${master#* }"
    # Twice forked, so that the loop is no child of the server: redis-server reaps children only
    # while it has a fork of its own, and a child that ended would stay a zombie under it.
    (become_candidate_once_synced &)
    log "starting as replica of ${master}"
else
    log "nobody knows a master and this is ordinal 0: starting as master"
fi
# The preStop hook writes its log lines to this process's standard output (redis-prestop.sh).
echo "$$" >"${RUN_DIR}/redis.pid"
exec redis-server "${RUN_DIR}/redis.conf"
