#!/bin/sh
# Strings from a pen or the archive never reach a terminal raw (defect
# 12.6): a serial, a label, a pen's error message and archive rows holding
# escape sequences, CR, LF, DEL, C1 and bidi controls, bytes that are not
# UTF-8, and a spreadsheet formula go through every command and format
# (the audit's notes on findings and its HTML report among them). No
# raw control byte may reach stdout or stderr; text shows them escaped; JSON
# parses and keeps every key; CSV keeps its columns and defuses formulas.
# Usage: test_pen_strings.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
here=$(cd "$(dirname "$0")" && pwd)
safe() { python3 "$here/safe_output.py" "$@"; }
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# ESC sequences (clear screen), CR and LF (a fake line), a backslash, a C0
# byte, DEL, bytes that are not UTF-8, a C1 CSI, a right-to-left override
hostile=$(printf 'P\033[2J\r\nOK all verified\\\001\177\377\302\233\342\200\256')
shown='\e[2J\r\nOK all verified'

# A pen command whose output carries the pen's strings. Today the pen is
# served; once the library refuses such serials at open, the command must
# fail with a message about the serial. Either way nothing raw comes out.
#   pen_cmd NAME MODE KEY_OR_SHOWN CMD...
pen_cmd() {
    name=$1 mode=$2 want=$3
    shift 3
    "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [ $rc -eq 0 ] && ! grep -qi "serial" "$tmp/err"; then
        ok "$name: served (exit 0)"
        if [ "$mode" = json ]; then
            check "$name: JSON, every key kept" 'safe json $tmp/out $want'
        else
            check "$name: stdout escaped" 'safe $mode $tmp/out "$want"'
        fi
    elif grep -qi "serial" "$tmp/err"; then
        ok "$name: refused, the message says why (exit $rc)" # list: the pen listed, refused
    else
        bad "$name: exit $rc"
        sed 's/^/    /' "$tmp/err" | head -3
    fi
    check "$name: stderr safe" 'safe text $tmp/err'
}

# ---- a pen with a hostile serial --------------------------------------------
start_sim h --serial "$hostile" --seed 31 --simulate-days 2 --start-time $T0
H="--device sim:$tmp/h.sock"
pen_cmd "info" text "$shown" $PL $H info
pen_cmd "info --json" json serial $PL $H --json info
pen_cmd "list" text "$shown" $PL $H list
pen_cmd "list --json" json serial $PL $H --json list
pen_cmd "config get" text "$shown" $PL $H config get
pen_cmd "config get --json" json serial $PL $H --json config get
pen_cmd "config export" json serial $PL $H config export
pen_cmd "config set" text "$shown" $PL $H config set depth_max_um=2500
pen_cmd "pull -o" text "$shown" $PL $H pull --no-ack -o "$tmp/h.plog"
pen_cmd "pull -o --json" json serial $PL $H --json pull --no-ack -o "$tmp/h2.plog"
if [ -s "$tmp/h.plog" ]; then
    run 0 "decode a file of that pen" $PL decode "$tmp/h.plog"
    check "decode: the header's serial is shown escaped" 'safe text $tmp/out "# pen P$shown"'
    run 0 "decode --json" $PL --json decode "$tmp/h.plog"
    check "decode --json: safe" 'safe json $tmp/out'
    check "decode --json: the header keeps the serial" \
        'python3 -c "import json,sys; s=json.loads(open(sys.argv[1]).readline())[\"header\"][\"serial\"]; assert s.startswith(\"P\x1b[2J\") and \"\\\\xff\" in s, s" $tmp/out'
fi
pen_cmd "pull" text "$shown" $PL $H pull
pen_cmd "pull --json" json serial $PL $H --json pull
pen_cmd "watch --once" text "$shown" $PL $H watch --once
pen_cmd "watch --once --json" json serial $PL $H --json watch --once
mkdir -p "$tmp/dock"
$PL $H watch --once --dir "$tmp/dock" > "$tmp/out" 2> "$tmp/err"
rc=$?
check "watch --dir: the serial names no file" '[ $rc -ne 0 ] && [ -z "$(ls $tmp/dock)" ]'
check "watch --dir: stderr safe" 'safe text $tmp/err'
$PL $H --json watch --once --dir "$tmp/dock" > "$tmp/out" 2> "$tmp/err"
check "watch --dir --json: the error is JSON" 'safe json $tmp/err error'

