#!/usr/bin/env bash
# The restart time of a server holding a hostile organisation, against the same server without
# it (loopback only, bounded). The hostile tenant sets a high fuel and a low wall clock and
# installs tests/fixtures/plugins/spin-when-grouped.wat, which spins on every call of more than
# one moment: live, each grouped call hits the wall-clock backstop and its halves are retried.
# It then sends BATCHES batches of 50 moments; the server is killed (SIGKILL, no snapshot) and
# started again. Printed: the time from the restart to `listening`, to acme answering, and to
# the hostile organisation answering.
#
# Usage: bash scripts/hostile-restart.sh [BATCHES]   (default 4)
#        PLAUDIT_BIN_DIR=DIR to run another build's `plaudit`.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BATCHES=${1:-4}
if [[ -n ${PLAUDIT_BIN_DIR:-} ]]; then
    BIN=$PLAUDIT_BIN_DIR/plaudit
else
    cargo build --release -q --locked -p plaudit --bin plaudit
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/plaudit
fi
command -v wat2wasm >/dev/null || "$ROOT/scripts/setup.sh"
WORK=$(mktemp -d)
SERVER=
trap '[[ -n $SERVER ]] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
export PLAUDIT_ADMIN_KEY=admin-key-hostile-restart
wat2wasm tests/fixtures/plugins/spin-when-grouped.wat -o "$WORK/spin.wasm"
now_ms() { date +%s%3N; }

# Starts the server on DATA; sets SERVER, ADDR and STARTED.
start() {
    : >"$WORK/out"
    STARTED=$(now_ms)
    "$BIN" serve --data "$1" --listen 127.0.0.1:0 --demo rules --no-demo-plugins >"$WORK/out" 2>"$WORK/err" &
    SERVER=$!
    # (A build that opens every organisation before it listens takes as long as the slowest.)
    for _ in $(seq 60000); do grep -q "^listening on" "$WORK/out" && break; sleep 0.01; done
    LISTENING=$(now_ms)
    ADDR=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$WORK/out")
}

# Waits (at most 300 s) until GET PATH with KEY answers 200; prints the milliseconds since STARTED.
until_served() {
    for _ in $(seq 30000); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR$2" -H "Authorization: Bearer $1" || true)
        [[ $code == 200 ]] && { echo $(($(now_ms) - STARTED)); return; }
        sleep 0.01
    done
    echo "never"
}

run() {
    local data=$WORK/$1 hostile=$2
    start "$data"
    local acme
    acme=$(sed -n 's/^demo: organisation acme .* key \(.*\)$/\1/p' "$WORK/out")
    curl -s -XPOST "http://$ADDR/v1/orgs/acme/moments" -H "Authorization: Bearer $acme" \
        -d '{"id":"a1","stakeholder":"ann","kind":"meetup","channel":"event","at":"2026-03-02T10:00:00Z"}' >/dev/null
    local key=
    if [[ $hostile == yes ]]; then
        key=$(curl -s -XPOST "http://$ADDR/v1/orgs" -H "Authorization: Bearer $PLAUDIT_ADMIN_KEY" -d '{"id":"hostile"}' |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
        curl -s -XPUT "http://$ADDR/v1/orgs/hostile/rules" -H "Authorization: Bearer $key" -H 'Content-Type: application/toml' \
            --data-binary $'[organisation]\nid = "hostile"\n[[currency]]\nid = "points"\n[plugins]\nfuel = 1000000000\nwall_clock_ms = 20\n' >/dev/null
        curl -s -XPUT "http://$ADDR/v1/orgs/hostile/plugins/spin" -H "Authorization: Bearer $key" \
            -H 'Content-Type: application/wasm' --data-binary "@$WORK/spin.wasm" >/dev/null
        local sent=$(now_ms)
        for b in $(seq "$BATCHES"); do
            python3 -c "import json; print(json.dumps([{'id': f'h$b-{i}', 'stakeholder': f's{i % 7}', 'kind': 'meetup', 'channel': 'event', 'at': '2026-03-02T10:00:00Z'} for i in range(50)]))" |
                curl -s -XPOST "http://$ADDR/v1/orgs/hostile/moments" -H "Authorization: Bearer $key" --data-binary @- >/dev/null
        done
        echo "hostile: $BATCHES batches of 50 moments scored live in $(($(now_ms) - sent)) ms"
    fi
    kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
    start "$data"
    echo "restart ($1): listening after $((LISTENING - STARTED)) ms, acme served after $(until_served "$acme" /v1/orgs/acme/stakeholders/ann) ms"
    if [[ -n $key ]]; then
        echo "restart ($1): hostile served after $(until_served "$key" /v1/orgs/hostile/stakeholders/s0) ms"
    fi
    kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
    SERVER=
}

echo "hostile-restart: $BIN"
run plain no
run hostile yes
