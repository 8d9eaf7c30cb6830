#!/bin/sh
# Command of the sentinel container. The ConfigMap's sentinel.conf monitors ordinal 0; a sentinel
# that starts with that default would answer a stale master until its peers correct it (and if all
# sentinels restart at once, forever). So the monitor line is pointed at the master that the peers
# or servers report, and the pod announces its DNS name, not its IP, which changes.
set -eu
# shellcheck source=lib.sh
. "${TEMPLATE_DIR}/lib.sh"

# Nobody knows a master while every pod starts at once: the redis containers settle it among
# themselves (redis-start.sh: the pod whose data was the master's), so ask again until a server
# says which. Ordinal 0, the master of a new release, is only the last resort: monitoring it when
# another pod became master would leave the sentinels watching a replica.
master=$(current_master include-self)
i=0
until [ -n "$master" ] || [ "$i" -ge 30 ]; do
    sleep 1
    i=$((i + 1))
    master=$(current_master include-self)
done
if [ -z "$master" ]; then
    master="$(peer 0) $REDIS_PORT"
fi

# Sentinel resolves the monitored host when it loads its config and exits if it cannot:
# give a pod that is still being scheduled a moment to appear in DNS.
i=0
until [ -n "$(cli "${master% *}" "${master#* }" PING)" ] || [ "$i" -ge 30 ]; do
    sleep 1
    i=$((i + 1))
done

awk -v host="${master% *}" -v port="${master#* }" \
    '$1 == "sentinel" && $2 == "monitor" { $4 = host; $5 = port } { print }' \
    "${TEMPLATE_DIR}/sentinel.conf" >"${RUN_DIR}/sentinel.conf.new"
{
    # Every other pod is named a replica, up or not (Sentinel retries a name that does not resolve
    # yet, unlike the monitored master's). A restarted sentinel otherwise knows only the replicas
    # the master reported in an INFO, which it asks for every 10 s: it would never find (and
    # demote) an old master that a failover left behind still saying role:master, and when all
    # pods restart at once and the master dies before that INFO, it can never fail over (seen
    # in the failover lab: the restarted master waited for a failover that never came).
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        if [ "$host" != "${master% *}" ]; then
            echo "sentinel known-replica ${MASTER_SET} ${host} ${REDIS_PORT}"
        fi
    done
    echo "sentinel announce-ip ${POD_FQDN}"
    echo "sentinel announce-port ${SENTINEL_PORT}"
    # sentinel-pass: what it authenticates to the other sentinels with.
    echo "sentinel auth-pass ${MASTER_SET} $(quote "$(peer_password)")"
    echo "sentinel sentinel-pass $(quote "$(peer_password)")"
    echo "user default on $(password_rules) ~* &* +@all"
    echo "user monitor $(monitor_user "$SENTINEL_MONITOR_RULES")"
} >>"${RUN_DIR}/sentinel.conf.new"
install_config sentinel.conf

# others_answer: whether the sentinel of every other pod answers.
others_answer() (
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        host=$(peer "$i")
        i=$((i + 1))
        if [ "$host" != "$POD_FQDN" ] && [ "$(cli "$host" "$SENTINEL_PORT" PING)" != PONG ]; then
            return 1
        fi
    done
)

# watch_certificate runs beside the sentinel for its whole life ($$ is the sentinel once this shell
# has exec'd). With TLS, it restarts the sentinel once the certificate was renewed: unlike a redis
# server (reload_certificate), a sentinel cannot load it again while it runs. One sentinel at a
# time, so that a quorum goes on naming the master (HAProxy routes only to a master a quorum
# names): this pod's waits ORDINAL x CERTIFICATE_RESTART_STAGGER_SECONDS after it saw the renewal
# (the kubelet updates each pod's files within a minute or two of the others), and until every
# other sentinel answers. The old certificate stays valid meanwhile: a renewal comes well before
# its end (TLSArgs).
watch_certificate() {
    started=$1 seen=
    while kill -0 "$$" 2>/dev/null; do
        sleep 5
        [ "$(certificate_sum)" != "$started" ] || continue
        now=$(date +%s)
        if [ -z "$seen" ]; then
            seen=$now
            log "the certificate was renewed: the sentinel restarts in its turn"
        fi
        if [ "$((now - seen))" -ge "$((${POD_NAME##*-} * CERTIFICATE_RESTART_STAGGER_SECONDS))" ] && others_answer; then
            log "restarting the sentinel to load the renewed certificate"
            cli localhost "$SENTINEL_PORT" SHUTDOWN >/dev/null
            return
        fi
    done
}

CERTIFICATE_RESTART_STAGGER_SECONDS=${CERTIFICATE_RESTART_STAGGER_SECONDS:-60}
if [ -n "${TLS_DIR:-}" ]; then
    # What the sentinel starts with, before it starts. Twice forked, as redis-start.sh's watcher.
    (watch_certificate "$(certificate_sum)" &)
fi
log "sentinel starts monitoring ${master}"
exec "$SERVER_BIN" "${RUN_DIR}/sentinel.conf" --sentinel
