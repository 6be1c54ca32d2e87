#!/usr/bin/env bash
# One organisation at its quota while another keeps its latency (loopback only, bounded in time):
# single moments at a fixed rate to acme, measured by benches' `load`, first alone, then while
# wrk sends riverside batches of 100 far past the records-a-second quota an admin set for it
# (1000 records/s), then alone again: riverside's requests are refused with 429 and acme's
# latency inside the server should not move (the clients share the two cores, so their own
# figures move with the flood's CPU).
# Usage: bash scripts/load-isolation.sh [SECONDS] [RATE]   (default 10 s, 2000 requests/s)
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RUN=${1:-10}
RATE=${2:-2000}
cd "$ROOT"
source scripts/lib/load-bin.sh
load_binaries load-isolation
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA" "$OUT"' EXIT
ADMIN="isolation-admin-$(date +%s%N)"
PLAUDIT_ADMIN_KEY=$ADMIN "$BIN/plaudit" serve --data "$DATA" --listen 127.0.0.1:0 --demo rules --no-demo-plugins >"$OUT" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "^listening on" "$OUT" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$OUT")
ACME=$(sed -n 's/^demo: organisation acme .* key \(.*\)$/\1/p' "$OUT")
RIVERSIDE=$(sed -n 's/^demo: organisation riverside .* key \(.*\)$/\1/p' "$OUT")
curl -sf -o /dev/null -X PUT "http://$ADDR/v1/orgs/riverside/limits" -H "Authorization: Bearer $ADMIN" \
    -d '{"records_per_second": 1000, "records_burst": 1000}'
echo "isolation: server on $ADDR ($(nproc) cores shared with the clients), $SECONDS_PER_RUN s a run"
echo "acme alone, single moments at $RATE/s:"
"$BIN/load" "$ADDR" "$ACME" "$RATE" "$SECONDS_PER_RUN" 64
echo "acme at $RATE/s while riverside sends batches of 100 past its quota of 1000 records/s (8 connections):"
PLAUDIT_KEY=$RIVERSIDE ORG=riverside RUN=flood BATCH=100 \
    wrk -t1 -c8 -d"$((SECONDS_PER_RUN + 2))s" -s scripts/load/moments.lua "http://$ADDR" >"$OUT.wrk" 2>&1 &
FLOOD=$!
sleep 1
"$BIN/load" "$ADDR" "$ACME" "$RATE" "$SECONDS_PER_RUN" 64
wait "$FLOOD" || true
echo "acme alone again:"
"$BIN/load" "$ADDR" "$ACME" "$RATE" "$SECONDS_PER_RUN" 64
echo "riverside's flood: $(grep -E 'Requests/sec|Non-2xx' "$OUT.wrk" | tr -s ' ' | tr '\n' ' ')"
curl -s "http://$ADDR/v1/orgs/riverside/limits" -H "Authorization: Bearer $ADMIN" | tr -d '\n' | head -c 400; echo
rm -f "$OUT.wrk"
