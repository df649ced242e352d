#!/bin/sh
# Every finding kind the audit knows, planted by penlink-sim (each by its
# knob, from a seed) and written down as it planted it (planted.jsonl): the
# audit's findings must equal the planted ones exactly -- kind, pen, seq, and
# for a reuse every treatment of the cartridge -- in JSON, CSV, the table and
# the HTML report,
# over several seeds, with and without windows whose edges cut through the
# days; and with the knobs off the audit finds none of those kinds.
# Usage: test_planted.sh PENLINK PENLINK_SIM [SEEDS]   (SEEDS: default "1 2 3")
# PENLINK_TEST_ARCHIVE=postgresql: the same, into PostgreSQL (harness.sh).
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
SEEDS=${3:-1 2 3}
. "$(dirname "$0")/harness.sh"
CMP="python3 $(dirname "$0")/planted_compare.py"
DAY=86400000
ALL=reuse,refused,no_cartridge,out_of_limits,clock_backwards,clock_jump,config_refused,gap,overflow,key_changed
KNOBS="--reuse-permille 80 --max-uses 3 --over-limit-permille 40 --no-cartridge-permille 40
       --depth-out-permille 40 --speed-out-permille 40 --clock-glitch-permille 30
       --clock-set-permille 40 --config-refused-permille 40"

pull() { # name archive: pulls the simulated pen NAME into ARCHIVE, exit status in $?
    start_sim "$1"
    $PL --archive "$2" --device "sim:$tmp/$1.sock" --quiet pull > "$tmp/pull.out" 2>&1
    r=$?
    stop_sim "$1"
    return $r
}
compare() { # name archive expect window-args...: the audit in every format against the plants
    name=$1 ar=$2 expect=$3
    shift 3
    since= until=
    [ "${1:-}" = "--since" ] && since=$2 && shift 2
    [ "${1:-}" = "--until" ] && until=$2 && shift 2
    win=""
    cwin=""
    [ -n "$since" ] && win="$win --since $(iso "$since")" && cwin="$cwin --since $since"
    [ -n "$until" ] && win="$win --until $(iso "$until")" && cwin="$cwin --until $until"
    for fmt in json csv table html; do
        # shellcheck disable=SC2086
        $PL --archive "$ar" audit --tz UTC --format $fmt $win -o "$tmp/audit.$fmt" 2> "$tmp/err"
        r=$?
        # shellcheck disable=SC2086
        if [ $r -le 1 ] && $CMP $fmt "$tmp/audit.$fmt" $cwin --expect "$expect" $DIRS > "$tmp/cmp" 2>&1; then
            ok "$name ($fmt): the audit's findings are the planted ones"
            [ $fmt = json ] && sed 's/^/  /' "$tmp/cmp"
        else
            bad "$name ($fmt): exit $r"
            sed 's/^/  /' "$tmp/cmp" "$tmp/err" | head -12
        fi
    done
}
iso() { python3 -c 'import datetime, sys; print(datetime.datetime.fromtimestamp(int(sys.argv[1]) / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z")' "$1"; }

for seed in $SEEDS; do
    echo "# seed $seed"
    A=$(archive s$seed)
    # O: a week, single use (refuses the reused cartridges), and the cartridges P reuses
    $SIM --state "$tmp/o$seed" --serial "PEN-O$seed" --seed $((seed + 100)) --simulate-days 7 \
        --start-time $T0 --reuse-permille 100 > /dev/null || bad "sim O"
    cp -r "$tmp/o$seed" "$tmp/o$seed.template" # O as never pulled, for the runs below
    # P: two weeks, every planted finding of the clinic's days
    # shellcheck disable=SC2086
    $SIM --state "$tmp/p$seed" --serial "PEN-P$seed" --seed "$seed" --simulate-days 14 \
        --start-time $T0 $KNOBS --reuse-from "$tmp/o$seed" --cross-reuse-permille 60 > /dev/null ||
        bad "sim P"
    # G: a log too small for its days: dropped records (a gap) and log_overflow records
    $SIM --state "$tmp/g$seed" --serial "PEN-G$seed" --seed $((seed + 200)) --simulate-days 2 \
        --start-time $T0 --flash-size 32768 --sector-size 1024 --batch 128 > /dev/null || bad "sim G"
    # K: pulled once, then replaced under its serial (another device key)
    $SIM --state "$tmp/k$seed" --serial "PEN-K$seed" --seed $((seed + 300)) --simulate-days 1 \
        --start-time $T0 > /dev/null || bad "sim K"
    pull o$seed "$A" && pull p$seed "$A" && pull g$seed "$A" && pull k$seed "$A" ||
        { bad "the pulls"; cat "$tmp/pull.out"; }
    $SIM --state "$tmp/g$seed" --simulate-days 40 --start-time $T0 > /dev/null
    pull g$seed "$A" || { bad "pull G again"; cat "$tmp/pull.out"; }
    $SIM --state "$tmp/k$seed" --replace-key > /dev/null
    pull k$seed "$A"
    [ $? -eq 6 ] && ok "the replaced pen is refused (exit 6)" || bad "the replaced pen was not refused"
    DIRS="$tmp/o$seed $tmp/p$seed $tmp/g$seed $tmp/k$seed"
    compare "seed $seed, every record" "$A" $ALL
    # windows whose edges cut days, treatments, reuses and gaps
    compare "seed $seed, days 3.5 to 8.25" "$A" reuse,out_of_limits,clock_backwards \
        --since $((T0 + 3 * DAY + DAY / 2)) --until $((T0 + 8 * DAY + DAY / 4))
    compare "seed $seed, from day 9.6 on" "$A" out_of_limits --since $((T0 + 9 * DAY + 6 * DAY / 10))
    compare "seed $seed, up to day 1.4" "$A" "" --until $((T0 + DAY + 4 * DAY / 10))
    compare "seed $seed, a window on G's gap" "$A" gap,overflow \
        --since $((T0 + 20 * DAY)) --until $((T0 + 35 * DAY))
