#!/bin/sh
# preStop of the redis container. If this pod is the master, hand the role to a replica before the
# kubelet sends SIGTERM: a planned restart then costs about a second of writes instead of
# down-after-milliseconds plus the failover.
set -eu
# shellcheck source=lib.sh
. "${TEMPLATE_DIR}/lib.sh"

PRESTOP_WAIT_SECONDS=${PRESTOP_WAIT_SECONDS:-20}

case "$(cli localhost "$REDIS_PORT" INFO replication)" in
*role:master*) ;;
*) exit 0 ;;
esac

log "preStop: this pod is the master; asking the sentinels to fail over"
if ! request_failover; then
    log "preStop: no sentinel accepted a failover; stopping anyway"
    exit 0
fi
if master=$(wait_for_other_master "$PRESTOP_WAIT_SECONDS"); then
    log "preStop: ${master% *} is master now"
else
    log "preStop: no new master within ${PRESTOP_WAIT_SECONDS}s; stopping anyway"
fi
