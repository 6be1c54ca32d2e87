#!/usr/bin/env bash
# Clients nobody here wrote, generated from the served description and used against a real
# `plaudit serve` (the demo organisations): a Python client (openapi-python-client, from PyPI)
# and a TypeScript one (openapi-typescript with openapi-fetch, from npm, type-checked by tsc).
# Each sends a batch, reads a profile, a leaderboard and the feed through typed fields, reads
# the rule set as JSON and simulates a change of it. Generation must not drop an operation.
#
#   bash tests/clients/run.sh
#
# Installs python3-venv (apt), the generator (pip, pinned) and the npm packages (package-lock)
# under the target directory once.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
GENERATOR=openapi-python-client==0.29.1
VENV="$TARGET/clients-python"
NODE_DIR="$TARGET/clients-ts"

if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    echo "clients: installing python3-venv"
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq python3-venv >/dev/null; else sudo apt-get install -y -qq python3-venv >/dev/null; fi
fi
if ! command -v npm >/dev/null; then
    echo "clients: installing nodejs and npm"
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
    "${as_root[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -x "$VENV/bin/openapi-python-client" ] || ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "${GENERATOR}"; then
    echo "clients: installing $GENERATOR into $VENV"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$GENERATOR"
fi
mkdir -p "$NODE_DIR"
cp "$ROOT/tests/clients/ts/package.json" "$ROOT/tests/clients/ts/package-lock.json" "$ROOT/tests/clients/ts/tsconfig.json" \
    "$ROOT/tests/clients/ts/check.ts" "$NODE_DIR/"
if ! cmp -s "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.package-lock.json.installed" 2>/dev/null; then
    echo "clients: installing the npm packages into $NODE_DIR"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.package-lock.json.installed"
fi

cargo build -q --locked -p plaudit --bin plaudit
source "$ROOT/scripts/lib/demo-server.sh"
demo_server_start "$TARGET/debug/plaudit" --no-demo-plugins
WORK="$DEMO_DATA/clients"
mkdir -p "$WORK"

echo "clients: python (openapi-python-client) against $DEMO_URL"
(cd "$WORK" && "$VENV/bin/openapi-python-client" generate --url "$DEMO_URL/openapi.json" --meta none \
    --output-path "$WORK/plaudit_client" >"$WORK/python-generate.log" 2>&1) || {
    cat "$WORK/python-generate.log"
    echo "clients: the Python client was not generated" >&2
    exit 1
}
if grep -qi "will not be generated\|could not\|error" "$WORK/python-generate.log"; then
    cat "$WORK/python-generate.log"
    echo "clients: the Python generator dropped an operation or failed on part of the description" >&2
    exit 1
fi
PYTHONPATH="$WORK" PLAUDIT_URL="$DEMO_URL" "$VENV/bin/python" "$ROOT/tests/clients/python/check.py"

echo "clients: typescript (openapi-typescript, openapi-fetch, tsc) against $DEMO_URL"
(
    cd "$NODE_DIR"
    rm -rf dist plaudit.d.ts
    npx --no-install openapi-typescript "$DEMO_URL/openapi.json" -o plaudit.d.ts >"$WORK/ts-generate.log" 2>&1 || {
        cat "$WORK/ts-generate.log"
        exit 1
    }
    npx --no-install tsc -p .
    PLAUDIT_URL="$DEMO_URL" node dist/check.js
)
demo_server_check clients
