#!/bin/sh
# The two quick-start commands of the README:
#   tools/quickstart.sh demo   install, build, run the main job on the embedded default
#   tools/quickstart.sh test   install, build from scratch, run every test tier
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2> /dev/null || echo 2)

build() { # dir cmake-args...
    dir=$1
    shift
    mkdir -p "$dir"
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" > "$dir/cmake.log" 2>&1 ||
        { cat "$dir/cmake.log"; exit 1; }
    cmake --build "$dir" -j "$jobs" > "$dir/build.log" 2>&1 || { cat "$dir/build.log"; exit 1; }
}

case "${1:-}" in
demo)
    sh tools/setup.sh
    mkdir -p build
    build build
    exec sh tools/demo.sh build
    ;;
test)
    sh tools/setup.sh
    rm -rf build-test build-asan build-valgrind build-fuzz build-m4
    mkdir -p build-test build-asan build-valgrind build-fuzz

    echo "== format check (clang-format)"
    git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

    echo "== the pen's core for a Cortex-M4 (arm-none-eabi-gcc -Os), sizes against the targets"
    mkdir -p build-m4
    bash tools/arm/build-m4.sh build-m4 > build-m4/m4.log 2>&1 || { cat build-m4/m4.log; exit 1; }
    sed -n '/^== verdict/,$p' build-m4/m4.log

    echo "== clang libFuzzer build, 20 s per target"
    CC=clang build build-fuzz -DPENLINK_FUZZ=ON -DPENLINK_TESTS=OFF -DPENLINK_BENCH=OFF
    sh tools/fuzz/run.sh build-fuzz 20

    echo "== ASan + UBSan build (clang), all tests"
    CC=clang build build-asan -DPENLINK_SANITIZE=ON -DPENLINK_BENCH=OFF
    (cd build-asan && ctest -j "$jobs" --output-on-failure > ctest.log 2>&1) ||
        { cat build-asan/ctest.log; exit 1; }
    tail -n 3 build-asan/ctest.log

    # The gcc -Wall -Wextra -Werror build (-O2): valgrind only wraps its tests,
    # so the Debian packages are made from it (prefix /usr).
    echo "== valgrind (memcheck, leaks are errors): the tests labelled for it (tests/CMakeLists.txt)"
    build build-valgrind -DPENLINK_VALGRIND=ON -DPENLINK_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr
    (cd build-valgrind && ctest -j "$jobs" -LE nomemcheck --output-on-failure > ctest.log 2>&1) ||
        { cat build-valgrind/ctest.log; exit 1; }
    tail -n 3 build-valgrind/ctest.log

    echo "== Debian packages (from the valgrind tier's build): cpack, lintian, apt-get install, used, purged"
    start=$(date +%s)
    sh tools/packaging/ci_packages.sh build-valgrind
    echo "($(($(date +%s) - start)) s)"

    # Last, so that the run ends in ctest's summary and then the coverage's;
    # the target is enforced for host/src and protocol/ (the run fails below it).
    echo "== coverage build (gcc --coverage -O0), all tests, then the coverage summary"
    start=$(date +%s)
    build build-test -DPENLINK_COVERAGE=ON
    (cd build-test && ctest -j "$jobs" --output-on-failure > ctest.log 2>&1) ||
        { cat build-test/ctest.log; exit 1; }
    tail -n 3 build-test/ctest.log
    sh tools/coverage.sh --check build-test
    echo "($(($(date +%s) - start)) s)"
    ;;
*)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
