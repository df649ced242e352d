#!/bin/sh
# penlink audit and export against the simulator's ground truth: pens with
# planted cartridge reuse (refused by a correctly configured pen, accepted by
# one configured for 3 uses), pulled into one archive; the audit must report
# exactly the reuses, refusals and out-of-limit treatments the ground truth
# holds, and its usage totals and the exports must match the ground truth.
# Usage: test_audit.sh PENLINK PENLINK_SIM
# PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
# PENLINK_TEST_ARCHIVE=postgresql: the same, on PostgreSQL (harness.sh).
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"

# Compares an audit's JSON lines with the ground truth of the pens given as
# SERIAL=STATE_DIR; the configuration (limits) is the pens' own, read as JSON.
# PLANTED names the kinds the pens were made to produce (comma-separated, or
# -): each must be in the ground truth, and reported exactly; every other kind
# must be in neither (an empty set equal to an empty set proves nothing, so it
# is never reported as "as planted").
cat > "$tmp/compare.py" << 'PY'
import json, sys
audit_file, cfg_file, planted = sys.argv[1], sys.argv[2], sys.argv[3]
planted = set() if planted == "-" else set(planted.split(","))
pens = dict(a.split("=", 1) for a in sys.argv[4:])
cfg = json.load(open(cfg_file))
lines = [json.loads(l) for l in open(audit_file)]
findings = [l for l in lines if l["type"] == "finding"]

starts, refusals, out_of_limits, no_cartridge = {}, set(), set(), set()
for pen, state in pens.items():
    recs = [json.loads(l) for l in open(state + "/ground-truth.jsonl")]
    inserted, cur = None, None
    for r in recs:
        k = r["kind"]
        if k == "cartridge_inserted":
            inserted = r["cartridge_serial"]
        elif k == "cartridge_removed":
            inserted = None
        elif k == "cartridge_refused":
            refusals.add((pen, r["seq"]))
        elif k == "treatment_start":
            starts.setdefault(r["cartridge_serial"], []).append((pen, r["seq"]))
            if inserted != r["cartridge_serial"]:
                no_cartridge.add((pen, r["seq"]))
            cur = {"seq": r["seq"], "depths": [r["depth_um"]]}
        elif k == "depth_changed" and cur:
            cur["depths"].append(r["depth_um"])
        elif k == "treatment_end" and cur:
            d = cur["depths"]
            if (min(d) < cfg["depth_min_um"] or max(d) > cfg["depth_max_um"]
                    or r["duration_ms"] > cfg["max_treatment_s"] * 1000):
                out_of_limits.add((pen, cur["seq"]))
            cur = None

want_reuse = {str(s): sorted(v) for s, v in starts.items() if len(v) > 1}
got_reuse = {f["cartridge_serial"]: sorted((t["serial"], t["seq"]) for t in f["treatments"])
             for f in findings if f["finding"] == "reuse"}
got_refused = {(f["serial"], f["seq"]) for f in findings if f["finding"] == "refused"}
got_ool = {(f["serial"], f["seq"]) for f in findings if f["finding"] == "out_of_limits"}
got_nocart = {(f["serial"], f["seq"]) for f in findings if f["finding"] == "no_cartridge"}
ok = True
for kind, got, want in (("reuse", got_reuse, want_reuse), ("refused", got_refused, refusals),
                        ("out_of_limits", got_ool, out_of_limits),
                        ("no_cartridge", got_nocart, no_cartridge)):
    if kind in planted and not want:
        ok = False
        print("   %s: planted, but the ground truth holds none" % kind)
    elif kind not in planted and want:
        ok = False
        print("   %s: not planted, but the ground truth holds %d" % (kind, len(want)))
    elif got != want:
        ok = False
        print("   %s: reported %d, ground truth %d; missing %s, extra %s"
              % (kind, len(got), len(want), sorted(set(want) - set(got))[:5],
                 sorted(set(got) - set(want))[:5]))
    elif want:
        print("   %s: %d planted, the same %d reported" % (kind, len(want), len(got)))
    else:
        print("   %s: none planted, none reported" % kind)
sys.exit(0 if ok else 1)
PY

