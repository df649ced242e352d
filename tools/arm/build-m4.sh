#!/usr/bin/env bash
# Builds the pen's core (firmware-stub/core without the simulator) for a
# Cortex-M4 with arm-none-eabi-gcc -Os, together with zlib's deflate side and
# the protobuf-c runtime built from Debian's source packages, links an image
# (pen-m4.elf) and prints its size against the targets of the size budget:
# flash (text + data) <= 48 KiB, RAM (data + bss + arena peak) <= 24 KiB.
#
# Usage: tools/arm/build-m4.sh [OUTDIR]      (default: build-m4/ in the checkout)
# Extra CMake options in PL_M4_CMAKE_ARGS, e.g. PL_M4_CMAKE_ARGS=-DPL_M4_LTO=ON.
#
# Installs what it needs with apt-get when missing (gcc-arm-none-eabi,
# libnewlib-arm-none-eabi, dpkg-dev, protobuf-c-compiler, cmake, gdb), enables
# deb-src in the apt sources when no source entry exists, and fetches the zlib
# and protobuf-c source packages into OUTDIR/src once.
#
# Exit status: non-zero when the build fails, or when the pen's image
# (pen-m4-codesize.elf: the firmware build generates penlink.pb-c.c with
# optimize_for = CODE_SIZE) misses a size target. pen-m4.elf, built from the
# host's generated code, is reported for comparison only.
set -euo pipefail

FLASH_TARGET=$((48 * 1024))
RAM_TARGET=$((24 * 1024))

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-m4}
mkdir -p "$out"
out=$(cd "$out" && pwd)
t0=$(date +%s)

log() { printf '== %s\n' "$*"; }
# awk without strtonum (mawk): hex("0x1f") or hex("1f") -> 31
AWK_HEX='function hex(s,  i, n, c) { sub(/^0x/, "", s); n = 0
    for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", tolower(substr(s, i, 1)))
        n = n * 16 + c - 1 }
    return n }'

die() { printf 'build-m4: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# ---- tools -------------------------------------------------------------
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

apt_updated=0
apt_update() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
}

need=()
for p in gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi dpkg-dev \
         protobuf-c-compiler cmake make gdb; do
    pkg_installed "$p" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# ---- source packages -----------------------------------------------------
# deb-src: Debian 12 keeps its sources in deb822 form
# (/etc/apt/sources.list.d/debian.sources: "Types: deb deb-src" enables both);
# older setups use one-line entries in sources.list. Idempotent.
enable_deb_src() {
    local d822=/etc/apt/sources.list.d/debian.sources
    local extra=/etc/apt/sources.list.d/penlink-deb-src.list
    if [ -f "$d822" ]; then
        if grep -Eq '^Types:[[:space:]]*deb[[:space:]]*$' "$d822"; then
            log "enabling deb-src in $d822"
            as_root sed -i -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb deb-src/' "$d822"
            return 0
        fi
    elif [ -f /etc/apt/sources.list ] && [ ! -f "$extra" ] &&
        ! grep -Eq '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list; then
        log "adding deb-src entries in $extra"
        grep -E '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list |
            sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' |
            as_root tee "$extra" >/dev/null
        return 0
    fi
    return 1 # nothing changed
}

src="$out/src"
mkdir -p "$src"
find_src() { find "$src" -maxdepth 1 -type d -name "$1-[0-9]*" | sort | tail -n 1; }

zlib_dir=$(find_src zlib)
pbc_dir=$(find_src protobuf-c)
if [ -z "$zlib_dir" ] || [ -z "$pbc_dir" ]; then
    # A deb-src entry may also exist without its index having been fetched yet.
    if enable_deb_src || ! apt-cache showsrc zlib 2>/dev/null | grep -q '^Package: zlib'; then
        apt_updated=0
        apt_update
    fi
    for p in zlib protobuf-c; do
        if [ -z "$(find_src "$p")" ]; then
            log "apt-get source $p"
            (cd "$src" && apt-get source -qq "$p" >/dev/null 2>"$src/$p.log") ||
                { cat "$src/$p.log" >&2; die "apt-get source $p failed"; }
        fi
    done
    zlib_dir=$(find_src zlib)
    pbc_dir=$(find_src protobuf-c)
fi
[ -f "$zlib_dir/deflate.c" ] || die "no zlib source under $src"
[ -f "$pbc_dir/protobuf-c/protobuf-c.c" ] || die "no protobuf-c source under $src"
log "zlib: $(basename "$zlib_dir"), protobuf-c: $(basename "$pbc_dir")"

