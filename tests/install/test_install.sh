#!/bin/sh
# The install as another project meets it: `cmake --install` of this build
# into a staging directory (DESTDIR), then a small consumer program built
# against it twice, once through the CMake package (find_package(penlink 0.3),
# penlink::penlink) and once through pkg-config, and a C++ one (consumer.cpp)
# through pkg-config in each C++ standard from C++11 to C++20 ($PENLINK_CXX,
# default g++), all run against the staged shared library. Then installs with
# --prefix: a tree that keeps everything under its prefix and whose
# penlink.pc needs no --define-variable, and one into /usr that puts the udev
# rule and the systemd files where udev and systemd read them.
#   test_install.sh CMAKE BUILD_DIR CC VERSION SOVERSION [CFLAGS...]
# CFLAGS: the sanitizer flags of a sanitized build (the library needs them in
# the program too).
set -eu
cmake=$1 build=$2 cc=$3 version=$4 soversion=$5
shift 5
cflags="$*"
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DESTDIR=$tmp/stage "$cmake" --install "$build" > "$tmp/install.log" ||
    { cat "$tmp/install.log"; fail "cmake --install"; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$tmp/stage$prefix
lib=$(find "$root" -name "libpenlink.so.$soversion" | head -n 1)
[ -n "$lib" ] || fail "no libpenlink.so.$soversion installed under $prefix"
libdir=$(dirname "$lib")
[ -L "$libdir/libpenlink.so" ] && [ "$(readlink "$libdir/libpenlink.so")" = "libpenlink.so.$soversion" ] ||
    fail "libpenlink.so is not a link to libpenlink.so.$soversion"
[ -f "$libdir/libpenlink.so.$version" ] || fail "no libpenlink.so.$version"
soname=$(readelf -d "$libdir/libpenlink.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libpenlink.so.$soversion" ] || fail "SONAME is '$soname', not libpenlink.so.$soversion"
[ -f "$root/include/penlink/penlink.h" ] || fail "no header in $root/include/penlink"

# run PROGRAM: against the staged library, and no other libpenlink
run() {
    LD_LIBRARY_PATH=$libdir ldd "$1" | grep -q "libpenlink.so.$soversion => $libdir/" ||
        fail "$1 does not load the staged libpenlink: $(LD_LIBRARY_PATH=$libdir ldd "$1" | grep penlink)"
    LD_LIBRARY_PATH=$libdir "$1" "$version" || fail "$1 exited with $?"
}

echo "== CMake: find_package(penlink 0.3 REQUIRED), penlink::penlink"
CC=$cc "$cmake" -S "$here" -B "$tmp/c-cmake" -DCMAKE_PREFIX_PATH="$root" \
    -DCMAKE_C_FLAGS="$cflags" > "$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "configure"; }
grep -q "penlink_DIR:PATH=$libdir/cmake/penlink" "$tmp/c-cmake/CMakeCache.txt" ||
    fail "find_package did not find the staged package: $(grep penlink_DIR "$tmp/c-cmake/CMakeCache.txt")"
"$cmake" --build "$tmp/c-cmake" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "build"; }
run "$tmp/c-cmake/consumer"

echo "== CMake: a version the package is not compatible with is refused"
for want in 0.2 0.4 1.0; do
    mkdir -p "$tmp/want-$want"
    printf 'cmake_minimum_required(VERSION 3.20)\nproject(p LANGUAGES C)\nfind_package(penlink %s REQUIRED)\n' \
        "$want" > "$tmp/want-$want/CMakeLists.txt"
    if "$cmake" -S "$tmp/want-$want" -B "$tmp/want-$want/b" -DCMAKE_PREFIX_PATH="$root" \
        > "$tmp/want.log" 2>&1; then
        fail "find_package(penlink $want) accepted version $version"
    fi
    grep -q "penlinkConfig.cmake, version: $version" "$tmp/want.log" ||
        fail "find_package(penlink $want) failed for another reason: $(cat "$tmp/want.log")"
done

echo "== pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pc() { pkg-config --define-variable=prefix="$root" "$@" penlink; }
[ "$(pc --modversion)" = "$version" ] || fail "pkg-config --modversion: $(pc --modversion)"
# shellcheck disable=SC2046,SC2086
"$cc" $cflags -Wall -Wextra -Werror -o "$tmp/consumer-pc" "$here/consumer.c" $(pc --cflags --libs) ||
    fail "cc with pkg-config's flags"
run "$tmp/consumer-pc"

echo "== C++: the same header and pkg-config flags, C++11 to C++20, warning-free"
cxx=${PENLINK_CXX:-g++}
for std in c++11 c++14 c++17 c++20; do
    # shellcheck disable=SC2046,SC2086
    "$cxx" -std=$std $cflags -Wall -Wextra -Werror -pedantic -o "$tmp/consumer-cpp-$std" \
        "$here/consumer.cpp" $(pc --cflags --libs) || fail "$cxx -std=$std with pkg-config's flags"
    run "$tmp/consumer-cpp-$std"
