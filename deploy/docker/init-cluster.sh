#!/bin/sh
# One-shot cluster initialisation for docker-compose (the `init` service).
#
# Waits for the first node's Admin service (on its Raft port, reached with
# the admin certificate given in RAMPART_CLUSTER_TLS_*), initialises the cluster with the
# members below unless it already has a membership, then waits for a leader.
# Running it again (`docker compose up` after a restart, `docker compose run
# init`) is a no-op, so the service can run on every `up`.
#
# Environment:
#   RAMPART_INIT_NODE     node to talk to (Raft addr)  [node1:7111]
#   RAMPART_INIT_MEMBERS  space-separated member specs ID=RAFT/CLIENT[/METRICS_URL]
#   RAMPART_INIT_TIMEOUT  seconds to wait for the node and for a leader [120]
set -u

NODE="${RAMPART_INIT_NODE:-node1:7111}"
MEMBERS="${RAMPART_INIT_MEMBERS:-1=node1:7111/node1:7101/http://node1:7121/metrics 2=node2:7111/node2:7101/http://node2:7121/metrics 3=node3:7111/node3:7101/http://node3:7121/metrics}"
TIMEOUT="${RAMPART_INIT_TIMEOUT:-120}"

# Prints the node's status line once it answers; fails after TIMEOUT.
wait_status() {
    waited=0
    until status=$(rampart admin status --node "$NODE" 2>/dev/null); do
        if [ "$waited" -ge "$TIMEOUT" ]; then
            echo "init: $NODE did not answer within ${TIMEOUT}s" >&2
            rampart admin status --node "$NODE" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "$status"
}

status=$(wait_status) || exit 1
case "$status" in
*'"voter_ids":[]'*)
    set --
    for member in $MEMBERS; do
        set -- "$@" --member "$member"
    done
    echo "init: initialising the cluster through $NODE"
    if ! out=$(rampart admin init --node "$NODE" "$@" 2>&1); then
        echo "$out" >&2
        case "$out" in
        *"already initialized"*) echo "init: already initialised" ;;
        *) exit 1 ;;
        esac
    else
        echo "$out"
    fi
    ;;
*)
    echo "init: already initialised: $status"
    ;;
esac

# Done once a leader is known, so that the proxy starts on a working cluster.
waited=0
while :; do
    status=$(rampart admin status --node "$NODE" 2>/dev/null) || status=""
    case "$status" in
    *'"leader_id":0,'* | "") ;;
    *)
        echo "init: ready: $status"
        exit 0
        ;;
    esac
    if [ "$waited" -ge "$TIMEOUT" ]; then
        echo "init: no leader within ${TIMEOUT}s: $status" >&2
        exit 1
    fi
    sleep 1
    waited=$((waited + 1))
done
