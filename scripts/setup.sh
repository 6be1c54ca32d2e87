#!/usr/bin/env bash
# Installs what Plaudit needs on a fresh Debian 12 machine with rustup's Rust: the wasm32 plugin
# toolchain (scripts/setup-wasm.sh), and the few tools the scripts use (python3 for the demo's
# summary, curl for its walkthrough, wabt to validate built plugins). The test scripts that need
# more (Node.js and npm, Debian's Chromium) install it themselves. Idempotent; safe with
# CI=true and no stdin.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust with rustup first" >&2; exit 1; }
"$ROOT/scripts/setup-wasm.sh"

missing=()
for tool in python3:python3 curl:curl wasm-validate:wabt; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
    if ((EUID == 0)); then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo -n)
    else
        echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "setup: installing ${missing[*]}"
    "${as_root[@]}" apt-get update -qq >/dev/null
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