# (a) a pen that refuses reuse, one that accepts it (max 3 uses) and lets some
# treatments run past max_treatment_s, one archive
start_sim r --serial PEN-REF1 --seed 21 --simulate-days 21 --start-time $T0 --reuse-permille 60
start_sim m --serial PEN-MAX3 --seed 22 --simulate-days 21 --start-time $T0 --reuse-permille 60 --max-uses 3 \
    --over-limit-permille 40
AR="--archive $(archive a)"
run 0 "pull the refusing pen" $PL $AR --device "sim:$tmp/r.sock" pull
run 0 "pull the pen that accepts reuse" $PL $AR --device "sim:$tmp/m.sock" pull
$PL --device "sim:$tmp/r.sock" config get --json > "$tmp/cfg.json"
run 1 "audit: exit 1 for the planted reuse" $PL $AR audit --format json
cp "$tmp/out" "$tmp/audit.json"
python3 "$tmp/compare.py" "$tmp/audit.json" "$tmp/cfg.json" reuse,refused,out_of_limits \
    PEN-REF1="$tmp/r" PEN-MAX3="$tmp/m" &&
    ok "audit reports exactly the planted reuses, refusals, limits" || bad "audit differs from ground truth"
python3 - "$tmp/m" << 'PY' && ok "the ground truth holds reuses and refusals to find" || bad "nothing planted"
import json, sys
starts = [json.loads(l).get("cartridge_serial") for l in open(sys.argv[1] + "/ground-truth.jsonl")
          if '"treatment_start"' in l]
assert len(starts) != len(set(starts))
PY
python3 - "$tmp/m" "$tmp/cfg.json" << 'PY' && ok "the ground truth holds overlong treatments to find" || bad "none planted"
import json, sys
lim = json.load(open(sys.argv[2]))["max_treatment_s"] * 1000
ends = [json.loads(l) for l in open(sys.argv[1] + "/ground-truth.jsonl") if '"treatment_end"' in l]
assert sum(e["duration_ms"] > lim for e in ends) >= 3
PY
check "the refusing pen refused" 'grep -q "\"finding\":\"refused\",\"compliance\":false,\"serial\":\"PEN-REF1\"" $tmp/audit.json'
check "summary line last" 'tail -1 $tmp/audit.json | grep -q "\"type\":\"summary\""'
run 0 "the refusing pen alone: exit 0 (--pen)" $PL $AR audit --format json --pen PEN-REF1
python3 "$tmp/compare.py" "$tmp/out" "$tmp/cfg.json" refused PEN-REF1="$tmp/r" &&
    ok "--pen: exactly that pen's refusals" || bad "--pen findings differ"
run 0 "the refusing pen alone: exit 0 (--device usb:SERIAL)" $PL $AR --device usb:PEN-REF1 audit --report cartridges
check "table output names the refusals" 'grep -q "refused" $tmp/out && grep -q "no compliance finding" $tmp/out'
run 2 "--device sim:... is not a pen filter" $PL $AR --device "sim:$tmp/r.sock" audit
# the pen acknowledged everything into the first archive: a second archive
# gets its row but no record, and an audit of nothing is no pass
AR1="--archive $(archive one)"
$PL $AR1 --device "sim:$tmp/r.sock" --quiet pull > /dev/null 2>&1
run 1 "an archive that holds a pen but no record: exit 1" $PL $AR1 audit
check "the finding says there were no records to audit" 'grep -q "no_records .*no records to audit" $tmp/out'
run 1 "table output: exit 1" $PL $AR audit
check "table: the reuse and its treatments" 'grep -q " reuse " $tmp/out && grep -q "  treatment " $tmp/out'
run 1 "csv output" $PL $AR audit --format csv --report cartridges
check "csv: header and rows" 'head -1 $tmp/out | grep -q "^pen,finding,compliance" && grep -q ",reuse,1," $tmp/out'
run 2 "bad --report" $PL $AR audit --report nonsense
run 2 "bad --since" $PL $AR audit --since yesterday

