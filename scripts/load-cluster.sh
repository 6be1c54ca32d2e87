#!/usr/bin/env bash
# The cluster's figures on this machine (loopback only, every run bounded): a private
# PostgreSQL 15 and three `plaudit serve` nodes on it (docs/cluster.md), against one server on
# the embedded store in the same run.
#   1. durable moments/s in batches of 100 (wrk, 16 connections): the embedded server; one
#      organisation through its owner; one through another node (forwarded); three
#      organisations on three nodes at once (one wrk each);
#   2. single moments at a fixed 2000/s (benches' `load`), through the owner and forwarded;
#   3. failover: SIGKILL the owner of an organisation, time until a moment sent to another node
#      every 50 ms is acknowledged again (ROUNDS rounds, the killed node restarted between).
# Usage: bash scripts/load-cluster.sh [SECONDS] [ROUNDS]   (defaults 10 s a run, 3 rounds)
# PLAUDIT_LEASE_MS sets the nodes' lease (default 3000).
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
LEASE_MS=${PLAUDIT_LEASE_MS:-3000}
cd "$ROOT"
source scripts/lib/load-bin.sh
load_binaries load-cluster
WORK=$(mktemp -d)
declare -A PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # KEEP_LOGS=DIR keeps the nodes' logs there.
    [[ -n ${KEEP_LOGS:-} ]] && mkdir -p "$KEEP_LOGS" && cp "$WORK"/*.log "$KEEP_LOGS"/
    rm -rf "$WORK"
}
trap stop_all EXIT
source scripts/lib/postgres.sh
postgres_start
ADMIN="load-admin-$(date +%s%N)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Nine organisations with acme's rule set: enough that every node owns one.
mkdir -p "$WORK/rules"
ORGS=(acme beta gamma delta eps zeta eta theta iota)
for org in "${ORGS[@]}"; do
    sed "s/^id = \"acme\"/id = \"$org\"/" rules/acme.toml >"$WORK/rules/$org.toml"
done

# start NAME PORT [ARGS...]: a server (a node when NAME is not "embedded").
start() {
    local name=$1 port=$2
    shift 2
    local env=(PLAUDIT_ADMIN_KEY="$ADMIN")
    [[ $name != embedded ]] && env+=(PLAUDIT_STORE="$PLAUDIT_TEST_POSTGRES" PLAUDIT_NODE="$name" PLAUDIT_LEASE_MS="$LEASE_MS")
    : >"$WORK/$name.out"
    env -u PLAUDIT_LEASE_MS "${env[@]}" "$BIN/plaudit" serve --data "$WORK/$name" --listen "127.0.0.1:$port" --no-demo-plugins "$@" \
        >>"$WORK/$name.out" 2>>"$WORK/$name.log" &
    PIDS[$name]=$!
    for _ in $(seq 300); do grep -q "^listening on" "$WORK/$name.out" 2>/dev/null && return; sleep 0.1; done
    echo "load-cluster: $name did not start"; tail "$WORK/$name.log"; exit 1
}
key_of() { sed -n "s/^demo: organisation $2 .* key \(.*\)$/\1/p" "$WORK/$1.out" | tail -1; }
lift() { # lift ADDR ORG: an organisation's records a second, as an admin would for a big sender
    curl -s -o /dev/null -w '%{http_code}' -X PUT "http://$1/v1/orgs/$2/limits" -H "Authorization: Bearer $ADMIN" \
        -d '{"records_per_second": 100000000, "records_burst": 1000000000}'
}
batches() { # batches ADDR ORG KEY RUN: wrk's last line
    ORG=$2 PLAUDIT_KEY=$3 RUN=$4 BATCH=100 wrk -t1 -c16 -d"${SECONDS_PER_RUN}s" -s scripts/load/moments.lua "http://$1" | tail -1
}

echo "load-cluster: $(nproc) cores shared by PostgreSQL, the nodes and the load generators; $SECONDS_PER_RUN s a run"
EMBEDDED_PORT=$(free_port)
start embedded "$EMBEDDED_PORT" --demo "$WORK/rules/acme.toml"
[[ $(lift "127.0.0.1:$EMBEDDED_PORT" acme) == 200 ]] || { echo "load-cluster: cannot lift acme's limits"; exit 1; }
echo -n "embedded store, one server, batches of 100:           "
batches "127.0.0.1:$EMBEDDED_PORT" acme "$(key_of embedded acme)" e
echo "embedded store, single moments at 2000/s:"
ORG=acme "$BIN/load" "127.0.0.1:$EMBEDDED_PORT" "$(key_of embedded acme)" 2000 "$SECONDS_PER_RUN" 64 | sed 's/^/  /'
kill "${PIDS[embedded]}"; wait "${PIDS[embedded]}" 2>/dev/null || true; unset 'PIDS[embedded]'

declare -A PORT=()
for n in n1 n2 n3; do PORT[$n]=$(free_port); done
start n1 "${PORT[n1]}" --demo "$WORK/rules"
start n2 "${PORT[n2]}"
start n3 "${PORT[n3]}"
declare -A KEY=()
for org in "${ORGS[@]}"; do KEY[$org]=$(key_of n1 "$org"); done
# Until every organisation is served by the node it is placed on.
owners() {
    curl -s -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${PORT[n1]}/v1/cluster" | python3 -c '
import json, sys
v = json.load(sys.stdin)
placed = {p["org"]: p["node"] for p in v["placement"]}
held = {l["org"]: l["node"] for l in v["leases"] if l["expires_in_ms"] > 0}
live = sum(1 for n in v["nodes"] if n["live"])
settled = live == 3 and len(set(placed.values())) == 3 and placed == held
print(" ".join(f"{o}={n}" for o, n in sorted(held.items())) if settled else "")'
}
for _ in $(seq 100); do OWNERS=$(owners); [[ -n $OWNERS ]] && break; sleep 0.2; done
[[ -n $OWNERS ]] || { echo "load-cluster: the organisations did not settle"; exit 1; }
# Once settled: a limit set while its organisation moves is answered 503, and not set.
for org in "${ORGS[@]}"; do
    [[ $(lift "127.0.0.1:${PORT[n1]}" "$org") == 200 ]] || { echo "load-cluster: cannot lift $org's limits"; exit 1; }
done
echo "cluster of 3 nodes, lease $LEASE_MS ms; owners: $OWNERS"
owner_of() { tr ' ' '\n' <<<"$OWNERS" | sed -n "s/^$1=//p"; }
other_than() { for n in n1 n2 n3; do [[ $n != "$1" ]] && { echo "$n"; return; }; done; }
A_OWNER=$(owner_of acme)
A_OTHER=$(other_than "$A_OWNER")
echo -n "PostgreSQL, one organisation through its owner:       "
batches "127.0.0.1:${PORT[$A_OWNER]}" acme "${KEY[acme]}" c1
echo -n "PostgreSQL, one organisation through another node:    "
batches "127.0.0.1:${PORT[$A_OTHER]}" acme "${KEY[acme]}" c2
# One organisation per node, each through its owner, all at once.
SPREAD=()
for n in n1 n2 n3; do
    org=$(tr ' ' '\n' <<<"$OWNERS" | sed -n "s/=$n$//p" | head -1)
    [[ -n $org ]] && SPREAD+=("$n:$org")
done
WRK=()
for pair in "${SPREAD[@]}"; do
    n=${pair%%:*} org=${pair#*:}
    batches "127.0.0.1:${PORT[$n]}" "$org" "${KEY[$org]}" "s$n" >"$WORK/spread-$n.txt" &
    WRK+=($!)
done
wait "${WRK[@]}"
TOTAL=0
for pair in "${SPREAD[@]}"; do
    n=${pair%%:*}
    line=$(cat "$WORK/spread-$n.txt")
    echo "  ${pair}: $line"
    TOTAL=$((TOTAL + $(sed -n 's/.*moments\/s \([0-9]*\).*/\1/p' <<<"$line")))
