# Sourced: a private PostgreSQL 15 for the tests and load scripts, from Debian's packages.
#
#   source scripts/lib/postgres.sh
#   postgres_start        # installs postgresql-15 if missing, starts one, exports PLAUDIT_TEST_POSTGRES
#
# The cluster lives in a `mktemp -d` folder (data and socket), listens on a free loopback port,
# runs as the `postgres` user (PostgreSQL refuses root), and is stopped and removed when the
# shell exits (an EXIT trap, run after any trap already set: a server using it stops first). PLAUDIT_TEST_POSTGRES is the
# admin URL of its `plaudit` database: tests create a database of their own through it.

POSTGRES_BIN=/usr/lib/postgresql/15/bin

postgres_install() {
    [[ -x $POSTGRES_BIN/initdb ]] && return 0
    local as_root=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || { echo "postgres: need root (or sudo) to install postgresql-15" >&2; return 1; }
        as_root=(sudo -n)
    fi
    echo "postgres: installing postgresql-15"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq >/dev/null
    # Only the server binaries: no cluster is created by the package (we make our own).
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
}

# Runs a PostgreSQL program as the cluster's owner.
postgres_as_owner() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_stop() {
    [[ -n ${POSTGRES_DIR:-} && -d $POSTGRES_DIR ]] || return 0
    postgres_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$POSTGRES_DIR"
    POSTGRES_DIR=
}

postgres_start() {
    postgres_install
    if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    POSTGRES_DIR=$(mktemp -d /tmp/plaudit-pg.XXXXXX)
    ((EUID == 0)) && chown postgres: "$POSTGRES_DIR"
    local previous
    previous=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
    # shellcheck disable=SC2064
    trap "${previous:-:}; postgres_stop" EXIT
    postgres_as_owner "$POSTGRES_BIN/initdb" -D "$POSTGRES_DIR/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >"$POSTGRES_DIR/initdb.log" 2>&1 \
        || { cat "$POSTGRES_DIR/initdb.log" >&2; return 1; }
    # A free loopback port: one the kernel hands out, released for PostgreSQL to take.
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    postgres_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$POSTGRES_DIR -c max_connections=200 -c synchronous_commit=on" \
        start >/dev/null || { cat "$POSTGRES_DIR/server.log" >&2; return 1; }
    postgres_as_owner "$POSTGRES_BIN/psql" -h "$POSTGRES_DIR" -p "$port" -U postgres -q -d postgres \
        -c "CREATE DATABASE plaudit" >/dev/null
    export PLAUDIT_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/plaudit"
    echo "postgres: PostgreSQL 15 on 127.0.0.1:$port ($POSTGRES_DIR)"
}
