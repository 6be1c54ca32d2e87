# Sourced, not run: what the load scripts (load.sh, load-isolation.sh) need before they start a
# server. `load_binaries NAME` installs wrk if it is missing and sets BIN to the folder of the
# release `plaudit` and `load` binaries: PLAUDIT_BIN_DIR if set (binaries built elsewhere, for
# an A/B against another build), otherwise built here.

load_binaries() {
    command -v wrk >/dev/null || { echo "$1: installing wrk"; apt-get install -y -qq wrk >/dev/null; }
    if [[ -n ${PLAUDIT_BIN_DIR:-} ]]; then
        BIN=$PLAUDIT_BIN_DIR
    else
        cargo build --release -q -p plaudit -p plaudit-benches --bin plaudit --bin load
        BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
    fi
}