# The image's small CRC-32 and Adler-32 (tools/arm/*_small.c) must equal zlib's.
cat > "$out/crc_check.c" <<'EOF_C'
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
unsigned long small_crc32(unsigned long crc, const unsigned char *buf, unsigned len);
unsigned long small_adler32(unsigned long adler, const unsigned char *buf, unsigned len);
int main(void)
{
    static unsigned char b[20000];
    srand(7);
    for (int t = 0; t < 2000; t++) {
        unsigned n = (unsigned)rand() % sizeof b, seed = (unsigned)rand();
        for (unsigned i = 0; i < n; i++)
            b[i] = (unsigned char)rand();
        if (crc32(seed, b, n) != small_crc32(seed, b, n) ||
            adler32(seed, b, n) != small_adler32(seed, b, n)) {
            printf("differs at length %u\n", n);
            return 1;
        }
    }
    return 0;
}
EOF_C
cc -O1 -Dcrc32=small_crc32 -Dcrc32_z=small_crc32_z -c "$here/crc32_small.c" -o "$out/crc32_small.o" &&
    cc -O1 -Dadler32=small_adler32 -Dadler32_z=small_adler32_z -c "$here/adler32_small.c" \
        -o "$out/adler32_small.o" &&
    cc -O1 "$out/crc_check.c" "$out/crc32_small.o" "$out/adler32_small.o" -lz -o "$out/crc_check" &&
    "$out/crc_check" || die "tools/arm/*_small.c do not compute zlib's CRC-32 and Adler-32"

# ---- build -----------------------------------------------------------------
bld="$out/cmake"
read -r -a extra_args <<<"${PL_M4_CMAKE_ARGS:-}"
if ! cmake -S "$here" -B "$bld" "${extra_args[@]}" \
        -DCMAKE_TOOLCHAIN_FILE="$here/cortex-m4.cmake" \
        -DCMAKE_BUILD_TYPE=MinSizeRel \
        -DPENLINK_ROOT="$root" \
        -DZLIB_SRC="$zlib_dir" \
        -DPROTOBUFC_SRC="$pbc_dir" >"$out/configure.log" 2>&1; then
    cat "$out/configure.log" >&2
    die "cmake configure failed"
fi
grep -E '^-- pen core' "$out/configure.log" || true
if ! grep -q 'image uses pen.h entry points: 1' "$out/configure.log"; then
    log "NOTE: pen-m4.elf does not call the core (no pen_init/pen_usb_rx/pen_poll in" \
        "firmware-stub/core/pen.h): its figures are the protocol pieces with placeholder buffers"
fi
if ! cmake --build "$bld" -j"$(nproc)" >"$out/build.log" 2>&1; then
    cat "$out/build.log" >&2
    die "build failed"
fi
nwarn=$(grep -c 'warning:' "$out/build.log" || true)
if [ "$nwarn" -gt 0 ]; then
    log "$nwarn compiler warning(s):"
    grep -A3 'warning:' "$out/build.log" | awk 'NR <= 40'
fi

elf="$bld/pen-m4.elf"
map="$bld/pen-m4.map"
[ -f "$elf" ] || die "no $elf"
elf_cs="$bld/pen-m4-codesize.elf"
cp "$elf" "$map" "$elf_cs" "$out/"

# The image the pen ships is linked with -flto (PL_M4_LTO): the verdict is its
# size. The analysis below (stack frames and call graphs, zlib's state sizes,
# flash by input) needs the object files of a plain build, so it is made on the
# build above; LTO only inlines and drops code across files, so its image is
# the plain one's code, smaller (both figures are printed).
bld_lto="$out/cmake-lto"
case " ${PL_M4_CMAKE_ARGS:-} " in
*PL_M4_LTO=ON*) bld_lto="$bld" ;;
*)
    cmake -S "$here" -B "$bld_lto" "${extra_args[@]}" -DPL_M4_LTO=ON \
        -DCMAKE_TOOLCHAIN_FILE="$here/cortex-m4.cmake" -DCMAKE_BUILD_TYPE=MinSizeRel \
        -DPENLINK_ROOT="$root" -DZLIB_SRC="$zlib_dir" -DPROTOBUFC_SRC="$pbc_dir" \
        >"$out/configure-lto.log" 2>&1 || { cat "$out/configure-lto.log" >&2; die "cmake configure (LTO) failed"; }
    cmake --build "$bld_lto" -j"$(nproc)" --target pen-m4-codesize >"$out/build-lto.log" 2>&1 ||
        { cat "$out/build-lto.log" >&2; die "build (LTO) failed"; }
    ;;
esac
elf_ship="$bld_lto/pen-m4-codesize.elf"
[ -f "$elf_ship" ] || die "no $elf_ship"
cp "$elf_ship" "$out/pen-m4-codesize-lto.elf"