# a label is free text whatever the serial: the pen takes it, or refuses it
start_sim l --serial PEN-L001 --seed 32 --simulate-days 1 --start-time $T0
L="--device sim:$tmp/l.sock"
label=$(printf 'R\033]0;pwned\007\r\377')
$PL $L config set "device_label=$label" > "$tmp/out" 2> "$tmp/err"
check "config set of a hostile label: stdout safe" 'safe text $tmp/out'
check "config set of a hostile label: stderr safe" 'safe text $tmp/err'
run 0 "config get with the label" $PL $L config get
check "config get: the label is shown escaped, or was refused" \
    'safe text $tmp/out && { grep -qF "R\\e]0;pwned" $tmp/out || ! grep -q "^device_label.*R" $tmp/out; }'
run 0 "config get --json" $PL $L --json config get
check "config get --json: every key kept" 'safe json $tmp/out device_label'

# ---- a pen's own words: an Error message with the same bytes ---------------
python3 "$here/pen_says.py" "$tmp/says.sock" PEN-SAYS "$(hex "$hostile")" 2> "$tmp/says.log" &
pids="$pids $!"
wait_sock "$tmp/says.sock" || { echo "pen_says.py did not start"; cat "$tmp/says.log"; exit 1; }
S="--device sim:$tmp/says.sock"
run 4 "info: the pen refuses with a hostile message" $PL $S info
check "the pen's message is shown escaped on stderr" 'safe text $tmp/err "$shown"'
run 4 "info --json: the same" $PL $S --json info
check "the JSON error keeps the message" 'safe json $tmp/err error'
check "with each byte that is not UTF-8 as \\xNN" \
    'python3 -c "import json,sys; e=json.load(open(sys.argv[1]))[\"error\"]; assert \"\x1b[2J\" in e and \"\\\\xff\" in e, e" $tmp/err'

# ---- an archive whose rows hold the same bytes ---------------------------------
start_sim g --serial PEN-G001 --seed 33 --simulate-days 10 --start-time $T0 --max-uses 3 --reuse-permille 200
db=$tmp/hostile.db
run 0 "pull a pen into a fresh archive" $PL --device "sim:$tmp/g.sock" --archive "$db" pull
# a serial that is a spreadsheet formula with a comma and a quote, then the rest
aserial=$(printf '=1+2,"q"\033[2J\r\n\\\377\302\233\342\200\256')
ashown='=1+2,"q"\e[2J\r\n\\\xff'
adetail=$(printf 'gap\033[2J\r\nALL RECORDS VERIFIED\377 \342\200\256end')
sqlite3 "$db" "UPDATE devices SET serial = CAST(X'$(hex "$aserial")' AS TEXT),
                 model = CAST(X'$(hex "$hostile")' AS TEXT);
  INSERT INTO alarms (device_id, at_ms, kind, seq, count, detail)
    VALUES (1, 1767225600000, 'gap', 1, 1, CAST(X'$(hex "$adetail")' AS TEXT));
  INSERT INTO verifications (device_id, at_ms, result, through_seq, records, chunks, detail)
    VALUES (1, 4102444800000, 'broken', 5, 10, 1, CAST(X'$(hex "$adetail")' AS TEXT));" ||
    bad "sqlite3 could not edit the archive"
nrec=$(sqlite3 "$db" "SELECT count(*) FROM records")
AR="--archive $db"
# a note on a finding of that pen (penlink audit annotate), by a hostile
# author, with markup, escape sequences, bytes that are not UTF-8 and a bidi
# override: the archive keeps it as given, every format shows it escaped
rseq=$($PL $AR audit --format json --report cartridges |
    python3 -c 'import json,sys; print(min(o["seq"] for o in map(json.loads, sys.stdin) if o.get("finding") == "reuse"))')
