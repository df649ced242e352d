#!/bin/sh
# The audit report document in a real browser. Pens with every planted
# finding are pulled into an archive; `penlink audit --format html` writes the
# report; headless Chromium, with no network, loads it, and the DOM it built
# must say what `penlink audit --format json` says: the verdict, the counts,
# each finding with its evidence, one chart bar per pen and week, one appendix
# row per treatment. Printed to PDF, it has pages and names every finding.
# Strings from pens and the archive (markup, control characters, bytes that
# are not UTF-8) are escaped. --check-report says whether a report handed over
# still matches the archive. Annotations of findings are kept for good and
# shown in every format. The screenshot and the PDF are kept in ARTEFACTS.
# Usage: test_report_html.sh PENLINK PENLINK_SIM ARTEFACTS_DIR
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
ART=$3
. "$(dirname "$0")/harness.sh"
mkdir -p "$ART"
# no network: names resolve nowhere, and any fetch goes to a closed port
browser() { # args...: headless chromium (the first start takes a few seconds)
    chromium --headless --no-sandbox --disable-gpu --proxy-server=http://127.0.0.1:9 \
        --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$tmp/chromium" "$@" \
        2> "$tmp/chromium.err"
}
command -v chromium > /dev/null && command -v pdfinfo > /dev/null ||
    { echo "chromium and poppler-utils are needed (tools/setup.sh installs them)"; exit 1; }

A=$tmp/a.db
$SIM --state "$tmp/o" --serial PEN-O --seed 101 --simulate-days 7 --start-time $T0 \
    --reuse-permille 100 > /dev/null
$SIM --state "$tmp/p" --serial PEN-P --seed 1 --simulate-days 14 --start-time $T0 \
    --reuse-permille 80 --max-uses 3 --over-limit-permille 40 --no-cartridge-permille 40 \
    --depth-out-permille 40 --speed-out-permille 40 --clock-glitch-permille 30 \
    --clock-set-permille 40 --config-refused-permille 40 --reuse-from "$tmp/o" \
    --cross-reuse-permille 60 > /dev/null
# a serial with markup in it (printable, so a pen may have it)
$SIM --state "$tmp/h" --serial '<b>P&"1</b>' --seed 7 --simulate-days 2 --start-time $T0 > /dev/null
for p in o p h; do
    start_sim $p
    $PL --archive "$A" --device "sim:$tmp/$p.sock" --quiet pull > /dev/null 2>&1 || bad "pull $p"
    stop_sim $p
done
# hostile text where an archive keeps it: a clinic id and a label with markup,
# escape sequences and bytes that are not UTF-8
python3 - "$A" << 'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
cur = con.execute("SELECT id, new_json FROM config_history ORDER BY id DESC LIMIT 1")
i, j = cur.fetchone()
bad = b'<script>alert(1)</script>\x1b[2J\xff\xfe<img src=x onerror=alert(2)>'
j = j.encode().replace(b'"clinic_id":""', b'"clinic_id":"' + bad + b'"')
j = j.replace(b'"device_label":""', b'"device_label":"room <i>2</i>\x07"')
con.execute("INSERT INTO config_history (device_id, at_ms, source, os_user, host, revision, "
            "old_json, new_json) SELECT device_id, at_ms + 1, 'read', 'eve<u>', 'h\x1bost', "
            "revision, NULL, CAST(? AS TEXT) FROM config_history WHERE id = ?", (j, i))
con.commit()
PY

R=$tmp/report.html
run 1 "audit --format html -o FILE (the planted findings: exit 1)" $PL --archive "$A" audit --tz UTC --format html -o "$R"
check "the report says where it is and its digest" 'grep -q "report written to .*report.html (data digest [0-9a-f]\{64\}); verdict FAIL" $tmp/err'
$PL --archive "$A" audit --tz UTC --format json > "$tmp/audit.json"
$PL --archive "$A" audit --tz UTC --format json --by week --report usage > "$tmp/usage.json"
check "self-contained: no script, no remote or linked resource" \
    '! grep -Eiq "<script|<link|<iframe|<object|@import|url\(|https?://" $R'
browser --dump-dom "file://$R" > "$tmp/dom.html"
check "Chromium loads it (with the network off)" '[ -s $tmp/dom.html ]'
python3 - "$tmp/dom.html" "$tmp/audit.json" "$tmp/usage.json" << 'PY' && ok "the DOM says what the JSON audit says" || bad "DOM and JSON differ"
import json, sys
from html.parser import HTMLParser