# (c) usage totals and treatments against the ground truth, per day / week / month
for by in day week month; do
    $PL $AR audit --format json --report usage --by $by > "$tmp/usage.json"
    python3 - "$tmp/usage.json" "$tmp/r" "$tmp/m" << 'PY' && ok "usage by $by: totals equal the ground truth" || bad "usage by $by"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
u = [r for r in rows if r["type"] == "usage"]
t = c = ms = 0
for d in sys.argv[2:]:
    for l in open(d + "/ground-truth.jsonl"):
        r = json.loads(l)
        t += r["kind"] == "treatment_start"
        c += r["kind"] == "cartridge_inserted"
        ms += r.get("duration_ms", 0) if r["kind"] == "treatment_end" else 0
assert sum(r["treatments"] for r in u) == t, (sum(r["treatments"] for r in u), t)
assert sum(r["cartridges"] for r in u) == c
assert abs(sum(r["treatment_minutes"] for r in u) - ms / 60000) < 0.01
assert all(r["period"] for r in u) and len({(r["serial"], r["period"]) for r in u}) == len(u)
PY
done
$PL $AR audit --format json --report treatments > "$tmp/treat.json"
python3 - "$tmp/treat.json" "$tmp/r" "$tmp/m" << 'PY' && ok "treatments: one per treatment_start, with duration and strokes" || bad "treatments differ"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
t = {(r["serial"], r["start_seq"]): r for r in rows if r["type"] == "treatment"}
want = {}
for pen, d in (("PEN-REF1", sys.argv[2]), ("PEN-MAX3", sys.argv[3])):
    start = None
    for l in open(d + "/ground-truth.jsonl"):
        r = json.loads(l)
        if r["kind"] == "treatment_start":
            start = r
            want[(pen, r["seq"])] = {"depths": [r["depth_um"]], "times": [r["time_ms"]]}
        elif r["kind"] == "depth_changed" and start:
            want[(pen, start["seq"])]["depths"].append(r["depth_um"])
            want[(pen, start["seq"])]["times"].append(r["time_ms"])
        elif r["kind"] == "treatment_end" and start:
            w = want[(pen, start["seq"])]
            w["duration_ms"], w["strokes"], w["end"] = r["duration_ms"], r["strokes"], r["time_ms"]
            start = None
assert set(t) == set(want), (len(t), len(want))
for k, w in want.items():
    g = t[k]
    assert g["duration_ms"] == w["duration_ms"] and g["strokes"] == w["strokes"] and g["ended"]
    assert g["depth_min_um"] == min(w["depths"]) and g["depth_max_um"] == max(w["depths"])
    ts = w["times"] + [w["end"]]
    num = sum(d * (ts[i + 1] - ts[i]) for i, d in enumerate(w["depths"]))
    assert abs(g["depth_mean_um"] - num / (ts[-1] - ts[0])) <= 0.5, (k, g, num / (ts[-1] - ts[0]))
PY

# the window: treatments that start in it
python3 - "$tmp/r" > "$tmp/window" << 'PY'
import json, sys, datetime
starts = [json.loads(l)["time_ms"] for l in open(sys.argv[1] + "/ground-truth.jsonl")
          if '"treatment_start"' in l]