note=$(printf 'fixed <b>it</b>\033[2J\r\nALL CLEAR\377 \342\200\256x')
nshown='fixed <b>it</b>\e[2J\r\nALL CLEAR\xff \u202ex'
nhtml='fixed &lt;b&gt;it&lt;/b&gt;\e[2J\r\nALL CLEAR\xff \u202ex'
nauthor=$(printf 'Dr <i>\033]0;x\007')
run 0 "audit annotate a finding of the hostile pen" $PL $AR audit annotate "reuse:$aserial:$rseq" \
    --text "$note" --operator "$nauthor"
check "annotate: stdout safe" 'safe text $tmp/out "$ashown"'
arch_cmd() { # NAME MODE WANT EXITS CMD... (EXITS: the exit codes allowed, e.g. "0 1")
    name=$1 mode=$2 want=$3 exits=$4
    shift 4
    "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    case " $exits " in
    *" $rc "*) ok "$name (exit $rc)" ;;
    *) bad "$name: exit $rc, want one of $exits"; sed 's/^/    /' "$tmp/err" | head -3 ;;
    esac
    if [ "$mode" = json ]; then
        check "$name: JSON, every key kept" "safe json \$tmp/out $want"
    else
        check "$name: stdout safe" 'safe $mode $tmp/out "$want"'
    fi
    check "$name: stderr safe" 'safe text $tmp/err'
}
arch_cmd "audit" text "$ashown" "0 1" $PL $AR audit
check "audit: the alarm's detail is escaped" 'grep -qF "gap\\e[2J\\r\\nALL RECORDS VERIFIED\\xff \\u202eend" $tmp/out'
check "audit: the note and its author are escaped" 'grep -qF "Dr <i>\\e]0;x\\x07: $nshown" $tmp/out'
arch_cmd "audit --format html" text "" "0 1" $PL $AR audit --format html
check "html: the note is escaped for a terminal, then for HTML" 'grep -qF "$nhtml" $tmp/out'
check "html: the serial too" 'grep -qF "=1+2,&quot;q&quot;\\e[2J\\r\\n\\\\\\xff" $tmp/out'
check "html: no markup from the archive" '! grep -q "<b>it\|<i>" $tmp/out'
arch_cmd "audit --report integrity" text "$ashown" "0 1" $PL $AR audit --report integrity
arch_cmd "audit --format csv" csv "" "0 1" $PL $AR audit --format csv
check "audit csv: the formula is defused" \
    'python3 -c "
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1], encoding=\"utf-8\")) if r and r[0] not in (\"pen\",)]
assert rows and all(r[0].startswith(\"'\''=1+2\") for r in rows), rows[:3]" $tmp/out'
# (the first line, "audit", names the pen filter: null for every pen)
arch_cmd "audit --json" json "serial summary audit audit_scope" "0 1" $PL $AR --json audit
arch_cmd "audit --format json" json "serial summary audit audit_scope" "0 1" $PL $AR audit --format json
arch_cmd "export records (csv)" csv "" 0 $PL $AR export records
rows=$(python3 -c 'import csv,sys; print(len(list(csv.reader(open(sys.argv[1], encoding="utf-8")))) - 1)' "$tmp/out")
check "export records csv: every record" '[ "$rows" -eq "$nrec" ]'
arch_cmd "export records --json" json serial 0 $PL $AR --json export records
check "export records json: every record" '[ "$(wc -l < $tmp/out)" -eq "$nrec" ]'
arch_cmd "export treatments (csv)" csv "" 0 $PL $AR export treatments
arch_cmd "export treatments --json" json serial 0 $PL $AR --json export treatments
$PL $AR export records -o "$tmp/export.csv" > /dev/null 2>&1
check "export -o FILE: the file is safe too" 'safe csv $tmp/export.csv'
arch_cmd "verify" text "$ashown" "0 6" $PL $AR verify
arch_cmd "verify --json" json serial "0 6" $PL $AR --json verify
arch_cmd "audit --pen with the hostile serial" text "$ashown" "0 1" $PL $AR audit --pen "$aserial"
arch_cmd "verify --pen with the hostile serial" text "$ashown" "0 6" $PL $AR verify --pen "$aserial"
arch_cmd "an unknown pen is named escaped" text "" "0 1 2 6" $PL $AR verify --pen "$hostile"

finish
