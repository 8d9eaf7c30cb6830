#!/bin/sh
# Functions that every script of both kinds of release uses (a RedisSentinel's lib.sh and a
# RedisCluster's cluster-lib.sh source it); sourced, never run on its own.
#
# Every value comes from the environment that the StatefulSet sets. The password is read by
# redis-cli from REDISCLI_AUTH, never passed on a command line, and every call is bounded by
# `timeout`, so an unreachable or unresolvable peer cannot hang a start, a probe or a preStop.
# BusyBox's `timeout` leaves a watcher process behind that exits a second later, an orphan: the
# pod shares one process namespace, so the pause container, its PID 1, reaps it (workload.go).

: "${POD_NAME:?}" "${POD_FQDN:?}" "${PEER_DOMAIN:?}" "${REDIS_PORT:?}" "${REDISCLI_AUTH:?}"
: "${TEMPLATE_DIR:?}" "${RUN_DIR:?}" "${SERVER_BIN:?}" "${CLI_BIN:?}"

STATEFULSET=${POD_NAME%-*}

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') ${POD_NAME} $*" >&2
}

# cli HOST PORT ARGS...: one redis-cli call, its raw reply on stdout, nothing on failure. A call
# takes at most 3 s, and ends by DEADLINE (seconds since the epoch) when a script sets one: past
# it, the call fails at once.
cli() (
    host=$1 port=$2
    shift 2
    limit=3
    if [ -n "${DEADLINE:-}" ]; then
        left=$((DEADLINE - $(date +%s)))
        [ "$left" -gt 0 ] || return 0
        [ "$left" -ge "$limit" ] || limit=$left
    fi
    timeout "$limit" "$CLI_BIN" -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r'
)

# peer ORDINAL: the stable DNS name of pod ORDINAL of this StatefulSet.
peer() {
    echo "${STATEFULSET}-$1.${PEER_DOMAIN}"
}

# info_field INFO KEY: the value of KEY in the text of an INFO reply.
info_field() {
    echo "$1" | sed -n "s/^$2://p"
}

# quote VALUE: VALUE as a double-quoted redis/sentinel config string.
quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}

# install_config NAME: move RUN_DIR/NAME.new into place atomically.
install_config() {
    mv "${RUN_DIR}/$1.new" "${RUN_DIR}/$1"
}
