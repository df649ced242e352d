#!/bin/sh
# A throwaway PostgreSQL cluster for the tests: its own directory, a Unix
# socket in it (no TCP port, so parallel test runs never collide), trust
# authentication for the local superuser "penlink", fsync on (the durability
# tests need a server that really syncs). PostgreSQL refuses to run as root,
# and CI runs as root: the server then runs as the system user "pgtest",
# created on first use.
#
#   sh pg_cluster.sh start DIR [PORT]  prints PGHOST=DIR ... and the URI of
#                                      database postgres; DIR's parents must
#                                      be traversable (chmod 755 a mktemp -d)
#   sh pg_cluster.sh stop DIR          immediate stop; safe to call twice, and
#                                      on a cluster that never started
#   sh pg_cluster.sh restart DIR       start an existing cluster again
#   sh pg_cluster.sh standby DIR PRIMARY_DIR PORT
#                                      a streaming standby of PRIMARY_DIR
#                                      (pg_basebackup -R, with a fast
#                                      checkpoint), started
#
# Needs Debian's postgresql-15 (tools/setup.sh installs it).
set -eu
cmd=${1:?start|stop|restart|standby}
dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || {
    echo "pg_cluster: the PostgreSQL server is not installed: run tools/setup.sh" >&2
    exit 1
}
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    owner=pgtest
    id "$owner" > /dev/null 2>&1 || useradd --system --no-create-home "$owner"
fi
as_owner() { # the server's programs run as the unprivileged owner
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}
start_server() { # dir port
    as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 120 \
        -o "-k $1 -p $2 -c listen_addresses='' -c max_connections=60" start > /dev/null || {
        cat "$1/server.log" >&2
        exit 1
    }
    echo "$2" > "$1/port"
}

case "$cmd" in
start)
    port=${3:-5432}
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown "$owner" "$dir"
    as_owner test -w "$dir" || {
        echo "pg_cluster: $owner cannot write $dir: make its parents traversable (chmod 755)" >&2
        exit 1
    }
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U penlink --no-sync > "$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # a standby may stream from it
    printf '%s\n' "wal_level = replica" "max_wal_senders = 4" >> "$dir/data/postgresql.conf"
    echo "local replication penlink trust" >> "$dir/data/pg_hba.conf"
    start_server "$dir" "$port"
    echo "PGHOST=$dir PGPORT=$port PGUSER=penlink PGDATABASE=postgres"
    ;;
restart)
    start_server "$dir" "$(cat "$dir/port")"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop > /dev/null 2>&1 || true
    fi
    ;;
standby)
    primary=${3:?primary directory}
    port=${4:?port}
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown "$owner" "$dir"
    as_owner "$bin/pg_basebackup" -h "$primary" -p "$(cat "$primary/port")" -U penlink -c fast \
        -D "$dir/data" -R > "$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    start_server "$dir" "$port"
    ;;
*)
    echo "usage: $0 start|stop|restart|standby DIR ..." >&2
    exit 2
    ;;
esac
