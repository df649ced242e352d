# Shared by the shell tests that drive penlink against penlink-sim: a temp
# dir removed on exit, pass/fail counting, simulators started and stopped by
# name, and archives of either backend. Source it after setting PL (the
# penlink command, with $PENLINK_WRAP before it) and SIM (the penlink-sim
# binary).
#
# PENLINK_TEST_ARCHIVE=postgresql runs a script's archives on a throwaway
# PostgreSQL cluster of its own (started here, stopped on exit whatever
# happens), one database per archive; else they are SQLite files. The
# scripts name archives with `archive NAME` and read them with `q` and
# archive_db.py, so the same test code checks both backends.
tmp=$(mktemp -d)
here=$(cd "$(dirname "$0")" && pwd)
# Debian's python (its psycopg2 and nacl), not another one earlier in PATH
PY=${PY:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
# the default archive (and key) places are inside the test's own directory
export XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config"
# Nothing depends on the calendar or the machine's zone: every simulated pen's
# first day is T0 (2026-03-02T00:00:00Z, a Monday; pass --start-time $T0), and
# local time is UTC unless a test says otherwise.
T0=1772409600000
export TZ=UTC
pass=0
fail=0
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2> /dev/null; done
    wait 2> /dev/null
    for d in $clusters; do sh "$here/pg_cluster.sh" stop "$d"; done
    rm -rf "$tmp"
}
clusters=""
backend=${PENLINK_TEST_ARCHIVE:-sqlite}
pg_start() { # dir [port]: a throwaway cluster, stopped on exit
    chmod 755 "$tmp" # its server's user must reach the directory
    clusters="$clusters $1"
    sh "$here/pg_cluster.sh" start "$1" "${2:-5432}" > /dev/null || { echo "no PostgreSQL cluster"; exit 1; }
}
if [ "$backend" = postgresql ]; then
    pg_start "$tmp/pg"
    echo "archives on PostgreSQL (a throwaway cluster in $tmp/pg)"
elif [ "$backend" != sqlite ]; then
    echo "PENLINK_TEST_ARCHIVE: sqlite or postgresql, not $backend"
    exit 1
fi
pg_uri() { # database [cluster-dir]
    echo "postgresql://penlink@/$1?host=${2:-$tmp/pg}&port=$(cat "${2:-$tmp/pg}/port")"
}
archive() { # name: a fresh archive's file path or URI (the database made empty)
    if [ "$backend" = postgresql ]; then
        PGOPTIONS="-c client_min_messages=warning" psql -q -h "$tmp/pg" \
            -p "$(cat "$tmp/pg/port")" -U penlink -d postgres \
            -c "DROP DATABASE IF EXISTS \"$1\"" -c "CREATE DATABASE \"$1\"" > /dev/null || exit 1
        pg_uri "$1"
    else
        rm -f "$tmp/$1.db" "$tmp/$1.db-wal" "$tmp/$1.db-shm"
        echo "$tmp/$1.db"
    fi
}
archive_copy() { # archive name: a copy of the archive (file or database), named
    if [ "$backend" = postgresql ]; then
        PGOPTIONS="-c client_min_messages=warning" psql -q -h "$tmp/pg" \
            -p "$(cat "$tmp/pg/port")" -U penlink -d postgres -c "DROP DATABASE IF EXISTS \"$2\"" \
            -c "CREATE DATABASE \"$2\" TEMPLATE \"$(echo "$1" | sed 's|^postgres[a-z]*://[^/]*/||; s|?.*||')\"" \
            > /dev/null || exit 1
        pg_uri "$2"
    else
        cp "$1" "$tmp/$2.db"
        echo "$tmp/$2.db"
    fi
}
edit() { # archive sql...: statements run with the append-only guards lifted
    "$PY" "$here/archive_db.py" edit "$@"
}
q() { # archive sql: rows as sqlite3 prints them
    "$PY" "$here/archive_db.py" query "$1" "$2"
}
same() { # archive serial truth-file [prefix]: the archive equals the pen's ground truth
    "$PY" "$here/archive_db.py" same "$@"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP # the EXIT trap then runs: no cluster left behind
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
run() { # want-exit name cmd... ; output in $tmp/out, $tmp/err
    want=$1 name=$2
    shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else
        bad "$name: exit $got, want $want"; sed 's/^/    /' "$tmp/err" | head -5; fi
}
wait_sock() { # path: up to 20 s for a simulator to listen
    i=0
    while [ ! -S "$1" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    [ -S "$1" ]
}
wait_held() { # proxy-log pid: until the stall proxy holds the pull (however long a loaded
    # machine or valgrind takes to get there), or the pull has ended without being held
    until grep -q holding "$1" || ! kill -0 "$2" 2> /dev/null; do sleep 0.05; done
    grep -q holding "$1" || { echo "the pull ended before the proxy held it"; cat "$1"; exit 1; }
}
start_sim() { # name extra-args... ; state in $tmp/NAME, socket $tmp/NAME.sock, pid in pid_NAME
    name=$1
    shift
    rm -f "$tmp/$name.sock"
    $SIM --state "$tmp/$name" --listen "$tmp/$name.sock" "$@" > "$tmp/$name.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$name=$!"
    wait_sock "$tmp/$name.sock" || { echo "penlink-sim did not start:"; cat "$tmp/$name.log"; exit 1; }
}
stop_sim() { # name
    eval "p=\$pid_$1"
    kill "$p" 2> /dev/null
    wait "$p" 2> /dev/null
}
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
