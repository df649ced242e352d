#!/bin/sh
# Technician keys and signed configuration through the penlink CLI: keys
# generate/show, a pen provisioned with one key takes configuration signed
# by it and refuses everything else with exit status 9.
# Usage: test_keys.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
K=$tmp/keys
mkdir -p "$K"

run 0 "keys generate" $PL keys generate "$K/tech.key"
check "secret key file is 0600" '[ "$(stat -c %a "$K/tech.key")" = 600 ]'
check "public key file next to it" '[ -f "$K/tech.key.pub" ] && grep -q "^penlink-public-key ed25519 [0-9a-f]\{64\}$" "$K/tech.key.pub"'
before=$(cksum < "$K/tech.key")
run 7 "keys generate refuses to overwrite" $PL keys generate "$K/tech.key"
check "the existing key is untouched" '[ "$(cksum < "$K/tech.key")" = "$before" ]'
check "and the error says so" 'grep -q "never overwritten" $tmp/err'
run 0 "keys show (secret file)" $PL keys show "$K/tech.key"
pub=$(head -1 "$tmp/out")
fp=$(sed -n 's/^fingerprint //p' "$tmp/out")
run 0 "keys show (public file)" $PL keys show "$K/tech.key.pub"
check "both name the same public key" '[ "$(head -1 $tmp/out)" = "$pub" ] && [ ${#pub} -eq 64 ]'
check "and its fingerprint: 4 groups of 4 hex digits, the SHA-256 of the key" \
    '[ "$(sed -n "s/^fingerprint //p" $tmp/out)" = "$fp" ] && [ "$fp" = "$(printf %s "$pub" | xxd -r -p | sha256sum | cut -c1-16 | sed "s/..../&:/g; s/:$//")" ]'
run 0 "keys generate --json" $PL --json keys generate "$K/other.key"
check "json: public key and files" 'grep -q "\"public_key\":\"[0-9a-f]\{64\}\"" $tmp/out && grep -q secret_key_file $tmp/out'
HOME=$tmp/home XDG_CONFIG_HOME= $PL keys generate > "$tmp/out" 2> "$tmp/err"
check "keys generate without FILE: ~/.config/penlink/technician.key, private directory" \
    '[ -f "$tmp/home/.config/penlink/technician.key" ] && [ "$(stat -c %a "$tmp/home/.config/penlink")" = 700 ]'
(cd "$tmp" && $PL keys generate newdir/sub/x.key > "$tmp/out" 2> "$tmp/err")
check "keys generate into a directory that does not exist: made, private, relative path" \
    '[ -f "$tmp/newdir/sub/x.key" ] && [ -f "$tmp/newdir/sub/x.key.pub" ] && [ "$(stat -c %a "$tmp/newdir/sub")" = 700 ]'
: > "$tmp/plainfile"
run 7 "keys generate under a file, not a directory: an I/O error" $PL keys generate "$tmp/plainfile/x.key"
check "naming what could not be made" 'grep -q "cannot create $tmp/plainfile: Not a directory" $tmp/err'
run 2 "keys: unknown verb" $PL keys frobnicate

start_sim pen --serial PEN-KEYS --config-key "$K/tech.key.pub" --simulate-days 1 --start-time $T0
D="--device sim:$tmp/pen.sock"
run 0 "info --json" $PL $D --json info
check "info: device key and the provisioned config key" \
    'grep -q "\"config_keys\":\[\"$pub\"\]" $tmp/out && grep -q "\"signed_config\":true" $tmp/out && grep -q "\"device_key\":\"[0-9a-f]\{64\}\"" $tmp/out'
run 9 "config set without a key: exit 9" $PL $D config set depth_max_um=2500
check "the error says how: --key" 'grep -q -- "--key FILE" $tmp/err'
run 9 "config set signed by another key: refused before sending (exit 9)" $PL $D config set --key "$K/other.key" depth_max_um=2500
check "the error names the keys the pen accepts, by fingerprint" \
    'grep -q "it accepts $fp\. Nothing was sent" $tmp/err'
