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
source "$ROOT/scripts/lib/demo-server.sh"
demo_server_start "$BIN" --no-demo-plugins

echo "api-fuzz: schemathesis for ${SECONDS_BUDGET}s against $DEMO_URL/openapi.json"
cd "$ROOT/tests/schemathesis"
status=0
SCHEMATHESIS_HOOKS=hooks "$VENV/bin/schemathesis" --config-file schemathesis.toml run \
    "$DEMO_URL/openapi.json" --max-time "$SECONDS_BUDGET" -w 2 --no-color || status=$?
demo_server_check api-fuzz
exit "$status"
