#!/bin/sh
# Prints the transcripts docs/technician-guide.md shows for a technician's
# day: each command as typed ("$ penlink ...") and what it printed (stdout
# and stderr as a terminal shows them), run against simulated pens in a
# temporary directory, which the transcript calls /home/tech (the home
# directory there is /home/tech/home). Regenerate the guide's examples with
# it after a change of wording.
# Usage: sh tools/technician-day.sh [BUILD_DIR]   (default: build)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
SIM=$build/firmware-stub/penlink-sim
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
T0=1767225600000

day() {
pids=""
trap 'for p in $pids; do kill $p 2> /dev/null; done; wait 2> /dev/null' EXIT
cd "$work" || exit 1
export HOME="$work/home"
unset XDG_DATA_HOME XDG_CONFIG_HOME PENLINK_ARCHIVE
mkdir -p "$HOME"
export PATH="$build/host:$PATH"

sim() { # name args...: a simulated pen serving name.sock
    n=$1
    shift
    rm -f "$n.sock"
    "$SIM" --state "$n" --listen "$n.sock" "$@" > "$n.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$n=$!"
    i=0
    while [ ! -S "$n.sock" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
}
stop() { eval "kill \$pid_$1; wait \$pid_$1" 2> /dev/null; }
say() { # the command as typed, then what it printed and its status when not 0
    echo "\$ $*"
    "$@" 2>&1
    rc=$?
    [ $rc -eq 0 ] || echo "(exit status $rc)"
}
title() { printf '\n===== %s =====\n' "$*"; }

title "1. A replaced pen"
sim pen --serial PEN-000123 --simulate-days 14 --start-time $T0
export PENLINK_DEVICE=sim:pen.sock
penlink pull > /dev/null 2>&1
stop pen
rm pen/device.key # the repair: a new secure element, the same log
sim pen --simulate-days 2
say penlink pull
PTY=$work/confirm.py
cat > "$PTY" << 'EOF'
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
while b"Type yes" not in out:
    out += os.read(fd, 4096)
time.sleep(0.2)
os.write(fd, b"yes\n")
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
sys.stdout.write(out.decode().replace("\r\n", "\n"))
EOF
echo '$ penlink keys replace --pen PEN-000123 --reason "RMA 4471: main board replaced"'
python3 "$PTY" penlink keys replace --pen PEN-000123 --reason "RMA 4471: main board replaced"
say penlink pull
say penlink verify
say penlink audit --report integrity

title "2. A key the pen does not accept"
mkdir -p keys
penlink keys generate keys/anna.key > /dev/null
penlink keys generate keys/ben.key > /dev/null
sim signed --serial PEN-000200 --simulate-days 1 --config-key keys/anna.key.pub
export PENLINK_DEVICE=sim:signed.sock
say penlink info
say penlink config set --key keys/ben.key depth_max_um=2500
say penlink keys show keys/ben.key
say penlink config set depth_max_um=2500
say penlink keys generate
say penlink config set depth_max_um=2500
# the key provisioned on the pen is Anna's: she keeps it as her default key
cp -p keys/anna.key "$HOME/.config/penlink/technician.key"
say penlink config set depth_max_um=2500

title "3. A configuration file of another pen"
sim room2 --serial PEN-000777 --simulate-days 1
sim room5 --serial PEN-000321 --simulate-days 1
penlink --device sim:room2.sock config set device_label="Room 2" clinic_id=CLINIC-0042 max_treatment_s=2700 > /dev/null 2>&1
penlink --device sim:room5.sock config set device_label="Room 5" clinic_id=CLINIC-0042 > /dev/null 2>&1
say penlink --device sim:room2.sock config export room2.json
say head -3 room2.json
say penlink --device sim:room5.sock config import room2.json
say penlink --device sim:room5.sock config import --template room2.json

title "4. An interrupted pull"
sim desk --serial PEN-000456 --simulate-days 60 --start-time $T0 --unplug-after-frames 40
export PENLINK_DEVICE=sim:desk.sock
say penlink pull
say penlink pull
sim hung --serial PEN-000457 --simulate-days 60 --start-time $T0 --hang-after-frames 40
say penlink --device sim:hung.sock pull
sim mute --serial PEN-000458 --simulate-days 1 --hang-after-frames 1
say penlink --device sim:mute.sock info

title "5. Progress"
sim big --serial PEN-000500 --simulate-days 60 --start-time $T0
sim big2 --serial PEN-000500 --simulate-days 60 --start-time $T0 --hang-after-frames 60
echo "(a terminal: the states of the line, redrawn 4 times a second)"
python3 "$root/tests/scripts/pty_stderr.py" tty.json -- penlink --device sim:big2.sock pull
python3 -c 'import json; [print(l) for l in json.load(open("tty.json"))["lines"]]'
say penlink --device sim:big.sock --archive log.db pull
sim big3 --serial PEN-000500 --simulate-days 60 --start-time $T0
say penlink --device sim:big3.sock --archive json.db --json pull

title "6. A desk full of pens (the simulator; USB: tests/host/test_usb.c)"
export PENLINK_DEVICE=sim:room2.sock
say penlink identify --seconds 15
say tail -1 room2.log
say penlink list

title "7. The clock"
sim ontime --serial PEN-000600 --simulate-days 1
sim late --serial PEN-000601 --simulate-days 1 --clock-offset-ms -95000
sim guarded --serial PEN-000602 --simulate-days 1 --clock-offset-ms 4200 --config-key keys/anna.key.pub
say penlink --device sim:ontime.sock clock sync
say penlink --device sim:late.sock clock sync
mv "$HOME/.config/penlink/technician.key" keys/
say penlink --device sim:guarded.sock clock sync
mv keys/technician.key "$HOME/.config/penlink/"
say penlink --device sim:guarded.sock clock sync
}

( day ) 2>&1 | sed "s|$work|/home/tech|g"