run 0 "config set signed by the provisioned key" $PL $D config set --key "$K/tech.key" depth_max_um=2500
check "the change is in the archive's configuration history" \
    '[ "$(sqlite3 "$XDG_DATA_HOME/penlink/archive.db" "SELECT source || '"' '"' || revision FROM config_history")" = "written 2" ]'
run 0 "config get needs no key" $PL $D config get depth_max_um
check "the change is in force" '[ "$(cat $tmp/out)" = 2500 ]'
$PL $D config export "$tmp/cfg.json" > /dev/null 2>&1
sed 's/"depth_max_um": 2500/"depth_max_um": 2400/' "$tmp/cfg.json" > "$tmp/cfg2.json"
run 0 "config import --key" $PL $D config import --key "$K/tech.key" "$tmp/cfg2.json"
run 2 "config get --key is a usage error" $PL $D config get --key "$K/tech.key"
chmod 644 "$K/tech.key"
run 2 "a secret key others can read is refused: a usage error, not 9 (a refused signature)" $PL $D config set --key "$K/tech.key" depth_max_um=2300
check "with what to do" 'grep -q "chmod 600" $tmp/err'
chmod 600 "$K/tech.key"
run 2 "a public key file cannot sign: a usage error" $PL $D config set --key "$K/tech.key.pub" depth_max_um=2300
run 0 "config get after the refusals" $PL $D config get depth_max_um
check "refusals changed nothing" '[ "$(cat $tmp/out)" = 2400 ]'
run 0 "pull the pen's log into an archive" $PL $D --archive "$tmp/k.db" pull
run 0 "export its records" $PL --archive "$tmp/k.db" export records --format csv
check "penlink's own refusals reached nothing: no security_event in the pen's log" \
    '! grep -q "security_event" $tmp/out'
# a client that skips penlink's checks: the pen itself refuses, and logs it
mkdir -p "$tmp/pb2"
protoc --python_out="$tmp/pb2" -I "$here/../../protocol" "$here/../../protocol/penlink.proto"
PENLINK_PB2_DIR="$tmp/pb2" "$PY" - "$here/../interop" "$tmp/pen.sock" > "$tmp/out" 2>&1 <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import penlink_client as pl
c = pl.Client(sys.argv[2])
c.drain()
c.hello()
try:
    c.request(lambda e: (setattr(e.set_config, "expected_revision", 1),
                         setattr(e.set_config.config, "depth_max_um", 2000)), "set_config_reply")
except pl.PenError as e:
    print("refused", e.code)
PYEOF
check "an unsigned SetConfig from another client: refused by the pen (AUTH_REQUIRED)" 'grep -q "refused 12" $tmp/out'
run 0 "pull again" $PL $D --archive "$tmp/k.db" pull
run 0 "export its records" $PL --archive "$tmp/k.db" export records --format csv
check "the pen logged the refused request as a security_event (code 12)" \
    'grep "security_event" $tmp/out | grep -q ",12,"'
run 1 "the audit reports the refused configuration (exit 1)" $PL --archive "$tmp/k.db" audit --report integrity
check "as config_refused findings" 'grep -q "config_refused" $tmp/out'

# a development pen (no keys): unsigned configuration is taken, and said so
start_sim dev --serial PEN-DEV --simulate-days 1 --start-time $T0
run 0 "a pen without keys takes unsigned configuration" $PL --device "sim:$tmp/dev.sock" config set depth_max_um=2000
run 0 "info says so" $PL --device "sim:$tmp/dev.sock" info
check "info: not required, anyone with a cable" 'grep -q "config signing    not required" $tmp/out'
stop_sim pen
run 2 "a state keeps the keys it was made with" $SIM --state "$tmp/pen" --config-key "$K/other.key.pub"
finish
