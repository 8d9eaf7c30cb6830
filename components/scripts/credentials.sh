#!/bin/sh
# Command of the credentials Job of both kinds of release. Pulumi runs it after every change of
# the release's Secret (and of these scripts), once the StatefulSet is updated. It brings every
# running server and sentinel to the Secret's passwords, live: a rotation restarts no pod
# (README: rotating the password). Pods that start meanwhile read the Secret themselves.
#
# Two rounds over every pod:
#  1. what peers authenticate with: the user monitor's password, and masterauth, a sentinel's
#     auth-pass and sentinel-pass, set to peer_password (the previous password while a rotation
#     is under way, else the current one);
#  2. the default user's passwords (and the keeper's, in a RedisCluster): exactly those of the
#     Secret.
# Round 2 starts once round 1 reached every pod: a server that dropped the previous password
# while a peer still authenticated with it would cut that peer's replication. A pod that does not
# answer, or refuses every password, is retried until CREDENTIALS_WAIT_SECONDS; then the Job fails
# and the update stops there, naming the pods.
set -eu
# shellcheck source=common.sh
. "${TEMPLATE_DIR}/common.sh"

: "${PODS:?}" "${CREDENTIALS_WAIT_SECONDS:?}"
# SENTINEL_PORT and MASTER_SET are set for a RedisSentinel, KEEPER for a RedisCluster.
DEADLINE=$(($(date +%s) + CREDENTIALS_WAIT_SECONDS))

# commands ROUND PORT HOST: the commands of ROUND for the server or sentinel at HOST:PORT, one
# per line.
commands() {
    if [ "$2" = "${SENTINEL_PORT:-}" ]; then
        case "$1" in
        1)
            printf '%s\n' "ACL SETUSER monitor $(monitor_user "$SENTINEL_MONITOR_RULES")"
            # SENTINEL SET auth-pass drops the sentinel's links to the master and every replica,
            # and setting sentinel-pass its links to the other sentinels. This Job runs again on
            # every change of the release, during or right after a rolling update, where a
            # sentinel needs those links for a handover. Both are set together, to the peer
            # password (here and by sentinel-start.sh), so both are left alone while sentinel-pass
            # holds it already.
            if [ "$(cli "$3" "$2" SENTINEL CONFIG GET sentinel-pass | sed -n 2p)" != "$(peer_password)" ]; then
                printf '%s\n' "SENTINEL SET $MASTER_SET auth-pass $(quote "$(peer_password)")"
                printf '%s\n' "SENTINEL CONFIG SET sentinel-pass $(quote "$(peer_password)")"
            fi
            ;;
        2) printf '%s\n' "ACL SETUSER default $(password_rules)" ;;
        esac
        return
    fi
    case "$1" in
    1)
        printf '%s\n' "ACL SETUSER monitor $(monitor_user "$MONITOR_RULES")"
        printf '%s\n' "CONFIG SET masterauth $(quote "$(peer_password)")"
        ;;
    2)
        printf '%s\n' "ACL SETUSER default $(password_rules)"
        [ -z "${KEEPER:-}" ] || printf '%s\n' "ACL SETUSER keeper on $(password_rules) $KEEPER_RULES"
        ;;
    esac
}

# apply ROUND HOST PORT: whether the pod at HOST:PORT took every command of ROUND (each OK).
apply() {
    want=$(commands "$1" "$3" "$2")
    got=$(printf '%s\n' "$want" | cli "$2" "$3" | grep -c '^OK$' || true)
    [ "$got" = "$(printf '%s\n' "$want" | wc -l | tr -d ' ')" ]
}

# round ROUND: apply ROUND to every server and sentinel, retrying those that fail until DEADLINE.
round() {
    pending=
    i=0
    while [ "$i" -lt "$PODS" ]; do
        pending="$pending $(peer "$i"):$REDIS_PORT"
        [ -z "${SENTINEL_PORT:-}" ] || pending="$pending $(peer "$i"):$SENTINEL_PORT"
        i=$((i + 1))
    done
    while :; do
        left=
        for target in $pending; do
            if apply "$1" "${target%:*}" "${target##*:}"; then
                log "round $1: $target done"
            else
                left="$left $target"
            fi
        done
        pending=$left
        [ -n "$pending" ] || return 0
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            log "round $1: no answer, or every password refused, after ${CREDENTIALS_WAIT_SECONDS}s from:$pending"
            exit 1
        fi
        sleep 2
    done
}

round 1
round 2
log "every server and sentinel takes the Secret's passwords"
