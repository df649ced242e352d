#!/bin/sh
# Shell completions against the command table they are made from:
# `penlink completion words` dumps the table (commands, subcommands, each
# command's options, the global options). Every word must be in each
# installed-to-be script (bash, zsh, fish), and each shell must complete it
# from a prefix: bash and fish by running their completion, zsh by running
# the function with compadd and _files standing in for its completion
# system. The table is also held to the help texts: every command is in
# `penlink --help`, every option (--help aside) in its command's, a short
# one as "-O, --OPTION". Then: short options offered (fish's globals too),
# --help once among a command's options and the globals, and the values of
# --format, --report, --by (each in its command's help) and --tz offered.
#   test_completion.sh PENLINK COMPLETION_DIR
set -eu
penlink=$1 dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$penlink" completion words > "$tmp/words" || { echo "FAIL: completion words" >&2; exit 1; }
[ "$(wc -l < "$tmp/words")" -gt 20 ] || { echo "FAIL: a table of $(wc -l < "$tmp/words") words" >&2; exit 1; }
for sh in bash zsh fish; do
    [ -s "$dir/penlink.$sh" ] || { echo "FAIL: no $dir/penlink.$sh" >&2; exit 1; }
    "$penlink" completion $sh | cmp -s - "$dir/penlink.$sh" || bad "$dir/penlink.$sh is stale"
done
zsh -n "$dir/penlink.zsh" || bad "zsh -n penlink.zsh"
fish -n "$dir/penlink.fish" || bad "fish -n penlink.fish"
bash -n "$dir/penlink.bash" || bad "bash -n penlink.bash"

# complete SHELL WORD...: what SHELL offers for the last word (a prefix)
complete_bash() {
    n=$(($# - 1))
    # shellcheck disable=SC2016
    bash -c 'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _penlink; printf "%s\n" "${COMPREPLY[@]}"' \
        "$dir/penlink.bash" penlink "$@" 2> /dev/null
    : "$n"
}
complete_fish() {
    fish -c 'source $argv[1]; complete -C"$argv[2]"' "$dir/penlink.fish" "penlink $*" 2> /dev/null |
        cut -f1
}
complete_zsh() {
    # shellcheck disable=SC2016
    zsh -f -c '
        compadd() { if [[ $1 == -a ]]; then shift; local a; for a; do print -l -- ${(P)a}; done;
                    else print -l -- "$@"; fi }
        _files() { print -- "<files>" }
        source "$1"; shift
        words=(penlink "$@"); CURRENT=${#words}; PREFIX=${words[-1]}
        _penlink' zsh "$dir/penlink.zsh" "$@" 2> /dev/null | grep -x -- "${PREFIXPAT:-.*}" || true
}

while read -r a b; do
    if [ -z "$b" ]; then
        line=$a
        # a global option, or a command: first word after penlink
        set -- "$a"
    else
        line="$a $b"
        set -- "$a" "$b"
    fi
    word=${b:-$a}
    case $word in --*) fishword="-l ${word#--}" ;; -?) fishword="-s ${word#-}" ;; *) fishword=$word ;; esac
    grep -qF -- "$word" "$dir/penlink.bash" || bad "penlink.bash lacks '$line'"
    grep -qF -- "$word" "$dir/penlink.zsh" || bad "penlink.zsh lacks '$line'"
    grep -qF -- "$fishword" "$dir/penlink.fish" || bad "penlink.fish lacks '$line'"
    last=$(eval printf '%s' "\"\${$#}\"") # not echo: -n and -e are words here
    # the word's prefix: all but its last letter (at least "-" + one letter of an option)
    prefix=$(printf '%s' "$last" | sed 's/.$//')
    if [ "$#" -eq 1 ]; then args=$prefix; else args="$1 $prefix"; fi
    # shellcheck disable=SC2086
    complete_bash $args | grep -qx -- "$last" || bad "bash: 'penlink $args<TAB>' does not offer '$last'"
    # shellcheck disable=SC2086
    complete_zsh $args | grep -qx -- "$last" || bad "zsh: 'penlink $args<TAB>' does not offer '$last'"
    complete_fish "$args" | grep -qx -- "$last" || bad "fish: 'penlink $args<TAB>' does not offer '$last'"
