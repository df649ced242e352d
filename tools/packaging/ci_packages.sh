#!/bin/sh
# CI: the Debian packages as a technician meets them. Builds them with cpack
# in BUILD_DIR (configured with -DCMAKE_INSTALL_PREFIX=/usr), runs lintian
# (errors fail), installs them with apt-get on this machine, checks
# `penlink --version`, builds tests/install's consumer against the installed
# libpenlink-dev through CMake and pkg-config, runs `penlink list` with no pen
# (exit status 3, "no device"), then purges the packages and the service user
# the package made, so that nothing of them stays for the rest of CI.
#   tools/packaging/ci_packages.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
# the library package is named after the SONAME's number: libpenlink.so.N, libpenlinkN
soversion=$(readlink "$build/host/libpenlink.so" | sed 's/^libpenlink\.so\.//')
[ -n "$soversion" ] || { echo "FAIL: no $build/host/libpenlink.so link" >&2; exit 1; }
tmp=$(mktemp -d)
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && rm -f ./*.deb && cpack > "$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack"; }
debs="$build/penlink_${version}_amd64.deb $build/libpenlink${soversion}_${version}_amd64.deb"
debs="$debs $build/libpenlink-dev_${version}_amd64.deb"
for d in $debs; do [ -f "$d" ] || fail "cpack made no $d"; done

echo "-- lintian"
# shellcheck disable=SC2086
lintian --tag-display-limit 0 $debs > "$tmp/lintian.log" 2>&1 || true
grep -v "running with root privileges" "$tmp/lintian.log" || true
! grep -q '^E: ' "$tmp/lintian.log" || fail "lintian reports errors"

user_before=$(getent passwd penlink || true)
cleanup() {
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq penlink "libpenlink$soversion" \
        libpenlink-dev > "$tmp/purge.log" 2>&1 || cat "$tmp/purge.log"
    if [ -z "$user_before" ] && getent passwd penlink > /dev/null; then
        $as_root userdel penlink 2> /dev/null || true
        getent group penlink > /dev/null && { $as_root groupdel penlink 2> /dev/null || true; }
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "-- apt-get install ./penlink*.deb"
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $debs \
    > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "apt-get install"; }
[ "$(command -v penlink)" = /usr/bin/penlink ] || fail "penlink is not /usr/bin/penlink"
v=$(penlink --version) || fail "penlink --version"
[ "$v" = "penlink $version" ] || fail "penlink --version says '$v'"
echo "$v"
getent passwd penlink > /dev/null || fail "the package made no user penlink"
id -nG penlink | grep -qw plugdev || fail "penlink is not in plugdev"

echo "-- the consumer against the installed libpenlink-dev"
cmake -S "$root/tests/install" -B "$tmp/c" > "$tmp/c.log" 2>&1 && cmake --build "$tmp/c" >> "$tmp/c.log" 2>&1 ||
    { cat "$tmp/c.log"; fail "consumer through find_package(penlink 0.3)"; }
grep -q "penlink_DIR:PATH=/usr/lib/.*/cmake/penlink" "$tmp/c/CMakeCache.txt" || fail "not the installed package"
"$tmp/c/consumer" "$version" || fail "consumer (CMake) exited with $?"
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -o "$tmp/consumer-pc" "$root/tests/install/consumer.c" \
    $(pkg-config --cflags --libs penlink) || fail "consumer through pkg-config"
ldd "$tmp/consumer-pc" | grep -q "libpenlink\.so\.[0-9][0-9]* => \(/usr\)\?/lib/" || fail "consumer-pc: not the installed library"
"$tmp/consumer-pc" "$version" || fail "consumer (pkg-config) exited with $?"

echo "-- penlink list, no pen plugged in"
rc=0
penlink list > "$tmp/list.out" 2>&1 || rc=$?
cat "$tmp/list.out"
[ "$rc" -eq 3 ] || fail "penlink list without a pen exited with $rc, not 3 (no device)"
echo "ok: packages $version built, installed, used and purged"
