#!/usr/bin/env bash
# Makes sure this machine can build rule plugins for wasm32-unknown-unknown. Idempotent.
#
# - If rustup already has the wasm32-unknown-unknown target: nothing to do.
# - Otherwise (rustup here cannot add targets): install Debian's rustc 1.63 + cargo 1.65 and the
#   wasm32 standard library (`rustc cargo libstd-rust-dev-wasm32 lld-14`). They go to /usr/bin
#   and do not shadow rustup's toolchain on PATH; scripts/build-plugins.sh calls them by full
#   path. Why lld-14: Debian's rustc links wasm32 with /usr/bin/rust-lld, a symlink to lld-14 that
#   dangles without it (libstd-rust-dev-wasm32 only *recommends* lld-14, next to clang-14 and
#   llvm-14, which we do not need, hence --no-install-recommends).
#
# Safe non-interactively (CI=true, no stdin). Runs apt as root, or through sudo if available.
set -euo pipefail

TARGET=wasm32-unknown-unknown
PACKAGES=(rustc cargo libstd-rust-dev-wasm32 lld-14)

if command -v rustup >/dev/null 2>&1 &&
    rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "setup-wasm: rustup has $TARGET; nothing to do"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    echo "setup-wasm: Debian ${PACKAGES[*]} already installed"
    exit 0
fi

if ((EUID == 0)); then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)
else
    echo "setup-wasm: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when apt does not know one of the packages yet.
for pkg in "${missing[@]}"; do
    candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        echo "setup-wasm: apt-get update"
        "${as_root[@]}" apt-get update -qq </dev/null >/dev/null
        break
    fi
done

echo "setup-wasm: installing ${missing[*]}"
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
echo "setup-wasm: $(/usr/bin/rustc --version), $(/usr/bin/cargo --version)"