done < "$tmp/words"

# The table against the help texts.
"$penlink" --help > "$tmp/help"
while read -r a b; do
    case $a in
    --*) grep -q -- "$a" "$tmp/help" || bad "--help does not show the global option $a" ;;
    -?) grep -q -- "  $a, --" "$tmp/help" || bad "--help does not show the global option $a" ;;
    *)
        if [ -z "$b" ]; then
            grep -q "^  $a\b" "$tmp/help" || bad "--help does not list the command $a"
            continue
        fi
        case $b in
        --help | -h) ;;
        -* | --*)
            {
                "$penlink" "$a" --help
                awk -v c="$a" '$1 == c && $2 !~ /^-/ { print $2 }' "$tmp/words" |
                    while read -r s; do "$penlink" "$a" "$s" --help 2> /dev/null || true; done
            } > "$tmp/cmdhelp" 2>&1 || true
            case $b in -?) want="$b, --" ;; *) want=$b ;; esac
            grep -q -- "$want" "$tmp/cmdhelp" || bad "'penlink $a --help' does not show $b"
            ;;
        *) grep -q "^  $a $b\b\|$b" "$tmp/help" || bad "--help does not show '$a $b'" ;;
        esac
        ;;
    esac
done < "$tmp/words"

# After an option that takes a value, and for a command's arguments: files.
complete_bash pull --output "" > "$tmp/files" || true
[ -s "$tmp/files" ] || bad "bash: no file names after 'pull --output'"

# Short options (the words above have them from the same table): the
# global ones, and a command's
for sh in bash zsh fish; do
    for o in -d -q -v -h -V; do
        complete_$sh - | grep -qx -- "$o" || bad "$sh: 'penlink -<TAB>' does not offer $o"
    done
    for o in -f -m -h; do
        complete_$sh decode - | grep -qx -- "$o" || bad "$sh: 'penlink decode -<TAB>' does not offer $o"
    done
done
# A command's options with the globals: each once (--help is both)
for sh in bash zsh fish; do
    n=$(complete_$sh info - | grep -cx -- --help)
    [ "$n" -eq 1 ] || bad "$sh: 'penlink info -<TAB>' offers --help $n times"
done
# An option with a set of values completes them, not file names; each value
# is in its command's help. The sets are the scripts' "CMD:--OPT" cases.
sed -n 's/^ *\([a-z]*\):--\([a-z]*\).*compgen -W "\([^$"]*\)".*/\1 \2 \3/p' "$dir/penlink.bash" > "$tmp/sets"
[ "$(wc -l < "$tmp/sets")" -ge 4 ] || bad "penlink.bash has $(wc -l < "$tmp/sets") options with a set of values"
while read -r cmd opt vals; do
    "$penlink" "$cmd" --help > "$tmp/cmdhelp" 2>&1 || true
    for v in $vals; do
        grep -qw -- "$v" "$tmp/cmdhelp" || bad "$cmd --$opt $v: not in 'penlink $cmd --help'"
        for sh in bash zsh fish; do
            complete_$sh "$cmd" "--$opt" "" | grep -qx -- "$v" ||
                bad "$sh: 'penlink $cmd --$opt <TAB>' does not offer $v"
        done
    done
done < "$tmp/sets"
for sh in bash zsh fish; do
    complete_$sh audit -f "" | grep -qx json || bad "$sh: 'penlink audit -f <TAB>' does not offer json"
    complete_$sh audit --tz Europe/Be | grep -qx Europe/Berlin ||
        bad "$sh: 'penlink audit --tz Europe/Be<TAB>' does not offer Europe/Berlin"
done

[ "$fails" -eq 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "ok: $(wc -l < "$tmp/words") words of the table, in and completed by bash, zsh and fish"
