#!/usr/bin/env bash
# A load test of `plaudit serve` on this machine (loopback only, bounded in time): durable
# moments/s in batches of 100 (wrk, as fast as it goes, from 4 and from 16 connections), then
# single-moment requests at a fixed rate of 5000/s and their latency (benches' `load`: wrk
# cannot hold a fixed rate).
# Usage: bash scripts/load.sh [SECONDS]   (default 10 per run)
# The server's store is the embedded one in a temp data directory, or the PostgreSQL database
# PLAUDIT_STORE names (postgres://..., passed on to the server; its database should be empty);
# PLAUDIT_STORE=private starts a private PostgreSQL 15 for the run (scripts/lib/postgres.sh).
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RUN=${1:-10}
cd "$ROOT"
source scripts/lib/load-bin.sh
load_binaries load
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA" "$OUT"' EXIT
if [[ ${PLAUDIT_STORE:-} == private ]]; then
    source scripts/lib/postgres.sh
    postgres_start
    export PLAUDIT_STORE=$PLAUDIT_TEST_POSTGRES
fi
ADMIN="load-admin-$(date +%s%N)"
PLAUDIT_ADMIN_KEY=$ADMIN "$BIN/plaudit" serve --data "$DATA" --listen 127.0.0.1:0 --demo rules/acme.toml --no-demo-plugins >"$OUT" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "^listening on" "$OUT" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$OUT")
export PLAUDIT_KEY=$(sed -n 's/^demo: organisation acme .* key \(.*\)$/\1/p' "$OUT")
# The throughput runs go far past an organisation's default records a second (the [quotas]
# defaults): lifted for acme, as an admin would for a big sender. (A build without per-organisation
# limits answers 404 and has no quota to lift.)
curl -s -o /dev/null -X PUT "http://$ADDR/v1/orgs/acme/limits" -H "Authorization: Bearer $ADMIN" \
    -d '{"records_per_second": 100000000, "records_burst": 1000000000}' || true
echo "load: server on $ADDR ($(nproc) cores shared with wrk), $SECONDS_PER_RUN s a run, store: $([[ -n ${PLAUDIT_STORE:-} ]] && echo PostgreSQL || echo embedded)"
# Few clients wait on each other's fsyncs; more of them fill each group commit.
for CONNECTIONS in 4 16; do
    echo -n "batches of 100, 1 thread, $CONNECTIONS connections:  "
    RUN=b$CONNECTIONS BATCH=100 wrk -t1 -c$CONNECTIONS -d"${SECONDS_PER_RUN}s" -s scripts/load/moments.lua "http://$ADDR" | tail -1
done
echo "single moments at a fixed 5000 requests/s, 64 connections:"
"$BIN/load" "$ADDR" "$PLAUDIT_KEY" 5000 "$SECONDS_PER_RUN" 64
