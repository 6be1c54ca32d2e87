#!/usr/bin/env bash
# Installs what Plaudit needs on a fresh Debian 12 machine with rustup's Rust: the wasm32 plugin
# toolchain (scripts/setup-wasm.sh). Idempotent; safe with CI=true and no stdin.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust with rustup first" >&2; exit 1; }
"$ROOT/scripts/setup-wasm.sh"
