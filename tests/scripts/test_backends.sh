#!/bin/sh
# The same records give the same output on both backends. Pens with planted
# reuse, out-of-limit treatments, a log that overflowed (gaps and
# log_overflow records) and serials that sort differently by case are each
# copied (their simulator state) and pulled twice: one copy into a SQLite
# archive, the other into a PostgreSQL one. Then every audit report in every
# format (table, csv, json; all reports, one pen in a time window, usage by
# week and month), every export (records and treatments, csv and json, whole
# and filtered), and verify (text and json) run on both, before and after
# verify stored its verdicts; exit statuses and outputs must be identical.
#
# Normalised, because it must differ between two archives and is not a
# property of the records: the host's clock where it is printed, i.e. when
# each pull raised an alarm (the "value", "raised" and "raised_last" of a gap
# or conflict finding, csv and json), when verify ran (the audit's "verified ..." and "verified_at",
# and verify's claims "ok at ..." in the table),
# and how long verify took ("checked in N s"). Nothing names an archive in
# these outputs, so nothing else is touched.
# Usage: test_backends.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
PENLINK_TEST_ARCHIVE=postgresql
. "$(dirname "$0")/harness.sh"

SQ=$tmp/same.db
# a server whose own collation sorts "PEN-a" before "PEN-B" (ICU, en-US), as
# many do: the archive must still list pens byte by byte, as SQLite does
psql -X -q -h "$tmp/pg" -p "$(cat "$tmp/pg/port")" -U penlink -d postgres -c "CREATE DATABASE same
    TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'" > /dev/null || exit 1
PG=$(pg_uri same)
both() { # pen: pulls the pen into the SQLite archive, its twin into the PostgreSQL one
    start_sim "$1"
    start_sim "${1}twin"
    $PL --device "sim:$tmp/$1.sock" --archive "$SQ" --quiet pull > "$tmp/p1" 2>&1
    r1=$?
    $PL --device "sim:$tmp/${1}twin.sock" --archive "$PG" --quiet pull > "$tmp/p2" 2>&1
    r2=$?
    [ $r1 = $r2 ] || { bad "pulls of $1: exit $r1 into SQLite, $r2 into PostgreSQL"; cat "$tmp/p1" "$tmp/p2"; }
    stop_sim "$1"
    stop_sim "${1}twin"
}
mkpen() { # pen serial seed days extra-args...: a pen and its twin (a copy of its state)
    pen=$1 serial=$2 s=$3 days=$4
    shift 4
    $SIM --state "$tmp/$pen" --serial "$serial" --seed "$s" --simulate-days "$days" \
        --start-time $T0 "$@" > /dev/null
    cp -r "$tmp/$pen" "$tmp/${pen}twin"
    both "$pen"
}
# planted reuse, refused by the pen; the same accepted (3 uses) with over-limit
# treatments; a log that overflowed before it was pulled; case-sorted serials
mkpen a PEN-a 11 30 --reuse-permille 80 --over-limit-permille 30
mkpen b PEN-B 12 30 --reuse-permille 80 --max-uses 3 --over-limit-permille 30
mkpen c Pen-C 13 120 --flash-size 131072 --sector-size 4096
mkpen d pen-d 14 5
# the overflowed pen logs on and is pulled again: its gap stays, new records
# come (logged once, then copied: both archives get the same records)
$SIM --state "$tmp/c" --simulate-days 3 --start-time $T0 > /dev/null
rm -rf "$tmp/ctwin"
cp -r "$tmp/c" "$tmp/ctwin"
both c
check "the pens are the same in both archives" \
    '[ "$(q "$SQ" "SELECT count(*), sum(seq) FROM records")" = "$(q "$PG" "SELECT count(*), sum(seq) FROM records")" ]'
check "the overflowed pen has a gap (an integrity finding to compare)" \
    '[ "$(q "$SQ" "SELECT count(*) FROM alarms WHERE kind = '"'gap'"'")" -ge 1 ]'
