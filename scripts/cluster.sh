#!/usr/bin/env bash
# A cluster to try on one machine: a private PostgreSQL 15 (scripts/lib/postgres.sh) and N
# `plaudit serve` nodes (release build) sharing it, each with its own data folder, on loopback
# ports; the demo organisations created through the admin API with the rule sets of rules/;
# what to reach and the keys printed; everything stopped on Ctrl-C (the nodes with SIGTERM, so
# they hand their organisations off, then PostgreSQL, its folder removed).
#
#   bash scripts/cluster.sh [--nodes N] [--port FIRST] [--lease-ms MS]
#
#   --nodes N      nodes to start (default 3), named n1..nN
#   --port FIRST   node i listens on 127.0.0.1:FIRST+i-1 (default 8081)
#   --lease-ms MS  how long an organisation's lease lives without renewal (default 3000)
#
# PLAUDIT_BIN=path/to/plaudit uses that binary instead of building one; PLAUDIT_ADMIN_KEY sets
# the admin key (one is made otherwise). Try a failover: kill -9 the owner of an organisation
# (GET /v1/cluster names it) and ask another node for it.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

NODES=3
FIRST_PORT=8081
LEASE_MS=3000
while (($#)); do
    case $1 in
        --nodes) NODES=$2; shift 2 ;;
        --port) FIRST_PORT=$2; shift 2 ;;
        --lease-ms) LEASE_MS=$2; shift 2 ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "cluster: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $NODES =~ ^[1-9][0-9]?$ ]] || { echo "cluster: --nodes takes 1 to 99" >&2; exit 2; }
[[ $FIRST_PORT =~ ^[0-9]+$ ]] && ((FIRST_PORT >= 1024 && FIRST_PORT + NODES <= 65535)) \
    || { echo "cluster: --port takes 1024 to $((65535 - NODES))" >&2; exit 2; }
for ((i = 0; i < NODES; i++)); do
    port=$((FIRST_PORT + i))
    if python3 -c "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $port)); s.listen()" 2>/dev/null; then :; else
        echo "cluster: port $port is taken (give --port FIRST)" >&2
        exit 1
    fi
done

if [[ -n ${PLAUDIT_BIN:-} ]]; then
    PLAUDIT=$PLAUDIT_BIN
else
    echo "cluster: building plaudit (release)"
    cargo build --release --locked -q -p plaudit --bin plaudit
    PLAUDIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/plaudit
