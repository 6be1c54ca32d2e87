# Sourced, not run: starts `plaudit serve` (the debug build cargo made) with the demo
# organisations on a scratch data directory and a free loopback port, for the scripts that
# test the real server from outside (api-fuzz.sh, tests/clients/run.sh, tests/browser/run.sh).
#
#   source scripts/lib/demo-server.sh
#   demo_server_start "$BIN" [extra serve flags...]
#
# Sets DEMO_URL, DEMO_LOG, DEMO_DATA, PLAUDIT_KEY (acme's key) and PLAUDIT_ADMIN_KEY; stops the
# server and removes its data on exit (an EXIT trap). `demo_server_check NAME` fails if the
# server died or panicked meanwhile.

demo_server_start() {
    local bin=$1
    shift
    DEMO_DATA=$(mktemp -d)
    DEMO_LOG="$DEMO_DATA/server.log"
    local port
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    DEMO_URL="http://127.0.0.1:$port"
    export PLAUDIT_ADMIN_KEY="admin-key-$(date +%s%N)"
    # The tests post moments of 2026-03 and far futures (and the fuzzer any date), which the
    # default window (90 days back, 5 minutes ahead) refuses; and records as fast as they go.
    cat >"$DEMO_DATA/server.toml" <<'TOML'
[moments]
max_age_seconds = 3155760000
max_ahead_seconds = 3155760000

[quotas]
records_per_second = 100000000
records_burst = 1000000000
TOML
    "$bin" serve --data "$DEMO_DATA/store" --listen "127.0.0.1:$port" --demo "$ROOT/rules/acme.toml" --config "$DEMO_DATA/server.toml" "$@" >"$DEMO_LOG" 2>&1 &
    DEMO_SERVER=$!
    trap demo_server_stop EXIT
    for _ in $(seq 1 600); do
        grep -q "^listening on" "$DEMO_LOG" && break
        kill -0 "$DEMO_SERVER" 2>/dev/null || { cat "$DEMO_LOG"; echo "the server stopped" >&2; return 1; }
        sleep 0.1
    done
    grep -q "^listening on" "$DEMO_LOG" || { cat "$DEMO_LOG"; echo "the server did not start listening" >&2; return 1; }
    PLAUDIT_KEY=$(sed -n 's/.*demo: organisation acme .*key \([^ ]*\).*/\1/p' "$DEMO_LOG" | head -1)
    [ -n "$PLAUDIT_KEY" ] || { cat "$DEMO_LOG"; echo "no demo key in the server's output" >&2; return 1; }
    export PLAUDIT_KEY DEMO_URL
}

demo_server_stop() {
    kill "$DEMO_SERVER" 2>/dev/null || true
    wait "$DEMO_SERVER" 2>/dev/null || true
    rm -rf "$DEMO_DATA"
}

demo_server_check() {
    if ! kill -0 "$DEMO_SERVER" 2>/dev/null; then
        echo "$1: the server died during the run" >&2
        tail -50 "$DEMO_LOG" >&2
        return 1
    fi
    if grep -q "panicked" "$DEMO_LOG"; then
        echo "$1: the server panicked" >&2
        grep -A5 "panicked" "$DEMO_LOG" >&2
        return 1
    fi
}