class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.el = []
        self.text = {}
        self.cur = None
        self.tags = set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        a["_tag"] = tag
        self.tags.add(tag)
        self.el.append(a)
        self.cur = a.get("id")
        if self.cur:
            self.text[self.cur] = ""
    def handle_endtag(self, tag):
        self.cur = None
    def handle_data(self, d):
        if self.cur:
            self.text[self.cur] += d

dom = Dom()
dom.feed(open(sys.argv[1], encoding="utf-8").read())
rows = [json.loads(l) for l in open(sys.argv[2])]
usage = [json.loads(l) for l in open(sys.argv[3]) if '"type":"usage"' in l]
s = rows[-1]
assert "script" not in dom.tags and "img" not in dom.tags, dom.tags
assert not [e for e in dom.el if "src" in e or "href" in e], "a linked resource"
v = [e for e in dom.el if e.get("id") == "verdict"][0]
assert (v["data-verdict"], int(v["data-compliance"]), int(v["data-integrity"])) == \
    (s["verdict"], s["compliance"], s["integrity"]), (v, s)
for key, name in (("pens", "n-pens"), ("records_in_window", "n-records"),
                  ("treatments", "n-treatments"), ("cartridges", "n-cartridges"),
                  ("compliance", "n-compliance"), ("integrity", "n-integrity")):
    assert int(dom.text[name]) == s[key], (name, dom.text[name], s[key])
kinds = {e["data-kind"]: int(e["data-count"]) for e in dom.el if e.get("data-count") and
         e.get("_tag") == "span"}
assert kinds == s["findings"], (kinds, s["findings"])
want = sorted((f["finding"], f["serial"], f["seq"]) for f in rows if f["type"] == "finding")
got = sorted((e["data-kind"], e["data-pen"], int(e["data-seq"])) for e in dom.el
             if "finding" in e.get("class", "").split() and e["_tag"] == "tr")
assert got == want, (len(got), len(want), sorted(set(got) ^ set(want))[:5])
ev_want = sorted((t["serial"], t["seq"]) for f in rows if f["type"] == "finding"
                 for t in f.get("treatments", []))
ev_got = sorted((e["data-pen"], int(e["data-seq"])) for e in dom.el
                if e.get("class") == "evidence")
assert ev_got == ev_want, (len(ev_got), len(ev_want))
bars = sorted((e["data-pen"], e["data-week"], int(e["data-count"])) for e in dom.el
              if e.get("class") == "bar treatments")
assert bars == sorted((u["serial"], u["period"], u["treatments"]) for u in usage), bars[:5]
assert len(bars) == len({(u["serial"], u["period"]) for u in usage}), "one bar per pen and week"
cart = sorted((e["data-pen"], e["data-week"], int(e["data-count"])) for e in dom.el
              if e.get("class") == "bar cartridges")
assert cart == sorted((u["serial"], u["period"], u["cartridges"]) for u in usage)
treat = [e for e in dom.el if e.get("class") == "treatment"]
assert len(treat) == sum(1 for r in rows if r["type"] == "treatment") == s["treatments"]
hist = sum(int(e["data-count"]) for e in dom.el if e.get("class") == "hist") // 2
assert hist == s["treatments"], (hist, s["treatments"])
dots = sum(1 for e in dom.el if e.get("class") == "use")
assert dots == len(ev_want), (dots, len(ev_want))
print("   verdict %s, %d findings, %d evidence rows, %d weekly bars, %d treatments" % (
    s["verdict"], len(got), len(ev_got), len(bars), len(treat)))
PY
python3 - "$tmp/dom.html" << 'PY' && ok "hostile strings are shown escaped, not obeyed" || bad "hostile strings"
import sys
from html.parser import HTMLParser
raw = open(sys.argv[1], encoding="utf-8", errors="strict").read()
class P(HTMLParser):
    tags, text = [], []
    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
    def handle_data(self, d):
        self.text.append(d)
p = P()
p.feed(raw)
text = "".join(p.text)
assert not [t for t, a in p.tags if t in ("script", "img", "b", "i", "u")], p.tags
# escaped as in every other format (cli_escape: \e for ESC, \xNN for the rest)
assert "<script>alert(1)</script>\\e[2J\\xff\\xfe<img src=x onerror=alert(2)>" in text, \
    "the clinic id, escaped"