day = datetime.datetime.fromtimestamp(starts[len(starts) // 2] / 1000, datetime.timezone.utc).date()
lo = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp() * 1000
n = sum(1 for s in starts if lo <= s < lo + 2 * 86400000)
print(day.isoformat(), (day + datetime.timedelta(days=1)).isoformat(), n)
PY
read since until nwin < "$tmp/window"
run 0 "--since/--until: a two-day window" $PL $AR audit --pen PEN-REF1 --since "$since" --until "$until" --format json --report treatments
check "window: only the treatments that start in it ($nwin)" '[ "$(grep -c "\"type\":\"treatment\"" $tmp/out)" -eq "$nwin" ]'

# (d) export
total=$(cat "$tmp/r/ground-truth.jsonl" "$tmp/m/ground-truth.jsonl" | wc -l)
ntreat=$(cat "$tmp/r/ground-truth.jsonl" "$tmp/m/ground-truth.jsonl" | grep -c '"treatment_start"')
run 0 "export records (csv)" $PL $AR export records -o "$tmp/records.csv"
check "export records: one row per ground-truth record" '[ $(($(wc -l < $tmp/records.csv) - 1)) -eq "$total" ]'
run 0 "export records (json)" $PL $AR export records --format json
check "export records json: one line per record" '[ "$(wc -l < $tmp/out)" -eq "$total" ]'
python3 - "$tmp/out" "$tmp/r" "$tmp/m" << 'PY' && ok "export records json equals the ground truth" || bad "exported records differ"
import json, sys
got = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    got.setdefault(r.pop("serial"), []).append(r)
for pen, d in (("PEN-REF1", sys.argv[2]), ("PEN-MAX3", sys.argv[3])):
    want = [json.loads(l) for l in open(d + "/ground-truth.jsonl")]
    g = got[pen]
    assert len(g) == len(want)
    for a, b in zip(g, want):
        a.pop("time")
        assert a.pop("schema") == 1
        if "cartridge_serial" in a:
            a["cartridge_serial"] = int(a["cartridge_serial"])
        assert a == b, (a, b)
PY
run 0 "export treatments (csv)" $PL $AR export treatments
check "export treatments: one row per treatment" '[ $(($(wc -l < $tmp/out) - 1)) -eq "$ntreat" ]'
run 0 "export treatments (json, one pen)" $PL $AR export treatments --format json --pen PEN-MAX3
check "export treatments json: that pen's treatments" \
    '[ "$(wc -l < $tmp/out)" -eq "$(grep -c "\"treatment_start\"" $tmp/m/ground-truth.jsonl)" ]'
run 2 "export: bad kind" $PL $AR export nonsense

# (b) the same cartridges on two pens: same seed, same serials
start_sim x --serial PEN-X001 --seed 33 --simulate-days 5 --start-time $T0
start_sim y --serial PEN-X002 --seed 33 --simulate-days 5 --start-time $T0
AX="--archive $(archive x)"
$PL $AX --device "sim:$tmp/x.sock" --quiet pull > /dev/null 2>&1
$PL $AX --device "sim:$tmp/y.sock" --quiet pull > /dev/null 2>&1
run 1 "cross-pen reuse: exit 1" $PL $AX audit --format json --report cartridges
cp "$tmp/out" "$tmp/cross.json"
python3 "$tmp/compare.py" "$tmp/cross.json" "$tmp/cfg.json" reuse PEN-X001="$tmp/x" PEN-X002="$tmp/y" &&
    ok "cross-pen: exactly the shared cartridges" || bad "cross-pen differs"
python3 - "$tmp/cross.json" "$tmp/x" << 'PY' && ok "cross-pen: both pens in every reuse's evidence" || bad "cross-pen evidence"
import json, sys
f = [json.loads(l) for l in open(sys.argv[1])]
reuse = [x for x in f if x.get("finding") == "reuse"]
n = sum(1 for l in open(sys.argv[2] + "/ground-truth.jsonl") if '"treatment_start"' in l)
assert len(reuse) == n and n > 0, (len(reuse), n)
for x in reuse:
    assert {t["serial"] for t in x["treatments"]} == {"PEN-X001", "PEN-X002"}, x
    assert "different pens" in x["detail"]
PY

# a mistyped archive path is an error, not an empty archive with nothing to report
if [ "$backend" = sqlite ]; then
    run 7 "audit of a missing archive" $PL --archive "$tmp/no-such/archive.db" audit
    check "missing archive explained" 'grep -q "pull a pen into it first" $tmp/err'
    check "and not created" '[ ! -e $tmp/no-such/archive.db ]'
    run 7 "export from a missing archive" $PL --archive "$tmp/no-such.db" export records
else # a database with no archive in it; one that does not exist
    E=$(archive empty)
    run 7 "audit of a database with no archive" $PL --archive "$E" audit
    check "missing archive explained" 'grep -q "pull a pen into it first" $tmp/err'
    check "and not created" '[ "$(q "$E" "SELECT count(*) FROM pg_namespace WHERE nspname = '"'penlink'"'")" = 0 ]'
    run 7 "export from a database that does not exist" $PL --archive "$(pg_uri no_such_db)" export records
    check "the server's words" 'grep -q "does not exist" $tmp/err'
fi

finish
