#!/usr/bin/env bash
# Builds every plugin crate in the plugins/ workspace for wasm32-unknown-unknown (release) and
# copies the modules to plugins/dist/<crate_name>.wasm. Works from any directory.
#
# Path A: rustup has the wasm32-unknown-unknown target -> plain `cargo build` in plugins/.
# Path B: it has not (rustup here cannot add targets) -> Debian's rustc 1.63 + cargo 1.65:
#   1. the modern cargo resolves plugins/Cargo.lock (rust-version aware, pins below, lockfile v3)
#      and vendors the crates into plugins/vendor (only when Cargo.lock changed);
#   2. Debian's cargo builds offline over plugins/vendor (it cannot read the crates.io index
#      here, and the modern cargo cannot drive rustc 1.63). The source replacement is passed
#      with --config, so no .cargo/config.toml is committed that would break path A.
# See DEVELOPERS.md (why and how) and docs/design.md (the plugin ABI).
#
# Safe non-interactively (CI=true, no stdin).
set -euo pipefail
exec </dev/null

TARGET=wasm32-unknown-unknown
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGINS=$ROOT/plugins
DIST=$PLUGINS/dist
VENDOR=$PLUGINS/vendor
# Versions that still build with rustc 1.63 (newer serde's serde_derive needs 1.71, rmp 0.8.14
# needs 1.66). Applied to plugins/Cargo.lock only if it holds another version of these crates.
PINS=(serde@1.0.210 rmp-serde@1.1.2 rmp@0.8.12)

"$ROOT/scripts/setup-wasm.sh"

cd "$PLUGINS"

if command -v rustup >/dev/null 2>&1 &&
    rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "build-plugins: path A (rustup's $TARGET target: $(rustc --version))"
    target_dir=$PLUGINS/target
    build=(cargo build --release --target "$TARGET" --target-dir "$target_dir")
else
    echo "build-plugins: path B (Debian $(/usr/bin/rustc --version), $(/usr/bin/cargo --version), offline over plugins/vendor)"

    # The modern cargo (rustup's) resolves and vendors; it is needed only when the lockfile or
    # the vendor directory must change (mcargo fails with a clear message if there is none).
    modern_cargo=$(command -v cargo || true)
    if [[ -z $modern_cargo || $modern_cargo == /usr/bin/cargo ]] && [[ -x $HOME/.cargo/bin/cargo ]]; then
        modern_cargo=$HOME/.cargo/bin/cargo
    fi
    mcargo() {
        if [[ -z $modern_cargo || $modern_cargo == /usr/bin/cargo ]]; then
            echo "build-plugins: plugins/Cargo.lock or plugins/vendor needs updating, which takes a" \
                "cargo >= 1.84 (rustup's); none found" >&2
            exit 1
        fi
        CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback "$modern_cargo" "$@"
    }

    # Version(s) of crate $1 in Cargo.lock, one a line.
    locked_versions() {
        awk -v name="$1" '$1 == "name" && $3 == "\"" name "\"" { want = 1; next }
            want && $1 == "version" { gsub(/"/, "", $3); print $3; want = 0 }' Cargo.lock
    }

    # 1. Lockfile: create it if missing, bring it up to date with the manifests (a no-op with
    # a current lockfile; tried offline first, from the local index cache), apply the pins.
    if [[ ! -f Cargo.lock ]]; then
        echo "build-plugins: generating plugins/Cargo.lock"
        mcargo generate-lockfile --quiet
    fi
    if ! mcargo metadata --format-version 1 --locked --offline >/dev/null 2>&1; then
        echo "build-plugins: resolving plugins/Cargo.lock against the crates.io index"
        mcargo metadata --format-version 1 --quiet >/dev/null
    fi
    for pin in "${PINS[@]}"; do
        name=${pin%@*} want=${pin#*@}
        for have in $(locked_versions "$name"); do
            if [[ $have != "$want" ]]; then
                echo "build-plugins: pinning $name $have -> $want"
                mcargo update --quiet -p "$name@$have" --precise "$want"
            fi
        done
    done
    if ! head -n 5 Cargo.lock | grep -qx 'version = 3'; then
        echo "build-plugins: plugins/Cargo.lock is not lockfile version 3; Debian's cargo 1.65 cannot read it" >&2
        exit 1
    fi

    # 2. Vendor, unless plugins/vendor already matches this Cargo.lock.
    lock_hash=$(sha256sum Cargo.lock | cut -d' ' -f1)
    if [[ -f $VENDOR/.lock-hash && $(cat "$VENDOR/.lock-hash") == "$lock_hash" ]]; then
        echo "build-plugins: plugins/vendor is up to date"
    else
        echo "build-plugins: vendoring into plugins/vendor"
        rm -f "$VENDOR/.lock-hash"
        mcargo vendor --locked --quiet "$VENDOR" >/dev/null
        echo "$lock_hash" >"$VENDOR/.lock-hash"
    fi

    # 3. Build with Debian's toolchain, offline, over the vendored sources. Its own target dir:
    # it must not share one with a modern cargo.
    target_dir=$PLUGINS/target/debian
    build=(env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
        /usr/bin/cargo build --offline --locked --release --target "$TARGET" --target-dir "$target_dir"
        --config 'source.crates-io.replace-with="vendored-sources"'
        --config "source.vendored-sources.directory=\"$VENDOR\"")
fi

# Build; the JSON messages on stdout name each workspace cdylib's .wasm (fresh or rebuilt).
messages=$(mktemp)
trap 'rm -f "$messages"' EXIT
if ! "${build[@]}" --workspace --message-format=json-render-diagnostics >"$messages"; then
    if [[ $target_dir == */debian ]]; then
        echo "build-plugins: note: Debian's cargo 1.65 also parses the root Cargo.toml (sdk/ is a" \
            "path dependency): it needs resolver 2 there and bool/integer profile 'debug' values" >&2
    fi
    exit 1
fi

mapfile -t modules < <(grep -o '"[^"]*/'"$TARGET"'/release/[^"/]*\.wasm"' "$messages" | tr -d '"' | sort -u)
if ((${#modules[@]} == 0)); then
    echo "build-plugins: the build produced no .wasm module" >&2
    exit 1
fi

# Check each module: fully validated if wasm-tools or wabt's wasm-validate (apt: wabt) is
# installed, otherwise only its header ("\0asm", version 1).
if command -v wasm-tools >/dev/null 2>&1; then
    validate=(wasm-tools validate) how="wasm-tools validate"
elif command -v wasm-validate >/dev/null 2>&1; then
    validate=(wasm-validate) how="wasm-validate"
else
    validate=() how="header only"
fi

mkdir -p "$DIST"
rm -f "$DIST"/*.wasm
# Which compiler built the modules: fuel per moment (pinned in the tests) depends on it.
if [[ $target_dir == */debian ]]; then /usr/bin/rustc --version; else rustc --version; fi >"$DIST/TOOLCHAIN"
for module in "${modules[@]}"; do
    if [[ $(head -c 8 "$module" | od -An -tx1 | tr -d ' \n') != 0061736d01000000 ]]; then
        echo "build-plugins: $module is not a WebAssembly module" >&2
        exit 1
    fi
    if ((${#validate[@]})) && ! "${validate[@]}" "$module"; then
        echo "build-plugins: $module does not validate" >&2
        exit 1
    fi
    cp "$module" "$DIST/"
    echo "build-plugins: plugins/dist/$(basename "$module") ($(wc -c <"$module") bytes, checked: $how)"
done