assert "room <i>2</i>\\x07" in text and "eve<u>@h\\eost" in text
assert '<b>P&"1</b>' in text and any(a.get("data-pen") == '<b>P&"1</b>' for t, a in p.tags)
assert "\x1b" not in raw and "\x07" not in raw
PY

# printed: pages, and every finding named in the text
browser --no-pdf-header-footer --print-to-pdf="$ART/report.pdf" "file://$R" > /dev/null
pages=$(pdfinfo "$ART/report.pdf" 2> /dev/null | sed -n 's/^Pages: *//p')
check "the PDF has pages (${pages:-none})" '[ "${pages:-0}" -ge 2 ]'
pdftotext -layout "$ART/report.pdf" "$tmp/report.txt"
python3 - "$tmp/report.txt" "$tmp/audit.json" << 'PY' && ok "the PDF names every finding (kind, pen, seq on its line)" || bad "PDF findings"
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
rows = [json.loads(l) for l in open(sys.argv[2])]
miss = []
for f in (r for r in rows if r["type"] == "finding"):
    pat = re.compile(r"\b%s\b.*%s\s+%d\b" % (re.escape(f["finding"]), re.escape(f["serial"]),
                                              f["seq"]))
    if not any(pat.search(l) for l in lines):
        miss.append((f["finding"], f["serial"], f["seq"]))
assert not miss, miss[:5]
assert any("Verdict: FAIL" in l for l in lines)
PY
browser --screenshot="$ART/report.png" --window-size=1100,1500 "file://$R" > /dev/null
check "a screenshot" '[ -s "$ART/report.png" ]'
cp "$R" "$ART/report.html"

# --check-report: an inspector checks a report handed over to them
run 0 "--check-report: the report as made" $PL --archive "$A" audit --check-report "$R"
check "it says it matches" 'grep -q "matches the archive .*the document is the one penlink made of it" $tmp/out'
cp "$A" "$tmp/copy.db"
run 0 "against a copy of the archive elsewhere" $PL --archive "$tmp/copy.db" audit --check-report "$R"
TZ=Asia/Tokyo $PL --archive "$A" audit --check-report "$R" > "$tmp/out" 2>&1
check "whatever the checker's time zone (the report names its own)" '[ $? -eq 0 ]'
sed 's/>out_of_limits</>no_cartridge</' "$R" > "$tmp/edited.html"
run 6 "a report edited by hand" $PL --archive "$A" audit --check-report "$tmp/edited.html"
check "it says it was altered" 'grep -q "ALTERED after it was made" $tmp/out'
python3 -c 'import re, sys
s = open(sys.argv[1]).read()
m = re.search(r"name=\"penlink-digest\" content=\"(.)", s)
c = "1" if m.group(1) == "0" else "0"
open(sys.argv[2], "w").write(s[:m.start(1)] + c + s[m.start(1) + 1:])' "$R" "$tmp/edited.html"
run 6 "a report whose digest was edited" $PL --archive "$A" audit --check-report "$tmp/edited.html"
$PL --archive "$tmp/copy.db" verify > /dev/null 2>&1
# the audit verifies the logs itself: a stored verdict is not part of what it reports
run 0 "a verification stored since changes nothing" $PL --archive "$tmp/copy.db" audit --check-report "$R"
$PL --archive "$tmp/copy.db" audit annotate "reuse:PEN-O:156" --text "seen" > /dev/null 2>&1
run 6 "the archive changed since (a note)" $PL --archive "$tmp/copy.db" audit --check-report "$R"
check "it says the data does not match" 'grep -q "does NOT match the archive" $tmp/out'
run 6 "--json" $PL --archive "$tmp/copy.db" --json audit --check-report "$R"
check "json: data_matches false" 'grep -q "\"data_matches\":false" $tmp/out'
echo "<html><body>hello</body></html>" > "$tmp/other.html"
run 2 "a file that is not a report" $PL --archive "$A" audit --check-report "$tmp/other.html"
run 2 "--check-report with a window" $PL --archive "$A" audit --check-report "$R" --since 2026-03-02
# PEN-P reused PEN-O's cartridges: an audit of PEN-O alone finds that too (verdict FAIL)
run 1 "a window and a pen" $PL --archive "$A" audit --tz Europe/Berlin --format html -o "$tmp/w.html" \
    --pen PEN-O --since 2026-03-03 --until 2026-03-06
