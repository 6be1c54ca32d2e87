#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up, build the plugins from source, check formatting
# and lints, run every test. Works from any directory; safe with CI=true and no stdin.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build-plugins.sh"
echo "test: no import circle (crates and modules)"
python3 "$ROOT/scripts/check-imports.py"
echo "test: cargo fmt --check"
cargo fmt --all --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# A private PostgreSQL 15 (installed if missing, stopped on exit) for the PostgreSQL store's
# tests: the store's conformance suite and the server on it (PLAUDIT_TEST_POSTGRES).
source "$ROOT/scripts/lib/postgres.sh"
postgres_start
echo "test: cargo test"
cargo test --workspace --locked
# Property-based API fuzzing of the real server against its served OpenAPI description.
echo "test: api fuzz (schemathesis, ${API_FUZZ_SECONDS:-120} s)"
"$ROOT/scripts/api-fuzz.sh"
# Histories changed from several clients at once (moments, retractions, profiles, applications
# to history, erasures) against a real server: no 5xx, no panic. Bounded, one fixed seed.
echo "test: stress of history changes (20 s)"
python3 "$ROOT/tests/stress/changes.py" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/plaudit" 20 1 3
# Three nodes sharing the PostgreSQL above, as real processes: owners SIGKILLed round after
# round, one SIGSTOPped past its lease, PostgreSQL restarted under load, a node joining and one
# leaving, a node opening an organisation it took over (503, not 401); every acknowledged moment
# counted exactly once, the state equal to a replay.
echo "test: cluster of nodes on PostgreSQL (kill loop, SIGSTOP, PostgreSQL restart, join and leave, opening)"
POSTGRES_DIR=$POSTGRES_DIR python3 "$ROOT/tests/cluster/cluster.py" --bin "${CARGO_TARGET_DIR:-$ROOT/target}/debug/plaudit"
# Clients generated from the served description (Python, TypeScript) used against a real server.
echo "test: generated clients (openapi-python-client, openapi-typescript + tsc)"
"$ROOT/tests/clients/run.sh"
# A real browser (Debian's headless Chromium) calling the API from other origins.
echo "test: browser (headless Chromium)"
"$ROOT/tests/browser/run.sh"
# The plugins' own tests run natively (the SDK's harness), with the host toolchain, over the
# plugins' lockfile; their own target directory, apart from the wasm32 builds.
echo "test: plugins (native tests, fmt, clippy)"
(
    cd "$ROOT/plugins"
    export CARGO_TARGET_DIR="${PLUGINS_TARGET_DIR:-$ROOT/plugins/target/host}"
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    cargo test --workspace --locked
)
