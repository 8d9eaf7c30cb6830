#!/bin/sh
# preStop of the redis container. If this pod is the master, hand the role to a replica before the
# kubelet sends SIGTERM: a planned restart then costs about a second of writes instead of
# down-after-milliseconds plus the failover.
set -eu
# shellcheck source=lib.sh
. "${TEMPLATE_DIR}/lib.sh"

# The kubelet throws away what a hook that succeeds prints. So the log lines go to the standard
# output of redis-server, which `kubectl logs` shows: redis-start.sh recorded its pid before it
# exec'd the server, and a process of the container's user may reopen its stdout through /proc
# (with or without a process namespace shared by the pod, the pid is the one this hook sees).
# Appending (>>) never truncates it, should it be a file. When it cannot be opened (redis gone),
# the lines go to the hook's own stderr.
server_stdout=/proc/$(cat "${RUN_DIR}/redis.pid" 2>/dev/null || true)/fd/1
if { true >>"$server_stdout"; } 2>/dev/null; then
    exec 2>>"$server_stdout"
fi

# The whole hook ends by DEADLINE: every redis-cli call is cut there (lib.sh), and so is every
# wait, however many peers are unreachable. Only the last call, which restores the write bound,
# runs after it. The grace period leaves room for that call and for redis's own shutdown
# (workload.go).
PRESTOP_DEADLINE_SECONDS=${PRESTOP_DEADLINE_SECONDS:-20}
DEADLINE=$(($(date +%s) + PRESTOP_DEADLINE_SECONDS))

replication=$(cli localhost "$REDIS_PORT" INFO replication)
case "$replication" in
*role:master*) ;;
*) exit 0 ;;
esac
# With no replica connected there is nobody to hand over to (all pods stopping at once, or the
# replicas already gone): waiting for a failover only delays the stop until the deadline.
if [ "$(info_field "$replication" connected_slaves)" = 0 ]; then
    log "preStop: this pod is the master but no replica is connected; stopping"
    exit 0
fi

log "preStop: this pod is the master; asking the sentinels to fail over"
# Refuse writes from now on (no master can have REPLICAS replicas): for about a second after the
# promotion this master keeps a replica and HAProxy still routes to it, and every write it took
# then was acknowledged and lost (seen with real processes). A refused write is retried instead.
required=$(cli localhost "$REDIS_PORT" CONFIG GET min-replicas-to-write | sed -n 2p)
cli localhost "$REDIS_PORT" CONFIG SET min-replicas-to-write "$REPLICAS" >/dev/null
log "preStop: $(sync_replicas 2) of $(info_field "$replication" connected_slaves) replicas have every write"
if ! request_failover "$((PRESTOP_DEADLINE_SECONDS / 2))"; then
    log "preStop: no sentinel accepted a failover; stopping anyway"
elif master=$(wait_for_other_master "$((DEADLINE - $(date +%s)))" ask-peers); then
    # The sentinels demote this server themselves. A REPLICAOF here forced a full resync and an
    # initial AOF rewrite, during which redis refuses the SIGTERM that follows the hook.
    log "preStop: ${master% *} is master now"
    # The sentinels point the other replicas at the new master, but their leader skips one it has
    # no link to, such as a replica that a rolling update restarted with a new IP moments
    # before; the new master, without a replica, then refuses every write (min-replicas-to-write)
    # until that one comes back to it: 5 to 10 s on the real node. Point them now.
    redirect_followers "${master% *}" "${master#* }"
    # Close the clients' connections: a client keeps its connection after an error reply, and
    # through HAProxy it would keep reaching this server, which refuses writes, until it exits.
    # Reconnecting, they reach the new master.
    cli localhost "$REDIS_PORT" CLIENT KILL TYPE normal >/dev/null
    cli localhost "$REDIS_PORT" CLIENT KILL TYPE pubsub >/dev/null
else
    log "preStop: no new master within ${PRESTOP_DEADLINE_SECONDS}s; stopping anyway"
fi
# Leave the write bound as it was. A server that outlived the hook kept refusing every write
# once it was made master again, while HAProxy reported it healthy (seen with real processes).
# By now the new master has the replicas, so this server, with none, still refuses writes.
unset DEADLINE
cli localhost "$REDIS_PORT" CONFIG SET min-replicas-to-write "${required:-1}" >/dev/null
