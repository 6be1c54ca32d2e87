#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis (from PyPI) against the served OpenAPI description of
# a real `plaudit serve` with the demo organisations, on a scratch data directory and a free
# loopback port. Fails on any 5xx, any response the description does not allow, any request
# that breaks the description yet is accepted.
#
#   bash scripts/api-fuzz.sh            # 120 s of generated requests (API_FUZZ_SECONDS)
#   API_FUZZ_SECONDS=600 bash scripts/api-fuzz.sh
#
# Installs python3-venv (apt) and schemathesis (pip, pinned) into the target directory once.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_BUDGET=${API_FUZZ_SECONDS:-120}
SCHEMATHESIS_VERSION=4.32.5
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV="$TARGET/schemathesis-$SCHEMATHESIS_VERSION"

if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    echo "api-fuzz: installing python3-venv"
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq python3-venv >/dev/null; else sudo apt-get install -y -qq python3-venv >/dev/null; fi
fi
if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "api-fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q --locked -p plaudit --bin plaudit
BIN="$TARGET/debug/plaudit"
DATA=$(mktemp -d)
LOG="$DATA/server.log"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PLAUDIT_ADMIN_KEY="admin-key-fuzz-$(date +%s%N)"
"$BIN" serve --data "$DATA/store" --listen "127.0.0.1:$PORT" --demo "$ROOT/rules/acme.toml" --no-demo-plugins >"$LOG" 2>&1 &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
    grep -q "^listening on" "$LOG" && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$LOG"; echo "api-fuzz: the server stopped" >&2; exit 1; }
    sleep 0.1
done
grep -q "^listening on" "$LOG" || { cat "$LOG"; echo "api-fuzz: the server did not start listening" >&2; exit 1; }
PLAUDIT_KEY=$(sed -n 's/.*demo: organisation acme .*key \([^ ]*\).*/\1/p' "$LOG" | head -1)
[ -n "$PLAUDIT_KEY" ] || { cat "$LOG"; echo "api-fuzz: no demo key in the server's output" >&2; exit 1; }
export PLAUDIT_KEY

echo "api-fuzz: schemathesis for ${SECONDS_BUDGET}s against http://127.0.0.1:$PORT/openapi.json"
cd "$ROOT/tests/schemathesis"
status=0
SCHEMATHESIS_HOOKS=hooks "$VENV/bin/schemathesis" --config-file schemathesis.toml run \
    "http://127.0.0.1:$PORT/openapi.json" --max-time "$SECONDS_BUDGET" -w 2 --no-color || status=$?
if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "api-fuzz: the server died during the run" >&2
    tail -50 "$LOG" >&2
    exit 1
fi
if grep -q "panicked" "$LOG"; then
    echo "api-fuzz: the server panicked" >&2
    grep -A5 "panicked" "$LOG" >&2
    exit 1
fi
exit "$status"
