#!/bin/sh
# Installs the Debian 12 packages penlink needs to build, test and run.
# Idempotent: only missing packages are installed, so a second run costs
# nothing. Installing needs root: as another user it uses sudo. Non-interactive
# (tshark's package asks whether non-root users may capture: it keeps the
# default, no).
set -eu

PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev clang-format valgrind
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libusb-1.0-0-dev zlib1g-dev
  libjansson-dev libsqlite3-dev libcmocka-dev libumockdev-dev umockdev libglib2.0-dev
  libsodium-dev xxd xz-utils gzip python3 python3-protobuf python3-nacl sqlite3 tzdata
  chromium poppler-utils libpq-dev postgresql-15 python3-psycopg2 tshark systemd zsh fish
  lintian file groff-base faketime gcovr python3-jsonschema doxygen"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    as_root=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo > /dev/null; then
            echo "penlink setup: these packages are missing:$missing" >&2
            echo "penlink setup: run this as root to install them" >&2
            exit 1
        fi
        as_root="sudo"
    fi
    echo "penlink setup: installing$missing"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi
