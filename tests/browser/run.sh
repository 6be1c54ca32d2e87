#!/usr/bin/env bash
# Tests in a real browser: Debian's headless Chromium (its package, installed here if missing; no
# browser is downloaded) driven by playwright-core (npm, pinned by package-lock.json) against a
# real `plaudit serve` with the demo organisations.
#
#   bash tests/browser/run.sh
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NODE_DIR="$TARGET/browser-tests"
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    echo "browser: installing ${missing[*]}"
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq >/dev/null
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x "$CHROMIUM" ] || { echo "browser: no Chromium at $CHROMIUM" >&2; exit 1; }

mkdir -p "$NODE_DIR"
cp "$ROOT"/tests/browser/package.json "$ROOT"/tests/browser/package-lock.json "$ROOT"/tests/browser/*.mjs "$NODE_DIR/"
if ! cmp -s "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.package-lock.json.installed" 2>/dev/null; then
    echo "browser: installing playwright-core into $NODE_DIR"
    (cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.package-lock.json.installed"
fi

cargo build -q --locked -p plaudit --bin plaudit
source "$ROOT/scripts/lib/demo-server.sh"
demo_server_start "$TARGET/debug/plaudit" --no-demo-plugins
echo "browser: $("$CHROMIUM" --version 2>/dev/null | head -1) against $DEMO_URL"
PLAUDIT_URL="$DEMO_URL" node "$NODE_DIR/cross-origin.mjs"
demo_server_check browser
demo_server_stop
# The console against a fresh server (its fixture's numbers are the only ones there).
demo_server_start "$TARGET/debug/plaudit" --no-demo-plugins
PLAUDIT_URL="$DEMO_URL" SCREENSHOTS="$TARGET/console-screenshots" node "$NODE_DIR/console.mjs"
demo_server_check browser