done

echo "# the knobs off"
seed=$(echo $SEEDS | cut -d' ' -f1)
$SIM --state "$tmp/off" --serial PEN-OFF --seed "$seed" --simulate-days 14 --start-time $T0 \
    --reuse-permille 80 > /dev/null
OFF=$(archive off)
pull off "$OFF" || bad "pull the pen with the knobs off"
DIRS="$tmp/off"
compare "every knob off (refusing reuse)" "$OFF" refused
run 0 "the audit passes" $PL --archive "$OFF" audit
# each knob off while the others are on: none of its kind
for knob in reuse-permille over-limit-permille no-cartridge-permille depth-out-permille \
    speed-out-permille clock-glitch-permille clock-set-permille config-refused-permille \
    cross-reuse-permille; do
    rm -rf "$tmp/one"
    ONE=$(archive one)
    # shellcheck disable=SC2086
    args=$(echo $KNOBS --reuse-from "$tmp/o$seed" --cross-reuse-permille 60 |
        sed "s/--$knob [0-9]*//")
    # shellcheck disable=SC2086
    $SIM --state "$tmp/one" --serial PEN-ONE --seed "$seed" --simulate-days 14 --start-time $T0 \
        $args > /dev/null || bad "sim without --$knob"
    rm -rf "$tmp/o1x"
    cp -r "$tmp/o$seed.template" "$tmp/o1x"
    pull one "$ONE" && pull o1x "$ONE" || bad "pulls without --$knob"
    DIRS="$tmp/one $tmp/o1x"
    $PL --archive "$ONE" audit --format json > "$tmp/audit.json"
    kind=$(echo "$knob" | sed 's/-permille//; s/over-limit/out_of_limits/; s/depth-out/out_of_limits/;
        s/speed-out/out_of_limits/; s/no-cartridge/no_cartridge/; s/clock-glitch/clock_backwards/;
        s/clock-set/clock_jump/; s/config-refused/config_refused/; s/cross-reuse/reuse/')
    # shellcheck disable=SC2086
    $CMP json "$tmp/audit.json" $DIRS > "$tmp/cmp" 2>&1 &&
        ok "--$knob off: the audit equals the other plants" || { bad "--$knob off"; cat "$tmp/cmp"; }
    python3 - "$tmp/one/planted.jsonl" "$kind" "$knob" << 'PY' && ok "--$knob off: none of it planted" || bad "--$knob off planted some"
import json, sys
path, kind, knob = sys.argv[1:]
p = [json.loads(l) for l in open(path)]
what = {"depth-out-permille": "depth", "speed-out-permille": "speed",
        "over-limit-permille": "duration"}.get(knob)
mine = [x for x in p if x["kind"] == kind and (what is None or x.get("what") == what)]
if knob == "cross-reuse-permille":
    mine = [x for x in mine if x.get("first_pen") != x["pen"]]
if knob == "reuse-permille":
    mine = [x for x in mine if x.get("first_pen") == x["pen"]]
assert not mine, mine[:3]
assert p, "nothing planted by the other knobs"
PY
done

finish