done
echo "PostgreSQL, ${#SPREAD[@]} organisations on ${#SPREAD[@]} nodes at once:        moments/s $TOTAL in all"
echo "PostgreSQL, single moments at 2000/s through the owner:"
ORG=acme "$BIN/load" "127.0.0.1:${PORT[$A_OWNER]}" "${KEY[acme]}" 2000 "$SECONDS_PER_RUN" 64 | sed 's/^/  /'
echo "PostgreSQL, single moments at 2000/s through another node (forwarded):"
ORG=acme "$BIN/load" "127.0.0.1:${PORT[$A_OTHER]}" "${KEY[acme]}" 2000 "$SECONDS_PER_RUN" 64 | sed 's/^/  /'

# Failover: kill acme's owner, post to another node every 50 ms until one is acknowledged.
for round in $(seq "$ROUNDS"); do
    owner=""
    for _ in $(seq 100); do
        owner=$(curl -s -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${PORT[n1]}/v1/cluster" | python3 -c '
import json, sys
print(next((l["node"] for l in json.load(sys.stdin)["leases"] if l["org"] == "acme" and l["expires_in_ms"] > 0), ""))' || true)
        [[ -n $owner ]] && break
        sleep 0.2
    done
    [[ -n $owner ]] || { echo "load-cluster: acme has no owner"; exit 1; }
    ask=$(other_than "$owner")
    kill -9 "${PIDS[$owner]}"; wait "${PIDS[$owner]}" 2>/dev/null || true
    took=$(python3 - "127.0.0.1:${PORT[$ask]}" "${KEY[acme]}" "$round" <<'EOF'
import json, sys, time, urllib.request, urllib.error
addr, key, round_ = sys.argv[1], sys.argv[2], sys.argv[3]
start, i = time.monotonic(), 0
while time.monotonic() - start < 120:
    i += 1
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = json.dumps([{"id": f"failover-{round_}-{i}-{time.time_ns()}", "stakeholder": "s1", "kind": "answer", "channel": "forum", "at": at}]).encode()
    req = urllib.request.Request(f"http://{addr}/v1/orgs/acme/moments", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status == 201:
                print(f"{time.monotonic() - start:.2f}")
                sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(0.05)
print("none")
EOF
)
    opened=$(grep -h 'organisation open org="\?acme"\? ' "$WORK"/n?.log | sort | tail -1 | sed -n 's/.* ms=\([0-9]*\).*/\1/p')
    echo "failover round $round: killed $owner (acme's owner); acme acknowledged a moment through $ask again after $took s (its open took ${opened:-?} ms)"
    start "$owner" "${PORT[$owner]}"
    sleep 2
done
