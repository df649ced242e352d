#!/bin/sh
# A man page against the program it documents: every long option the
# program's help prints is in the page, every long option of the page is in
# the help, and the page renders with groff's warnings on (-ww) without one.
#   check_man.sh penlink PAGE PROGRAM OTHER HEADER...
#       the help of `penlink --help` and of each command and subcommand of the
#       command table (`penlink completion words`), as `penlink CMD [SUB] --help`
#   check_man.sh plain PAGE PROGRAM OTHER HEADER...
#       the help of `PROGRAM --help`
# The exit statuses too: the codes the HEADERs define (EXIT_x = N, SIM_x = N,
# #define SIM_x N), the codes the help's "Exit status" paragraph gives, and
# the page's EXIT STATUS entries are one set.
# OTHER: a grep pattern (basic) of the page's lines that show another
# program's options (penlink(1) citing penlink-sim or cmake, penlink-sim(1)'s
# examples running penlink); those lines are left out of the comparison.
set -eu
kind=$1 page=$2 prog=$3 other=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# long options of a text: --word, --word-word (an option's =VALUE left off)
long_options() { grep -o -- '--[a-z][a-z0-9-]*[a-z0-9]' | sort -u; }

case $kind in
penlink)
    "$prog" --help > "$tmp/help.top"
    cp "$tmp/help.top" "$tmp/help"
    "$prog" completion words > "$tmp/words"
    [ "$(wc -l < "$tmp/words")" -gt 20 ] || { echo "FAIL: a command table of $(wc -l < "$tmp/words") words" >&2; exit 1; }
    # commands, then "command subcommand" pairs (second word not an option)
    awk 'NF == 1 && $1 !~ /^-/ { print $1 } NF == 2 && $2 !~ /^-/ { print $1 " " $2 }' \
        "$tmp/words" > "$tmp/cmds"
    while read -r cmd; do
        # shellcheck disable=SC2086
        "$prog" $cmd --help >> "$tmp/help" 2>&1 || bad "'penlink $cmd --help' exited with $?"
    done < "$tmp/cmds"
    ;;
plain)
    "$prog" --help > "$tmp/help.top"
    cp "$tmp/help.top" "$tmp/help"
    ;;
*) echo "check_man.sh: penlink or plain, not '$kind'" >&2; exit 2 ;;
esac
long_options < "$tmp/help" > "$tmp/help.opts"
[ "$(wc -l < "$tmp/help.opts")" -gt 5 ] || { echo "FAIL: the help shows $(wc -l < "$tmp/help.opts") options" >&2; exit 1; }

# the page's text with roff's escapes undone where options are concerned
grep -v -- "$other" "$page" | sed 's/\\-/-/g; s/\\f[BIRP]//g' |
    long_options > "$tmp/page.opts"

while read -r o; do
    grep -qx -- "$o" "$tmp/page.opts" || bad "$page lacks $o (in $(basename "$prog")'s help)"
done < "$tmp/help.opts"
while read -r o; do
    grep -qx -- "$o" "$tmp/help.opts" || bad "$page shows $o, which $(basename "$prog")'s help does not"
done < "$tmp/page.opts"

# penlink(1)'s COMMANDS against the command table: each entry's heading (the
# line after .TP) names its command first, then its subcommands and options
if [ "$kind" = penlink ]; then
    awk '/^\.SH COMMANDS/ { on = 1; next } /^\.SH/ { on = 0 } on && prev == ".TP" { print } { prev = $0 }' \
        "$page" | sed 's/\\-/-/g; s/\\f[BIRP]//g; s/"//g; s/^\.[A-Z]* //; s/[][|]/ /g' > "$tmp/heads"
    [ -s "$tmp/heads" ] || bad "$page: no COMMANDS section"
    while read -r cmd sub; do
        if [ -z "$sub" ]; then
            awk -v c="$cmd" '$1 == c { f = 1 } END { exit !f }' "$tmp/heads" ||
                bad "$page does not list the command $cmd"
        else
            awk -v c="$cmd" -v s="$sub" '$1 == c { for (i = 2; i <= NF; i++) if ($i == s) f = 1 }
                END { exit !f }' "$tmp/heads" || bad "$page does not list '$cmd $sub'"
        fi
    done < "$tmp/cmds"
    awk '{ print $1 }' "$tmp/heads" | sort -u | while read -r cmd; do
        grep -qx -- "$cmd" "$tmp/cmds" || echo "$page lists a command '$cmd' the command table does not have"
    done > "$tmp/extra"
    [ -s "$tmp/extra" ] && bad "$(cat "$tmp/extra")"
