#!/bin/sh
# Functions that every script of both kinds of release uses (a RedisSentinel's lib.sh and a
# RedisCluster's cluster-lib.sh source it); sourced, never run on its own.
#
# Every value comes from the environment that the StatefulSet sets, but the passwords, which are
# files of the release's Secret (see passwords). redis-cli reads a password from REDISCLI_AUTH,
# never from its command line, and every call is bounded by `timeout`, so an unreachable or
# unresolvable peer cannot hang a start, a probe or a preStop.
# BusyBox's `timeout` leaves a watcher process behind that exits a second later, an orphan: the
# pod shares one process namespace, so the pause container, its PID 1, reaps it (workload.go).

: "${POD_NAME:?}" "${POD_FQDN:?}" "${PEER_DOMAIN:?}" "${REDIS_PORT:?}" "${AUTH_DIR:?}"
: "${TEMPLATE_DIR:?}" "${RUN_DIR:?}" "${SERVER_BIN:?}" "${CLI_BIN:?}"

STATEFULSET=${POD_NAME%-*}

# TLS_FLAGS: with TLS (TLS_DIR is set), what makes redis-cli speak TLS and check the server's
# certificate against the release's CA. Used unquoted: the path holds no blank.
TLS_FLAGS=
if [ -n "${TLS_DIR:-}" ]; then
    TLS_FLAGS="--tls --cacert ${TLS_DIR}/ca.crt"
fi

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') ${POD_NAME} $*" >&2
}

# secret KEY: a file of the release's Secret, mounted at AUTH_DIR; nothing when it has no KEY.
#   password           the clients' password;
#   previous-password  while a rotation is under way, the password it replaces;
#   monitor-password   the password of the user "monitor" (HAProxy's checks, the exporter),
#                      which a rotation of the clients' password leaves alone.
# Read on every call: the kubelet updates a running pod's files when the Secret changes, within
# a minute or two, while the environment keeps what the Secret said when the container started.
# A rotation (credentials.sh) restarts no pod.
secret() {
    cat "${AUTH_DIR}/$1" 2>/dev/null || true
}

# passwords: the default user's passwords, one per line, the one to try first first: while a
# rotation is under way, the previous one, which every server accepts until the rotation's last
# step; then the current one. A caller tries the next when a server refuses one: a pod's files
# can lag behind the Secret for a while after that last step.
passwords() {
    for key in previous-password password; do
        value=$(secret "$key")
        [ -z "$value" ] || printf '%s\n' "$value"
    done
}

# peer_password: the password to give where only one can be given (masterauth, a sentinel's
# auth-pass): the first of passwords.
peer_password() {
    passwords | head -n 1
}

# password_rules: the ACL rules that give a user exactly the passwords of passwords, for ACL
# SETUSER or a user line of a config, each quoted.
password_rules() {
    printf resetpass
    passwords | while IFS= read -r value; do
        printf ' %s' "$(quote ">$value")"
    done
}

# monitor_user RULES: the user "monitor" with its password and RULES (MONITOR_RULES or
# SENTINEL_MONITOR_RULES), for ACL SETUSER or a user line of a config, after the name.
monitor_user() {
    printf 'on resetpass %s %s' "$(quote ">$(secret monitor-password)")" "$1"
}

# The users a server or sentinel has besides the default user, and what they may run:
#   MONITOR_RULES: the user "monitor" on a server: redis_exporter's documented minimum without
#     its key checks (none configured here), and QUIT, which ends HAProxy's check;
#   SENTINEL_MONITOR_RULES: the user "monitor" on a sentinel: HAProxy's check asks which pod is
#     master (Sentinel has no QUIT);
#   KEEPER_RULES: the user "keeper" on a RedisCluster's server (cluster-start.sh), whose
#     passwords are the default user's.
# shellcheck disable=SC2034 # the scripts that source this file read them
{
    MONITOR_RULES='-@all +@connection -auth -hello -echo -reset -command +client +info +config|get +memory +latency +slowlog +cluster|info +cluster|slots +cluster|nodes +quit'
    SENTINEL_MONITOR_RULES='-@all +ping +sentinel|get-master-addr-by-name'
    KEEPER_RULES='-@all +cluster|myid +cluster|nodes +client|info +ping'
}

# cli HOST PORT [ARGS...]: one redis-cli call (with no ARGS, the commands are read from standard
# input), its raw reply on stdout, nothing on failure. It authenticates as the default user with
# passwords, trying the next after a refusal, or as CLI_USER with CLI_AUTH when a caller sets
# them (a node's own join token: cluster-start.sh). A try takes at most 3 s, and ends by
# DEADLINE (seconds since the epoch) when a script sets one: past it, the call fails at once.
cli() (
    host=$1 port=$2
    shift 2
    if [ "$#" = 0 ]; then
        input=$(cat)
    fi
    # Split here, before IFS holds only a newline below.
    # shellcheck disable=SC2086 # TLS_FLAGS is words
    set -- $TLS_FLAGS "$@"
    candidates=${CLI_AUTH:-$(passwords)}
    if [ -n "${CLI_USER:-}" ]; then
        set -- --user "$CLI_USER" "$@"
    fi
    reply=
    set -f
    IFS='
'
    for REDISCLI_AUTH in $candidates; do
        export REDISCLI_AUTH
        limit=3
        if [ -n "${DEADLINE:-}" ]; then
            left=$((DEADLINE - $(date +%s)))
            [ "$left" -gt 0 ] || return 0
            [ "$left" -ge "$limit" ] || limit=$left
        fi
        reply=$(printf '%s\n' "${input:-}" | timeout "$limit" "$CLI_BIN" -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r')
        case "$reply" in
        NOAUTH* | WRONGPASS*) ;;
        *) break ;;
        esac
    done
    [ -z "$reply" ] || printf '%s\n' "$reply"
)

# certificate_sum: with TLS, a digest of the certificate's files as they are now; empty without.
# sha256sum, not cksum: Debian's BusyBox has no cksum (the real node's images showed it), and
# coreutils, BusyBox and Alpine's all have sha256sum. A digest, not the files: the start scripts
# record it in RUN_DIR, where no copy of the key belongs.
certificate_sum() {
    [ -z "${TLS_DIR:-}" ] || cat "${TLS_DIR}/tls.crt" "${TLS_DIR}/tls.key" "${TLS_DIR}/ca.crt" | sha256sum
}

# reload_certificate: make the local server load the certificate's files again if they changed
# since it last did (the start scripts record what it started with). The kubelet updates a
# mounted Secret's files in a running pod when cert-manager or `pulumi up` renews the
# certificate; redis reads them only at start and at a CONFIG SET of a tls-* setting, which
# loads all of them again. The servers' watchers call it (watch_server, keep).
reload_certificate() {
    sum=$(certificate_sum)
    [ -n "$sum" ] && [ "$sum" != "$(cat "${RUN_DIR}/redis-tls.sum" 2>/dev/null)" ] || return 0
    if [ "$(cli localhost "$REDIS_PORT" CONFIG SET tls-cert-file "${TLS_DIR}/tls.crt")" = OK ]; then
        echo "$sum" >"${RUN_DIR}/redis-tls.sum"
        log "loaded the renewed certificate"
    fi
}

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
