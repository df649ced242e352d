#!/bin/sh
# The archive's benchmarks on PostgreSQL, each against its baseline in the
# same run, on a throwaway cluster of their own (tests/scripts/pg_cluster.sh:
# initdb in a temporary directory, a Unix socket there, fsync on; stopped
# and removed at the end whatever happens):
#
#   bench_archive  a pull of about 1,000,000 records into the server against
#                  a plain binary COPY of the same rows (target >= 0.5x)
#   bench_audit    the audit of 10,000,000 records against SELECT sum(seq)
#                  over them (target <= 3x)
#   bench_push     archive push of a 1,000,000-record SQLite archive into the
#                  server, again (nothing new), and a plain COPY of its rows
#
# Usage: tools/bench/bench_pg.sh [BUILD_DIR] [archive|audit|push|all]
# (default: build, all). Run it as root or as a user; PostgreSQL's server runs
# as an unprivileged user either way (see pg_cluster.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
which=${2:-all}
sim=$build/firmware-stub/penlink-sim
[ -x "$build/tools/bench/bench_archive" ] && [ -x "$sim" ] ||
    { echo "bench_pg: build first (cmake --build $build)" >&2; exit 2; }
tmp=$(mktemp -d)
chmod 755 "$tmp" # the server's user must reach its directory
trap 'sh "$here/../../tests/scripts/pg_cluster.sh" stop "$tmp/pg"; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP
sh "$here/../../tests/scripts/pg_cluster.sh" start "$tmp/pg" > /dev/null
psql -X -q -h "$tmp/pg" -p "$(cat "$tmp/pg/port")" -U penlink -d postgres -c "CREATE DATABASE bench"
uri="postgresql://penlink@/bench?host=$tmp/pg&port=$(cat "$tmp/pg/port")"
echo "a throwaway PostgreSQL cluster: $(psql -X -At -h "$tmp/pg" -p "$(cat "$tmp/pg/port")" \
    -U penlink -d bench -c "SHOW server_version")"
case $which in
archive | all)
    echo "== bench_archive --archive $uri"
    "$build/tools/bench/bench_archive" --archive "$uri" "$sim"
    ;;
esac
case $which in
push | all)
    echo "== bench_push --archive $uri"
    "$build/tools/bench/bench_push" --archive "$uri" "$sim"
    ;;
esac
case $which in
audit | all)
    echo "== bench_audit -n 10000000 --archive $uri"
    psql -X -q -h "$tmp/pg" -p "$(cat "$tmp/pg/port")" -U penlink -d bench \
        -c "DROP SCHEMA IF EXISTS penlink CASCADE" 2> /dev/null
    "$build/tools/bench/bench_audit" -n 10000000 -r 3 --archive "$uri"
    ;;
esac
