#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up, build the plugins from source, check formatting
# and lints, run every test. Works from any directory; safe with CI=true and no stdin.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build-plugins.sh"
echo "test: cargo fmt --check"
cargo fmt --all --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "test: cargo test"
cargo test --workspace --locked
