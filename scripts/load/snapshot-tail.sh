#!/usr/bin/env bash
# The fixed-rate latency while snapshots are written: a fresh server taking one every EVERY
# records, fed batches of 100 from 16 connections for 8 s (about 0.5-1 M moments of history),
# then single moments at a fixed 5000/s for 10 s, so that a snapshot lands about every 4 s of
# the fixed-rate phase (the default, one every 1 M records, rarely meets it). Prints the
# fixed-rate latency and the server's last snapshot lines. EVERY=0: snapshots off.
# Usage: bash scripts/load/snapshot-tail.sh [EVERY] [PLAUDIT_BINARY]   (default 20000, the build's)
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
EVERY=${1:-20000}
command -v wrk >/dev/null || { echo "snapshot-tail: installing wrk"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p plaudit -p plaudit-benches --bin plaudit --bin load
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
PLAUDIT=${2:-$BIN/plaudit}
DATA=$(mktemp -d)
OUT=$(mktemp)
CONFIG=$(mktemp --suffix .toml)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA" "$OUT" "$CONFIG"' EXIT
echo "snapshot_every = $EVERY" >"$CONFIG"
"$PLAUDIT" serve --config "$CONFIG" --data "$DATA" --listen 127.0.0.1:0 --demo rules/acme.toml --no-demo-plugins >"$OUT" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "^listening on" "$OUT" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$OUT")
export PLAUDIT_KEY=$(sed -n 's/^demo: organisation acme .* key \(.*\)$/\1/p' "$OUT")
echo -n "history: batches of 100 for 8 s, 16 connections: "
RUN=t$RANDOM BATCH=100 wrk -t1 -c16 -d8s -s scripts/load/moments.lua "http://$ADDR" | tail -1
sleep 2
echo "single moments at a fixed 5000 requests/s, 64 connections, a snapshot every $EVERY records:"
"$BIN/load" "$ADDR" "$PLAUDIT_KEY" 5000 10 64
grep -o "snapshot stored.*" "$OUT" | tail -3 || true