fi

# exit statuses: the code's, the help's, the page's
[ "$#" -gt 0 ] || bad "no header with the exit codes given"
grep -ohE '(EXIT|SIM)_[A-Z_]+ *= *[0-9]+|#define SIM_[A-Z_]+ [0-9]+' "$@" | grep -oE '[0-9]+$' |
    sort -nu > "$tmp/codes"
[ "$(wc -l < "$tmp/codes")" -gt 3 ] || bad "the headers define $(wc -l < "$tmp/codes") exit codes"
sed -n '/^Exit status/,$p' "$tmp/help.top" | tr '\n' ' ' | grep -oE '(^|[ ,:])[0-9]+ [A-Za-z(]' |
    grep -oE '[0-9]+' | sort -nu > "$tmp/help.codes"
awk '/^\.SH EXIT STATUS/ { on = 1; next } /^\.SH/ { on = 0 } on && prev == ".TP" { print } { prev = $0 }' \
    "$page" | sed -n 's/^\.B \([0-9]*\)$/\1/p' | sort -nu > "$tmp/page.codes"
cmp -s "$tmp/codes" "$tmp/help.codes" ||
    bad "exit codes: the code has $(tr '\n' ' ' < "$tmp/codes"), $(basename "$prog") --help gives $(tr '\n' ' ' < "$tmp/help.codes")"
cmp -s "$tmp/codes" "$tmp/page.codes" ||
    bad "exit codes: the code has $(tr '\n' ' ' < "$tmp/codes"), $page's EXIT STATUS $(tr '\n' ' ' < "$tmp/page.codes")"

# penlink's "no device" (3): every cause the page's entry gives (its words
# between commas, parentheses left out) is in the help's exit status too
if [ "$kind" = penlink ]; then
    sed -n '/^Exit status/,$p' "$tmp/help.top" | tr '\n' ' ' | tr -s ' ' > "$tmp/help.exit"
    awk '/^\.SH EXIT STATUS/ { on = 1 } on && /^\.B 3$/ { f = 1; next } f && /^\.TP/ { exit } f' "$page" |
        tr '\n' ' ' | sed 's/([^)]*)//g; s/^No device: *//; s/\. *$//; s/, or /, /g; s/, */\n/g' |
        sed 's/ *$//' > "$tmp/page.nodev"
    echo >> "$tmp/page.nodev" # its last cause ends its line too
    [ "$(wc -l < "$tmp/page.nodev")" -ge 3 ] || bad "$page: exit status 3 gives $(wc -l < "$tmp/page.nodev") causes"
    while read -r cause || [ -n "$cause" ]; do
        grep -qF -- "$cause" "$tmp/help.exit" || bad "exit status 3: $page gives '$cause', penlink --help does not"
    done < "$tmp/page.nodev"
fi

# rendering: groff exits 0 even when it warns, so its words are the verdict
groff -man -ww -z "$page" > "$tmp/groff" 2>&1 || bad "groff -man -ww -z $page exited with $?"
if [ -s "$tmp/groff" ]; then
    cat "$tmp/groff" >&2
    bad "groff warns about $page"
fi
[ "$fails" -eq 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "ok: $page: $(wc -l < "$tmp/help.opts") options and exit codes $(tr '\n' ' ' < "$tmp/codes")as $(basename "$prog") --help and the code have them; renders without warnings"
