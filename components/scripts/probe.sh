#!/bin/sh
# Probes of both containers: probe.sh redis-alive | redis-ready | sentinel-alive
set -eu
# shellcheck source=lib.sh
. "${TEMPLATE_DIR}/lib.sh"

case "${1:-}" in
redis-alive)
    # A server that is loading its dataset or has lost its master is alive, not dead.
    case "$(cli localhost "$REDIS_PORT" PING)" in
    PONG | LOADING* | MASTERDOWN*) exit 0 ;;
    esac
    ;;
redis-ready)
    # Ready: the master, or a replica whose link to the master is up (its data is in sync).
    info=$(cli localhost "$REDIS_PORT" INFO replication)
    case "$info" in
    *role:master*) exit 0 ;;
    *master_link_status:up*) exit 0 ;;
    esac
    ;;
sentinel-alive)
    [ "$(cli localhost "$SENTINEL_PORT" PING)" = PONG ] && exit 0
    ;;
*)
    echo "usage: probe.sh redis-alive|redis-ready|sentinel-alive" >&2
    exit 2
    ;;
esac
exit 1
