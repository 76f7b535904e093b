#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests and the nox `postgres` session (docs/cluster.md, "Postgres").
#
#   tools/postgres_throwaway.sh start      # initdb + pg_ctl start on 127.0.0.1; prints the server URL
#   tools/postgres_throwaway.sh url [DB]   # postgresql+psycopg://postgres@127.0.0.1:PORT/DB (default DB: postgres)
#   tools/postgres_throwaway.sh createdb DB  # create database DB on the running server (no-op if it exists)
#   tools/postgres_throwaway.sh status     # exit 0 when the recorded server is running
#   tools/postgres_throwaway.sh stop       # stop the recorded server and delete its data folder
#
# The server is local and disposable: trust authentication for the `postgres` role, listening on 127.0.0.1 only,
# its unix socket inside its data folder, the data folder a fresh temp folder. `start` records the data folder and
# port in a state file (MLRD_PG_STATE, default ${TMPDIR:-/tmp}/mlrd-postgres-throwaway.env); `stop` stops exactly
# that server and removes exactly that folder, so it never touches another PostgreSQL on the machine. Both are
# idempotent: `start` on a running server prints its URL again, `stop` without a server does nothing.
#
# initdb refuses to run as root, so as root every server command runs as the `postgres` user (which owns the data
# folder); as any other user they run as that user. Environment:
#   MLRD_PG_STATE  state file (one per server: use different files for servers that must coexist)
#   MLRD_PG_PORT   port to listen on (default: the first free port from 55432)
#   MLRD_PG_TMP    parent of the data folder (default /tmp; it must be traversable by the postgres user)
#   MLRD_PG_BIN    folder of initdb/pg_ctl/postgres when they are not on PATH (e.g. /usr/lib/postgresql/15/bin)
set -euo pipefail

STATE="${MLRD_PG_STATE:-${TMPDIR:-/tmp}/mlrd-postgres-throwaway.env}"
PARENT="${MLRD_PG_TMP:-/tmp}"

die() {
    echo "postgres_throwaway: $*" >&2
    exit 1
}

find_bin() {
    if [[ -n "${MLRD_PG_BIN:-}" ]]; then
        echo "$MLRD_PG_BIN"
        return
    fi
    if command -v pg_ctl >/dev/null 2>&1; then  # resolve symlinks: psql and createdb live next to the real pg_ctl
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    local candidate
    for candidate in /usr/lib/postgresql/*/bin; do
        [[ -x "$candidate/pg_ctl" ]] && { echo "$candidate"; return; }
    done
    die "PostgreSQL server binaries (initdb, pg_ctl) not found; install them or set MLRD_PG_BIN"
}

# Run a command as the server's owner: the postgres user when we are root, else ourselves.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user (initdb refuses root)"
        local quoted
        printf -v quoted '%q ' "$@"
        su postgres -s /bin/sh -c "$quoted"
    else
        "$@"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    if [[ -n "${MLRD_PG_PORT:-}" ]]; then
        port_in_use "$MLRD_PG_PORT" && die "port $MLRD_PG_PORT (MLRD_PG_PORT) is already in use"
        echo "$MLRD_PG_PORT"
        return
    fi
    local port
    for port in $(seq 55432 55531); do
        port_in_use "$port" || { echo "$port"; return; }
    done
    die "no free port in 55432-55531; set MLRD_PG_PORT"
}

load_state() {
    [[ -f "$STATE" ]] || return 1
    # shellcheck disable=SC1090
    . "$STATE"
    [[ -n "${PGDATA_DIR:-}" && -n "${PG_PORT:-}" && -n "${PG_BIN:-}" ]] || die "state file $STATE is incomplete"
}

running() {
    load_state && [[ -d "$PGDATA_DIR" ]] && as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

url() {
    echo "postgresql+psycopg://postgres@127.0.0.1:${PG_PORT}/${1:-postgres}"
}

cmd_start() {
    if running; then
        url
        return
    fi
    if load_state; then  # a stale record (server died, folder gone): clean up what it names first
        cmd_stop >/dev/null
    fi
    PG_BIN="$(find_bin)"
    PG_PORT="$(free_port)"
    local top
    top="$(mktemp -d "$PARENT/mlrd-pg.XXXXXX")"
    PGDATA_DIR="$top/data"
    mkdir -p "$(dirname "$STATE")"
    printf 'PGDATA_DIR=%q\nPG_PORT=%q\nPG_BIN=%q\n' "$PGDATA_DIR" "$PG_PORT" "$PG_BIN" >"$STATE"
    chmod 700 "$top"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$top"
    fi
    as_owner "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres --no-sync -E UTF8 >"$top/initdb.log" 2>&1 \
        || { cat "$top/initdb.log" >&2; die "initdb failed (state in $STATE: '$0 stop' cleans up)"; }
    as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$top/server.log" -w -t 60 \
        -o "-k $top -c listen_addresses=127.0.0.1 -p $PG_PORT -c fsync=off" start >/dev/null \
        || { cat "$top/server.log" >&2; die "pg_ctl start failed (state in $STATE: '$0 stop' cleans up)"; }
    echo "postgres_throwaway: started on 127.0.0.1:$PG_PORT, data in $PGDATA_DIR, state in $STATE" >&2
    url
}

cmd_createdb() {
    local db="${1:?createdb needs a database name}"
    running || die "no server running (state file $STATE); run '$0 start' first"
    [[ "$db" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "database name must be a plain identifier, got '$db'"
    local exists
    exists="$(as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'")"
    [[ "$exists" == 1 ]] || as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"
    url "$db"
}

cmd_stop() {
    load_state || return 0
    if [[ -d "$PGDATA_DIR" ]] && as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
        echo "postgres_throwaway: stopped the server on port $PG_PORT" >&2
    fi
    # the temp folder start made: the parent of data/ (only if it has the name mktemp gave it)
    local top
    top="$(dirname "$PGDATA_DIR")"
    [[ "$(basename "$PGDATA_DIR")" == data && "$(basename "$top")" == mlrd-pg.* ]] && rm -rf "$top"
    rm -f "$STATE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url)
        load_state || die "no server recorded in $STATE; run '$0 start' first"
        url "${2:-}"
        ;;
    createdb) cmd_createdb "${2:-}" ;;
    status)
        if running; then
            echo "running on 127.0.0.1:$PG_PORT (data in $PGDATA_DIR)"
        else
            echo "not running"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|status|url [DB]|createdb DB" >&2
        exit 2
        ;;
esac
