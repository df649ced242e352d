#!/bin/sh
# Line and branch coverage of a -DPENLINK_COVERAGE=ON build, from the counts
# its tests left (gcov, read by gcovr):
#   tools/coverage.sh BUILD-DIR          the summary, after ctest
#   tools/coverage.sh --zero BUILD-DIR   forget the counts, before running the tests again
#   tools/coverage.sh --check BUILD-DIR  the summary; exit 1 when host/src or protocol/
#                                        is below the target
#   tools/coverage.sh --check SCOPE BUILD-DIR
#                                        the same for one part only: SCOPE is host/src
#                                        or protocol/ (the other is shown, not enforced)
# The summary: host/src, protocol/ and overall (the product's code: host/,
# protocol/, firmware-stub/; not tests/, tools/ nor generated code), then
# host/src file by file, lowest lines first. The target (issue 17) is
# PENLINK_COVERAGE_LINES % of lines and PENLINK_COVERAGE_BRANCHES % of branches
# (92 and 80 unless set) for host/src and for protocol/.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mode=summary
scope=all
case "${1:-}" in
--zero | --check)
    mode=${1#--}
    shift
    ;;
esac
if [ "$mode" = check ] && [ $# -eq 2 ]; then
    case "$1" in
    host/src | host/src/) scope=host/src ;;
    protocol | protocol/) scope=protocol/ ;;
    *)
        echo "$0: --check SCOPE: host/src or protocol/, not $1" >&2
        exit 2
        ;;
    esac
    shift
fi
if [ $# -ne 1 ] || [ ! -f "$1/CMakeCache.txt" ]; then
    echo "usage: $0 [--zero|--check [host/src|protocol/]] BUILD-DIR (a build configured with" \
        "-DPENLINK_COVERAGE=ON)" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
if ! grep -q '^PENLINK_COVERAGE:BOOL=ON' "$build/CMakeCache.txt"; then
    echo "$0: $build is not a coverage build: configure it with -DPENLINK_COVERAGE=ON" >&2
    exit 2
fi
if [ "$mode" = zero ]; then
    find "$build" -name '*.gcda' -delete
    exit 0
fi
if [ -z "$(find "$build" -name '*.gcda' -print -quit)" ]; then
    echo "$0: no counts in $build: run the tests first (ctest)" >&2
    exit 2
fi

summary="$build/coverage-summary.json"
gcovr --root "$root" --object-directory "$build" -j 2 \
    --filter "$root/host/" --filter "$root/protocol/" --filter "$root/firmware-stub/" \
    --json-summary "$summary" "$build" > "$build/coverage.log" 2>&1 ||
    { cat "$build/coverage.log" >&2; exit 1; }

exec python3 - "$summary" "$mode" "${PENLINK_COVERAGE_LINES:-92}" \
    "${PENLINK_COVERAGE_BRANCHES:-80}" "$scope" << 'EOF'
import json
import sys

path, mode, want_lines, want_branches = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
scope = sys.argv[5]
files = json.load(open(path))["files"]


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


def totals(prefix):
    sel = [f for f in files if f["filename"].startswith(prefix)]
    lc = sum(f["line_covered"] for f in sel)
    lt = sum(f["line_total"] for f in sel)
    bc = sum(f["branch_covered"] for f in sel)
    bt = sum(f["branch_total"] for f in sel)
    return lc, lt, bc, bt


def row(name, lc, lt, bc, bt):
    print(f"{name:34} {pct(lc, lt):5.1f} % {lc:6}/{lt:<6} {pct(bc, bt):5.1f} % {bc:6}/{bt:<6}")


print(f"{'coverage':34} {'lines':>17}      {'branches':>17}")
below = []
for name, prefix in (("host/src", "host/src/"), ("protocol/", "protocol/"), ("overall", "")):
    lc, lt, bc, bt = totals(prefix)
    row(name, lc, lt, bc, bt)
    if prefix and scope in ("all", name) and (pct(lc, lt) < want_lines or
                                                pct(bc, bt) < want_branches):
        below.append(name)
print()
print("host/src file by file, lowest lines first:")
for f in sorted((f for f in files if f["filename"].startswith("host/src/")),
                key=lambda f: pct(f["line_covered"], f["line_total"])):
    row("  " + f["filename"][len("host/src/"):], f["line_covered"], f["line_total"],
        f["branch_covered"], f["branch_total"])
print()
verdict = "met" if not below else "not met by " + ", ".join(below)
checked = "host/src and protocol/" if scope == "all" else scope
print(f"target: {checked} >= {want_lines:g} % lines and >= {want_branches:g} % "
      f"branches: {verdict}")
sys.exit(1 if mode == "check" and below else 0)
EOF