run 0 "its check" $PL --archive "$A" audit --check-report "$tmp/w.html"
check "the window and zone are in its header" \
    'grep -q "from 2026-03-03 00:00:00 to 2026-03-07 00:00:00 (excluded); pen time (the pens. clocks), shown in Europe/Berlin" $tmp/w.html'

echo "# annotations: append-only, with who and when, in every format"
id=$(python3 -c 'import json, sys
print([f["id"] for f in map(json.loads, open(sys.argv[1])) if f.get("finding") == "reuse"][0])' "$tmp/audit.json")
note=$(printf 'Chip <b>reset</b>, pen set to single use; "ok", done\007')
run 0 "annotate $id" $PL --archive "$A" audit annotate "$id" --text "$note" --operator "Dr. A <auditor>"
run 0 "a second note, as the OS user" $PL --archive "$A" audit annotate "$id" --text "checked again"
run 2 "a finding that is not in the audit" $PL --archive "$A" audit annotate reuse:NOPE:1 --text x
check "it says so" 'grep -q "no finding reuse:NOPE:1" $tmp/err'
run 2 "no text" $PL --archive "$A" audit annotate "$id"
check "notes cannot be deleted or changed" \
    '! sqlite3 "$A" "DELETE FROM annotations" 2> /dev/null && ! sqlite3 "$A" "UPDATE annotations SET text = 1" 2> /dev/null && [ "$(sqlite3 "$A" "SELECT count(*) FROM annotations")" = 2 ]'
$PL --archive "$A" audit --tz UTC --format json > "$tmp/a.json"
python3 - "$tmp/a.json" "$id" << 'PY' && ok "json: the finding's annotations, oldest first, with who and when" || bad "json annotations"
import json, sys
f = [x for x in map(json.loads, open(sys.argv[1])) if x.get("id") == sys.argv[2]][0]
a = f["annotations"]
assert [x["by"] for x in a][0] == "Dr. A <auditor>" and a[0]["text"].startswith("Chip <b>reset</b>")
assert a[1]["text"] == "checked again" and "@" in a[1]["by"] and a[0]["at"] <= a[1]["at"], a
PY
$PL --archive "$A" audit --tz UTC --format csv --report cartridges > "$tmp/a.csv"
python3 - "$tmp/a.csv" "$id" << 'PY' && ok "csv: the id and the annotations columns" || bad "csv annotations"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
assert rows[0][-2:] == ["id", "annotations"], rows[0]
r = [x for x in rows if x and x[-2] == sys.argv[2]][0]
assert "Dr. A <auditor>: Chip <b>reset</b>" in r[-1] and "checked again" in r[-1], r[-1]
PY
$PL --archive "$A" audit --tz UTC --report cartridges > "$tmp/a.txt"
check "table: the notes under the finding" \
    '[ "$(grep -c "^  PEN-[A-Z]* *  note " $tmp/a.txt)" = 2 ] && grep -q "  note .*Dr. A <auditor>: Chip" $tmp/a.txt'
run 1 "html with the notes" $PL --archive "$A" audit --tz UTC --format html -o "$tmp/n.html"
browser --dump-dom "file://$tmp/n.html" > "$tmp/n.dom"
python3 - "$tmp/n.dom" "$id" << 'PY' && ok "html: the notes under their finding, escaped" || bad "html annotations"
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    rows, cur, tags = [], None, []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr":
            self.cur = [a, ""]
            self.rows.append(self.cur)
    def handle_data(self, d):
        if self.cur:
            self.cur[1] += d
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
notes = [t for a, t in p.rows if a.get("class") == "annotation" and a.get("data-finding") == sys.argv[2]]
assert len(notes) == 2, notes
assert "by Dr. A <auditor> Chip <b>reset</b>" in notes[0] and "\\x07" in notes[0], notes[0]
assert "b" not in p.tags
i = [k for k, (a, t) in enumerate(p.rows) if a.get("data-id") == sys.argv[2]][0]
assert p.rows[i + 1][0].get("class") == "annotation"
PY
run 6 "the report made before the notes no longer matches" $PL --archive "$A" audit --check-report "$R"

finish