# ---- report ------------------------------------------------------------------
echo
log "arm-none-eabi-size pen-m4.elf"
arm-none-eabi-size "$elf"
read -r text data bss _ < <(arm-none-eabi-size "$elf" | awk 'NR == 2')

echo
log "what the image holds, per input (bytes; from the map file)"
printf '  %-30s %8s %8s %10s\n' input flash RAM "dropped by --gc-sections"
awk -f "$here/mapsizes.awk" "$map" | sort -k2,2nr
echo "  ... by object file (the 12 biggest in flash):"
awk -v by=object -f "$here/mapsizes.awk" "$map" | sort -k2,2nr | awk 'NR <= 12'

echo
log "pen-side checks"
# The chunk decoder shares chunk_codec.c with the encoder; it must not reach
# the pen (it needs inflate and malloc). zlib's inflate is not even built here,
# so a kept decoder would also fail the link.
kept=$(arm-none-eabi-nm "$elf" | awk '$3 ~ /^(pl_chunk_dec|pl_chunk_decode|pl_batch_parse|inflate)/ { print $3 }')
if [ -z "$kept" ]; then
    echo "  chunk decoder (pl_chunk_dec_*, pl_chunk_decode, pl_batch_parse): dropped"
else
    echo "  chunk decoder KEPT: ${kept//$'\n'/ }"
fi
# Who calls the heap or double-precision soft-float in the linked image.
callers() { # regex of callees
    arm-none-eabi-objdump -d "$elf" | awk -v re="$1" '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn) }
        $0 ~ "\t(bl|b|b[.]w)\t[0-9a-f]+ <(" re ")>" { c = $NF; gsub(/[<>]/, "", c); print "    " fn " -> " c }
    ' | sort -u
}
heap=$(callers 'malloc|free|calloc|realloc|_malloc_r|_free_r')
if [ -z "$heap" ]; then
    echo "  heap allocator: not linked"
else
    echo "  heap allocator linked (newlib nano malloc/free + _sbrk), called by:"
    echo "$heap"
fi
div64=$(callers '__aeabi_uldivmod|__aeabi_ldivmod')
if [ -n "$div64" ]; then
    echo "  64-bit division linked (libgcc __udivmoddi4, ~0.75 KB; the M4 divides 32-bit only), called by:"
    echo "$div64"
fi
soft=$(callers '__aeabi_d[a-z0-9]*|__[a-z]+df[23]')
if [ -n "$soft" ]; then
    echo "  software double-precision code linked (the FPU is single precision), called by:"
    echo "$soft" | grep -v -- '-> __[a-z]*df2$' || true
fi

echo
log "15 biggest symbols (arm-none-eabi-nm --size-sort -S)"
arm-none-eabi-nm --size-sort -S -r "$elf" | awk 'NR <= 15' |
    awk "$AWK_HEX"'{ printf "  %6d  %s  %s\n", hex($2), $3, $4 }'

echo
log "zlib's deflate state on this target (compile-time sizes, tools/arm/sizes.c)"
sizes_obj=$(find "$bld" -name 'sizes.c.obj' -o -name 'sizes.c.o' | awk 'NR == 1')
arm-none-eabi-nm -S "$sizes_obj" | awk "$AWK_HEX"'$4 ~ /^pl_m4_/ {
    name = $4; sub(/^pl_m4_/, "", name); printf "  %-24s %6d\n", name, hex($2) }'
# deflate's private state, from the debug information of zlib's deflate.c
zdebug_obj=$(find "$bld" -path '*m4_zlib_debug.dir*' \( -name 'deflate.c.obj' -o -name 'deflate.c.o' \) |
    awk 'NR == 1')
state=$(gdb -nx -batch -ex 'print sizeof(deflate_state)' "$zdebug_obj" 2>/dev/null |
    sed -n 's/^\$1 = \([0-9][0-9]*\)$/\1/p')
[ -n "$state" ] || die "no sizeof(deflate_state) in the debug information of $zdebug_obj"
printf '  %-24s %6d  (zlib'"'"'s deflate.c, read by gdb)\n' sizeof_deflate_state "$state"
public=$(arm-none-eabi-nm -S "$sizes_obj" | awk "$AWK_HEX"'$4 == "pl_m4_enc_arena_public" { print hex($2) }')
arena_need=$((public + (state + 15) / 16 * 16))
reserved=$(arm-none-eabi-nm -S "$sizes_obj" | awk "$AWK_HEX"'$4 == "pl_m4_enc_arena_reserved" { print hex($2) }')
if [ "$arena_need" -le $((reserved - 15)) ]; then
    echo "  the encoder needs $arena_need of the $reserved bytes PL_CHUNK_ENC_ARENA reserves"