done
echo "== the udev rule where the library's permission hint says it is"
rule=$(grep -ao "the udev rule /[^ ]*/70-penlink.rules" "$libdir/libpenlink.so.$version" | head -n 1 |
    sed 's/^the udev rule //')
[ -n "$rule" ] || fail "the library's permission hint names no installed udev rule"
[ -f "$tmp/stage$rule" ] || fail "the hint names $rule, but the install put no rule there"
grep -q '^SUBSYSTEM=="usb".*ATTR{idVendor}=="1209".*TAG+="uaccess"' "$tmp/stage$rule" ||
    fail "$rule: no uaccess rule"
grep -q '^SUBSYSTEM=="usb".*ATTR{idVendor}=="1209".*GROUP="plugdev", MODE="0660"' "$tmp/stage$rule" ||
    fail "$rule: no plugdev rule"

echo "== cmake --install --prefix: nothing outside the prefix, penlink.pc relocatable"
# DESTDIR as a guard: whatever the install writes outside the prefix lands
# beside it in the guard, not in the system
px=$tmp/px
DESTDIR=$tmp/guard "$cmake" --install "$build" --prefix "$px" > "$tmp/install-px.log" ||
    { cat "$tmp/install-px.log"; fail "cmake --install --prefix"; }
[ -d "$tmp/guard$px" ] || fail "cmake --install --prefix $px installed nothing under it"
outside=$(find "$tmp/guard" ! -type d | sed "s|^$tmp/guard||" | grep -v "^$px/" || true)
[ -z "$outside" ] || fail "cmake --install --prefix $px wrote outside it: $outside"
for f in lib/udev/rules.d/70-penlink.rules lib/systemd/system/penlink-watch.service \
    lib/sysusers.d/penlink.conf etc/default/penlink-watch; do
    [ -f "$tmp/guard$px/$f" ] || fail "--prefix $px: no $f under it"
done
# the tree moved to where it was meant to be, and used as it is: no --define-variable
mv "$tmp/guard$px" "$px"
pxlib=$(dirname "$(find "$px" -name "libpenlink.so.$soversion" | head -n 1)")
flags=$(PKG_CONFIG_PATH=$pxlib/pkgconfig pkg-config --cflags --libs penlink) ||
    fail "pkg-config in the --prefix tree"
# shellcheck disable=SC2086
"$cc" $cflags -Wall -Wextra -Werror -o "$tmp/consumer-px" "$here/consumer.c" $flags ||
    fail "cc with the --prefix tree's pkg-config flags: $flags"
staged=$libdir
libdir=$pxlib
run "$tmp/consumer-px"
libdir=$staged
pxinc=$(PKG_CONFIG_PATH=$pxlib/pkgconfig pkg-config --variable=includedir penlink)
[ -f "$pxinc/penlink/penlink.h" ] || fail "penlink.pc's includedir $pxinc holds no penlink/penlink.h"

echo "== cmake --install --prefix /usr and /usr/local: where udev and systemd read them"
cache() { sed -n "s|^$1:PATH=||p" "$build/CMakeCache.txt"; }
for sys in /usr /usr/local; do
    DESTDIR=$tmp/sys "$cmake" --install "$build" --prefix $sys > "$tmp/install-sys.log" ||
        { cat "$tmp/install-sys.log"; fail "cmake --install --prefix $sys"; }
    for f in "$(cache PENLINK_UDEV_RULES_DIR)/70-penlink.rules" \
        "$(cache PENLINK_SYSTEMD_UNIT_DIR)/penlink-watch.service" \
        "$(cache PENLINK_SYSUSERS_DIR)/penlink.conf" /etc/default/penlink-watch; do
        [ -f "$tmp/sys$f" ] || fail "--prefix $sys: no $f (udev and systemd do not read $sys/lib)"
    done
    rm -rf "$tmp/sys"
done

echo "== one version everywhere: penlink --version, the man pages"
v=$(LD_LIBRARY_PATH=$libdir "$root/bin/penlink" --version) || fail "penlink --version"
[ "$v" = "penlink $version" ] || fail "penlink --version says '$v', not 'penlink $version'"
man=$(find "$root" -name penlink.1.gz | head -n 1)
[ -n "$man" ] || fail "no penlink.1.gz installed"
gzip -dc "$man" | head -n 1 | grep -q "\"penlink $version\"" || fail "$man: $(gzip -dc "$man" | head -n 1)"
# penlink-sim's, beside it (the package that ships penlink-sim carries it)
[ -x "$root/bin/penlink-sim" ] || fail "no penlink-sim installed"
simman=$(dirname "$man")/penlink-sim.1.gz
[ -f "$simman" ] || fail "no $simman beside penlink.1.gz"
gzip -dc "$simman" | head -n 1 | grep -q "^\.TH PENLINK\\\\-SIM 1 .*\"penlink $version\"" ||
    fail "$simman: $(gzip -dc "$simman" | head -n 1)"
echo "ok: installed package used through CMake and pkg-config"
