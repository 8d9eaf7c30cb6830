#!/bin/sh
# Command of the redis container. It decides the role on every start, not only on the pod's first:
# an init container does not run again when just this container restarts.
#
#  1. The sentinels (highest config-epoch > 0), else the other servers, name the current master.
#  2. If they name this very pod, it came back before down-after expired, with empty or stale
#     data: starting as master would make the replicas resync from it and lose the dataset. So it
#     first asks a sentinel to fail over, waits for the new master and starts as its replica.
#  3. Nobody knows a master (every pod restarted at once): the pod whose data volume says it was
#     the master bootstraps as master, and the others wait for it. The data volume of a new
#     release says nothing: then ordinal 0 bootstraps, and the others wait for it.
set -eu
# shellcheck source=lib.sh
. "${TEMPLATE_DIR}/lib.sh"

BOOTSTRAP_WAIT_SECONDS=${BOOTSTRAP_WAIT_SECONDS:-60}
FAILOVER_WAIT_SECONDS=${FAILOVER_WAIT_SECONDS:-30}
ORDINAL=${POD_NAME##*-}
# "HOST PORT" of the master that this pod's data followed when it last ran (itself when it was the
# master), kept up to date by watch_server below. It outlives the pod with the data (when
# persistence is on), which is what step 3 needs: after a full restart nobody else remembers, and
# a pod that was a replica may hold stale data (it was down, or resyncing, while the master took
# writes). Bootstrapping from it made the others resync from it and lose those writes (seen in
# the failover lab).
RECORD=${DATA_DIR}/master
recorded=$(cat "$RECORD" 2>/dev/null || true)

# may_bootstrap: whether this pod may start as master when nobody knows one.
may_bootstrap() {
    if [ -n "$recorded" ]; then
        [ "${recorded% *}" = "$POD_FQDN" ]
    else
        [ "$ORDINAL" = 0 ]
    fi
}

master=$(current_master exclude-self)
deadline=$(($(date +%s) + BOOTSTRAP_WAIT_SECONDS))
while [ -z "$master" ] && ! may_bootstrap && [ "$(date +%s)" -lt "$deadline" ]; do
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
if [ -z "$master" ] && ! may_bootstrap; then
    master=${recorded:-"$(peer 0) $REDIS_PORT"}
    log "nobody knows a master after ${BOOTSTRAP_WAIT_SECONDS}s; following ${master% *}, which this pod's data last followed (or ordinal 0)"
fi

{
    cat "${TEMPLATE_DIR}/redis.conf"
    echo "replica-announce-ip ${POD_FQDN}"
    echo "user default on $(password_rules) ~* &* +@all"
    echo "user monitor $(monitor_user "$MONITOR_RULES")"
    echo "masterauth $(quote "$(peer_password)")"
    if [ -n "$master" ]; then
        echo "replicaof ${master}"
        echo "replica-priority 0"
    fi
} >"${RUN_DIR}/redis.conf.new"
install_config redis.conf

# record HOST PORT: what RECORD says from now on; written only when it changes.
record() {
    if [ "$1" != "$recorded" ]; then
        echo "$1" >"${RECORD}.new"
        mv "${RECORD}.new" "$RECORD"
        recorded=$1
    fi
}

# watch_server runs beside the server for its whole life ($$ is the server once this shell has
# exec'd) and does two things:
#  - A replica starts with priority 0, which Sentinel never promotes, and gets the default priority
#    once it has synced with its master. Sentinel promoted a replica half a second after it
#    restarted, before it had synced, with only the data it had saved when it stopped: the writes
#    the master took since were lost (seen in the failover lab, full restart).
#  - It keeps RECORD naming the master this server follows, or this pod while it is the master.
#  - With TLS, it has the server load a renewed certificate (reload_certificate).
watch_server() {
    candidate=yes
    [ -z "$master" ] || candidate=no
    while kill -0 "$$" 2>/dev/null; do
        info=$(cli localhost "$REDIS_PORT" INFO replication)
        case "$(info_field "$info" role)" in
        master) record "$POD_FQDN $REDIS_PORT" ;;
        slave) record "$(info_field "$info" master_host) $(info_field "$info" master_port)" ;;
        esac
        if [ "$candidate" = no ] && [ "$(info_field "$info" master_link_status)" = up ] && [ "$(info_field "$info" master_sync_in_progress)" = 0 ]; then
            cli localhost "$REDIS_PORT" CONFIG SET replica-priority 100 >/dev/null
            log "synced with the master: a failover candidate now"
            candidate=yes
        fi
        reload_certificate
        if [ "$candidate" = yes ]; then sleep 1; else sleep 0.5; fi
    done
}

if [ -n "$master" ]; then
    redirect_followers "${master% *}" "${master#* }"
    log "starting as replica of ${master}"
    record "$master"
else
    log "nobody knows a master and this pod may bootstrap: starting as master"
    record "$POD_FQDN $REDIS_PORT"
fi
# What the server starts with, before it starts: a renewal from here on is loaded again.
certificate_sum >"${RUN_DIR}/redis-tls.sum"
# Twice forked, so that the watcher is no child of the server: redis-server reaps children only
# while it has a fork of its own, and a child that ended would stay a zombie under it.
(watch_server &)
# The preStop hook writes its log lines to this process's standard output (redis-prestop.sh).
echo "$$" >"${RUN_DIR}/redis.pid"
exec "$SERVER_BIN" "${RUN_DIR}/redis.conf"
