#!/bin/sh
# Probes of a RedisCluster's redis container: cluster-probe.sh alive | ready
set -eu
# shellcheck source=cluster-lib.sh
. "${TEMPLATE_DIR}/cluster-lib.sh"

case "${1:-}" in
alive)
    # Loading its dataset, or refusing the release's password while it has no role (an empty
    # disk, cluster-start.sh), a server is alive.
    case "$(local_cli PING)" in
    PONG | LOADING* | NOAUTH* | WRONGPASS*) exit 0 ;;
    esac
    ;;
ready)
    # Ready: the node has a role (it takes the release's password), its view of the cluster is
    # ok, and it is a master or a replica whose link to its master is up (its data is in sync).
    [ "$(info_field "$(local_cli CLUSTER INFO)" cluster_state)" = ok ] || exit 1
    info=$(local_cli INFO replication)
    case "$info" in
    *role:master*) exit 0 ;;
    *master_link_status:up*) exit 0 ;;
    esac
    ;;
*)
    echo "usage: cluster-probe.sh alive|ready" >&2
    exit 2
    ;;
esac
exit 1
