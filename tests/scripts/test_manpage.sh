#!/bin/sh
# docs/penlink.1 as roff: no control characters in its source (a "\f" that a
# script turned into a form feed renders as stray text: "SERIALR)").
# Usage: test_manpage.sh PENLINK.1
set -u
man=${1:?usage: test_manpage.sh PENLINK.1}
fail=0
bad=$(LC_ALL=C tr -d '\t\n' < "$man" | LC_ALL=C tr -cd '\000-\037\177' | wc -c)
if [ "$bad" -ne 0 ]; then
    echo "FAIL $man holds $bad control characters:"
    LC_ALL=C grep -n "$(printf '[\001-\010\013-\037\177]')" "$man"
    fail=1
else
    echo "ok   no control characters in $man"
fi
exit $fail