fi
for rules in rules/*.toml; do
    "$PLAUDIT" check "$rules" >/dev/null
done

WORK=$(mktemp -d /tmp/plaudit-cluster.XXXXXX)
PIDS=()
stop_nodes() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Bounded: a node that has not handed off in 30 s is killed.
    for _ in $(seq 300); do
        local running=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
        ((running)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
# Set before postgres_start, whose EXIT trap runs after this one: the nodes stop first.
trap stop_nodes EXIT
trap 'echo; echo "cluster: stopping"; exit 0' INT TERM
# shellcheck source=lib/postgres.sh
source "$ROOT/scripts/lib/postgres.sh"
postgres_start
"$POSTGRES_BIN/psql" "$PLAUDIT_TEST_POSTGRES" -q -c "CREATE DATABASE plaudit_cluster" >/dev/null
STORE=${PLAUDIT_TEST_POSTGRES%/*}/plaudit_cluster

if [[ -z ${PLAUDIT_ADMIN_KEY:-} ]]; then
    PLAUDIT_ADMIN_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
cat >"$WORK/node.toml" <<'TOML'
# The demo's moments may be of any date in the last year.
[moments]
max_age_seconds = 31536000
TOML

for ((i = 1; i <= NODES; i++)); do
    port=$((FIRST_PORT + i - 1))
    mkdir -p "$WORK/n$i"
    PLAUDIT_STORE=$STORE PLAUDIT_NODE=n$i PLAUDIT_ADVERTISE=http://127.0.0.1:$port PLAUDIT_LEASE_MS=$LEASE_MS \
        PLAUDIT_ADMIN_KEY=$PLAUDIT_ADMIN_KEY \
        "$PLAUDIT" serve --data "$WORK/n$i/data" --listen "127.0.0.1:$port" --config "$WORK/node.toml" >"$WORK/n$i/log" 2>&1 &
    PIDS+=($!)
done
for ((i = 1; i <= NODES; i++)); do
    for _ in $(seq 600); do
        grep -q "^listening on" "$WORK/n$i/log" && break
        kill -0 "${PIDS[i - 1]}" 2>/dev/null || { tail -30 "$WORK/n$i/log" >&2; echo "cluster: node n$i stopped" >&2; exit 1; }
        sleep 0.1
    done
    grep -q "^listening on" "$WORK/n$i/log" || { tail -30 "$WORK/n$i/log" >&2; echo "cluster: node n$i is not listening after 60 s" >&2; exit 1; }
done
echo "cluster: $NODES nodes on PostgreSQL ($STORE), lease $LEASE_MS ms"

# An HTTP call to node 1, retried while the cluster settles (503): "STATUS BODY" on stdout.
call() {
    python3 - "$@" <<'PY'
import sys, time, urllib.request, urllib.error
method, url, key, ctype, body = sys.argv[1:6]
data = body.encode() if body else None
end = time.time() + 60
while True:
    req = urllib.request.Request(url, method=method, data=data, headers={"Authorization": "Bearer " + key, "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            print(r.status, r.read().decode()); break
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        if e.code not in (429, 503) or time.time() > end:
            print(e.code, text); sys.exit(1)
    except OSError as e:
        if time.time() > end:
            print("none", e); sys.exit(1)
    time.sleep(0.3)
PY
}

NODE1=http://127.0.0.1:$FIRST_PORT
KEYS=()
for rules in rules/*.toml; do
    org=$(sed -n '/^\[organisation\]/,/^\[/ s/^id *= *"\(.*\)"/\1/p' "$rules" | head -1)
    zone=$(sed -n '/^\[organisation\]/,/^\[/ s/^timezone *= *"\(.*\)"/\1/p' "$rules" | head -1)
    created=$(call POST "$NODE1/v1/orgs" "$PLAUDIT_ADMIN_KEY" application/json "{\"id\": \"$org\", \"timezone\": \"${zone:-UTC}\"}") \
        || { echo "cluster: creating $org: $created" >&2; exit 1; }
    key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1].split(" ", 1)[1])["key"])' "$created")
    published=$(call PUT "$NODE1/v1/orgs/$org/rules" "$key" application/toml "$(cat "$rules")") \
        || { echo "cluster: publishing $rules for $org: $published" >&2; exit 1; }
    KEYS+=("$org $key")
done

echo
echo "nodes (each answers for every organisation, forwarding to its owner; logs in $WORK/nI/log):"
for ((i = 1; i <= NODES; i++)); do
    echo "  n$i  http://127.0.0.1:$((FIRST_PORT + i - 1))  pid ${PIDS[i - 1]}  (console: http://127.0.0.1:$((FIRST_PORT + i - 1))/console/)"
done
echo "admin key: $PLAUDIT_ADMIN_KEY"
echo "organisations:"
for line in "${KEYS[@]}"; do echo "  ${line% *}  key ${line#* }"; done
ACME_KEY=$(printf '%s\n' "${KEYS[@]}" | sed -n 's/^acme //p')
cat <<TRY

Try it:
  curl -s $NODE1/v1/cluster -H "Authorization: Bearer $PLAUDIT_ADMIN_KEY"        # nodes, leases, placement
  curl -si -XPOST http://127.0.0.1:$((FIRST_PORT + NODES - 1))/v1/orgs/acme/moments -H "Authorization: Bearer $ACME_KEY" \\
    -d '{"id": "hello-1", "stakeholder": "ann", "counterpart": "bob", "kind": "meetup", "channel": "event", "at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}'
                                                            # x-plaudit-node names the owner that answered
  kill -9 PID-OF-THE-OWNER                                  # another node takes its organisations within the lease
  PLAUDIT_STORE=$STORE $PLAUDIT replay --data $WORK/replay --org acme --summary --from-start | head

Ctrl-C stops the nodes and PostgreSQL.
TRY
# Until Ctrl-C, or until every node has stopped.
wait "${PIDS[@]}" || true
echo "cluster: every node stopped"