check "the server sorts text otherwise than byte by byte" \
    '[ "$(q "$PG" "SELECT string_agg(serial, '"' '"' ORDER BY serial) FROM devices")" != "$(q "$SQ" "SELECT group_concat(serial, '"' '"') FROM (SELECT serial FROM devices ORDER BY serial)")" ]'

# the host's clock, where it is printed (see above)
normalise() {
    sed -E 's/checked in [0-9.]+ s/checked in N s/;
        s/verified [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/verified TIME/;
        s/"verified_at":"[^"]*"/"verified_at":"TIME"/g;
        s/"verified_at_ms":[0-9]+/"verified_at_ms":"TIME"/g;
        s/ ok at [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z, through/ ok at TIME, through/;
        s/; raised [0-9TZ:. -]+(, again until [0-9TZ:. -]+)?/; raised HOST_TIME/' "$1" |
        "$PY" -c '
import csv, json, sys
ALARMS = ("gap", "conflict", "key_changed", "unverified")
RAISED = ("raised", "raised_last")
RAISED_MS = ("raised_ms", "raised_last_ms")  # their *_ms twins (schema 1)
header = []
for line in sys.stdin:
    s = line.rstrip("\n")
    if s.startswith("{"):
        j = json.loads(s)
        if j.get("type") == "finding" and j.get("finding") in ALARMS:
            for k in ("value",) + RAISED + RAISED_MS:
                if k in j:
                    j[k] = "HOST_TIME"
        s = json.dumps(j, separators=(",", ":"))
    elif "," in s:
        row = next(csv.reader([s]))
        if "finding" in row and any(r in row for r in RAISED):
            header = row
        elif len(row) > 9 and row[1] in ALARMS:  # pen,finding,...,value is column 9
            row[9] = "HOST_TIME"
            for r in RAISED:
                if r in header and header.index(r) < len(row):
                    row[header.index(r)] = "HOST_TIME"
            s = ",".join(row)
    print(s)'
}
compare() { # what args...: the same command on both archives, outputs compared
    what=$1
    shift
    $PL --archive "$SQ" "$@" > "$tmp/o.sq" 2> "$tmp/e.sq"
    x1=$?
    $PL --archive "$PG" "$@" > "$tmp/o.pg" 2> "$tmp/e.pg"
    x2=$?
    normalise "$tmp/o.sq" > "$tmp/n.sq"
    normalise "$tmp/o.pg" > "$tmp/n.pg"
    if [ $x1 = $x2 ] && [ -s "$tmp/n.sq" ] && cmp -s "$tmp/n.sq" "$tmp/n.pg"; then
        ok "$what: identical (exit $x1, $(wc -l < "$tmp/n.sq") lines)"
    else
        bad "$what: exit $x1 on SQLite, $x2 on PostgreSQL"
        diff "$tmp/n.sq" "$tmp/n.pg" | head -10 | sed 's/^/    /'
        cat "$tmp/e.sq" "$tmp/e.pg" | head -4 | sed 's/^/    /'
    fi
}
# a window of ten of PEN-B's days, from its tenth
set -- $($PL --archive "$SQ" export records --pen PEN-B --format csv |
    awk -F, 'NR > 1 { print substr($4, 1, 10) }' | sort -u | sed -n '10p;19p')
window="--pen PEN-B --since $1 --until $2"
audits() { # when
    for f in table csv json; do
        compare "$1: audit --format $f" audit --format "$f"
    done
    compare "$1: audit --format json, one pen, a window" audit --format json $window
    compare "$1: audit --format table, one pen, a window" audit $window
    compare "$1: audit --report usage --by week --format csv" audit --report usage --by week --format csv
    compare "$1: audit --report usage --by month" audit --report usage --by month
    compare "$1: audit --report integrity --format json" audit --report integrity --format json
}
audits "before verify"
for w in records treatments; do
    for f in csv json; do
        compare "export $w --format $f" export "$w" --format "$f"
    done
    compare "export $w, one pen, a window" export "$w" --format json $window
done
compare "verify" verify
compare "verify --json" --json verify
compare "verify --pen" verify --pen Pen-C
audits "after verify"
finish