else
    echo "  WARNING: the encoder needs $arena_need bytes, more than PL_CHUNK_ENC_ARENA ($reserved) - 15"
fi

echo
# Compiler side files (*.su, *.ci) of what pen-m4.elf is built from.
image_files() { # pattern, then find actions
    local pat=$1
    shift
    find "$bld/CMakeFiles" \( -name 'pen-m4-codesize.dir' -o -name 'penlink_protocol_m4_codesize.dir' \
        -o -name 'm4_sizes.dir' -o -name 'm4_zlib_debug.dir' \) -prune -o -name "$pat" "$@"
}
log "biggest stack frames in the image (-fstack-usage; a call chain adds these up)"
arm-none-eabi-nm "$elf" | awk '{ print $NF }' | sort -u >"$bld/image-symbols.txt"
image_files '*.su' -exec cat {} + |
    awk -F'\t' 'NR == FNR { keep[$1] = 1; next }
        { n = split($1, p, ":"); fn = p[n]; base = fn; sub(/[.].*/, "", base)
          if ((fn in keep) || (base in keep)) printf "%d\t%s\t%s\n", $2, fn, $3 }' \
        "$bld/image-symbols.txt" - | sort -t"$(printf '\t')" -k1,1nr | awk 'NR <= 8' |
    awk -F'\t' '{ printf "  %6d  %s (%s)\n", $1, $2, $3 }'

echo
log "worst-case stack from the call graphs (-fcallgraph-info)"
image_files '*.ci' -exec awk -v roots="Reset_Handler" -f "$here/stack.awk" {} + |
    tee "$bld/stack.txt"
stack=$(awk '/^  Reset_Handler: / { print $2; exit }' "$bld/stack.txt")

echo
log "RAM by object (.data + .bss symbols of 256 bytes or more)"
arm-none-eabi-nm -S --size-sort -r "$elf" |
    awk "$AWK_HEX"'$3 ~ /^[bBdD]$/ && hex($2) >= 256 { printf "  %6d  %s\n", hex($2), $4 }'

echo
flash=$((text + data))
ram=$((data + bss))
verdict() { # name value target note
    if [ "$2" -le "$3" ]; then v=OK; else v=MISSED; fi
    printf '%-6s %6d bytes (%5.1f KiB) of %6d (%2d KiB): %s%s\n' "$1" "$2" \
        "$(awk -v n="$2" 'BEGIN { print n / 1024 }')" "$3" $(($3 / 1024)) "$v" "$4"
}
read -r text_cs data_cs bss_cs _ < <(arm-none-eabi-size "$elf_cs" | awk 'NR == 2')
log "the same image with 'option optimize_for = CODE_SIZE;' in a copy of penlink.proto"
echo "  pen-m4-codesize.elf: text $text_cs data $data_cs bss $bss_cs:" \
    "flash $((text_cs + data_cs)) bytes, $((text + data - text_cs - data_cs)) fewer" \
    "(protoc-c leaves out message, field and enum names; same wire format)"
echo
log "for comparison only: pen-m4.elf, with the host's generated protobuf code"
verdict flash "$flash" "$FLASH_TARGET" "  (text + data)"
if [ -n "$heap" ]; then
    ram_note="  (data + bss; NOT counted: the stack and whatever the heap holds)"
else
    ram_note="  (data + bss, which hold every arena since no heap is linked; the stack is not counted)"
fi
verdict RAM "$ram" "$RAM_TARGET" "$ram_note"
if [ -n "$stack" ]; then
    echo "       with the deepest static call chain's stack ($stack bytes):" \
        "$((ram + stack)) bytes ($(awk -v n=$((ram + stack)) 'BEGIN { printf "%.1f", n / 1024 }') KiB)"
fi
read -r text_sh data_sh bss_sh _ < <(arm-none-eabi-size "$elf_ship" | awk 'NR == 2')
echo "  pen-m4-codesize.elf without LTO: flash $((text_cs + data_cs)) bytes, RAM $((data_cs + bss_cs)) bytes"
log "verdict (pen-m4-codesize.elf: penlink.proto with optimize_for = CODE_SIZE, linked with -flto)"
verdict flash "$((text_sh + data_sh))" "$FLASH_TARGET" "  (text + data)"
verdict RAM "$((data_sh + bss_sh))" "$RAM_TARGET" ""
log "done in $(( $(date +%s) - t0 )) s"
[ $((text_sh + data_sh)) -le "$FLASH_TARGET" ] || die "the pen's image misses the flash target"
[ $((data_sh + bss_sh)) -le "$RAM_TARGET" ] || die "the pen's image misses the RAM target"
