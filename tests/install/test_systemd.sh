#!/bin/sh
# penlink-watch.service as installed: systemd-analyze verify finds nothing to
# say about it (no unknown key, no bad value, its man page and program there),
# it keeps the sandbox the technician guide promises, and its system user
# comes out of the installed sysusers.d file, in plugdev. Needs no running
# systemd: verify, security --offline and sysusers --root read files only.
#   test_systemd.sh CMAKE BUILD_DIR SYSTEMD_ANALYZE SYSTEMD_SYSUSERS
set -eu
cmake=$1 build=$2 analyze=$3 sysusers=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DESTDIR=$tmp/stage "$cmake" --install "$build" > "$tmp/install.log" ||
    { cat "$tmp/install.log"; fail "cmake --install"; }
unit=$(find "$tmp/stage" -name penlink-watch.service)
[ -n "$unit" ] || fail "no penlink-watch.service installed"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$tmp/stage$prefix
exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
[ "$exe" = "$prefix/bin/penlink" ] || fail "ExecStart runs '$exe', not $prefix/bin/penlink"
lib=$(dirname "$(find "$root" -name 'libpenlink.so.[0-9]*' | head -n 1)")
LD_LIBRARY_PATH=$lib "$tmp/stage$exe" watch --help > /dev/null || fail "$exe watch --help"

echo "== systemd-analyze verify"
# The unit as installed, but its program where the staging put it (verify
# checks that ExecStart is executable) and its man page in the staging's.
mkdir -p "$tmp/verify"
sed "s|^ExecStart=$exe|ExecStart=$tmp/stage$exe|" "$unit" > "$tmp/verify/penlink-watch.service"
(cd "$tmp/verify" && MANPATH=$root/share/man "$analyze" verify penlink-watch.service) \
    > "$tmp/verify.out" 2>&1 || { cat "$tmp/verify.out"; fail "systemd-analyze verify failed"; }
# verify exits 0 after warnings (an unknown key, a value it ignores): none is allowed
[ ! -s "$tmp/verify.out" ] || { cat "$tmp/verify.out"; fail "systemd-analyze verify has warnings"; }

echo "== the sandbox and the service's settings"
for want in 'User=penlink' 'SupplementaryGroups=plugdev' 'Restart=on-failure' \
    'StateDirectory=penlink' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
    'NoNewPrivileges=yes' 'DevicePolicy=closed' 'DeviceAllow=char-usb_device rw' \
    'CapabilityBoundingSet=' 'Environment=PENLINK_ARCHIVE=/var/lib/penlink/archive.db'; do
    grep -qx -- "$want" "$unit" || fail "$unit lacks '$want'"
done
envfile=$(sed -n 's/^EnvironmentFile=-//p' "$unit")
[ -n "$envfile" ] && [ -f "$tmp/stage$envfile" ] ||
    fail "EnvironmentFile '$envfile' is not what the install put there"
grep -q '^#PENLINK_ARCHIVE=' "$tmp/stage$envfile" || fail "$envfile does not show PENLINK_ARCHIVE"
"$analyze" security --offline=true "$tmp/verify/penlink-watch.service" > "$tmp/security.out" 2>&1 ||
    { cat "$tmp/security.out"; fail "systemd-analyze security"; }
grep "Overall exposure level" "$tmp/security.out"

echo "== its system user, from the installed sysusers.d file"
conf=$(find "$tmp/stage" -path '*/sysusers.d/penlink.conf')
[ -n "$conf" ] || fail "no sysusers.d/penlink.conf installed"
mkdir -p "$tmp/sysroot/etc"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$tmp/sysroot/etc/passwd"
printf 'root:x:0:\nplugdev:x:46:\n' > "$tmp/sysroot/etc/group"
"$sysusers" --root="$tmp/sysroot" "$conf" > "$tmp/sysusers.out" 2>&1 ||
    { cat "$tmp/sysusers.out"; fail "systemd-sysusers"; }
grep -q '^penlink:x:[0-9]*:[0-9]*:[^:]*:/var/lib/penlink:/usr/sbin/nologin$' "$tmp/sysroot/etc/passwd" ||
    fail "no system user penlink: $(cat "$tmp/sysroot/etc/passwd")"
grep -q '^plugdev:x:46:penlink$' "$tmp/sysroot/etc/group" ||
    fail "penlink is not in plugdev: $(cat "$tmp/sysroot/etc/group")"
echo "ok: penlink-watch.service verified, sandboxed, with its user in plugdev"
