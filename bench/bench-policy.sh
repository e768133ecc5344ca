#!/bin/bash
# bench/bench-policy.sh - energy saved by min_energy at th 0.1 on the emulated node (docs/performance.md,
# "Policies"): the mixed, memory-bound and mixed-mem codes of tests/emu/emu-work-mpi.c on 2 Open MPI ranks
# with a real jouled, the runtime deciding, and the emulator's exact sweep as the truth: the frequency held,
# its true time against the bound, the energy saved per iteration and the best saving the sweep shows
# within the bound. Runs tests/system/test-runtime-policy.sh with POLICY_CASES=bench against a release
# build in build-bench-policy. Needs root (mount namespaces). Never run by `meson test`. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-bench-policy}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dwerror=false >/dev/null
ninja -C "$BUILD" src/cli/joule src/jouled/jouled tests/emu/joule-emu src/loader/libjoule-loader.so \
        src/runtime/libjoule-rt.so src/runtime/libjoule-rt-ompi.so src/runtime/libjoule-rt-mpich.so >/dev/null
OUT=$(mktemp /tmp/jbpol.XXXXXX)
trap 'rm -f "$OUT"' EXIT
echo "$(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $(uname -sr), $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
JOULE=$ROOT/$BUILD/src/cli/joule JOULED=$ROOT/$BUILD/src/jouled/jouled JOULE_EMU=$ROOT/$BUILD/tests/emu/joule-emu \
        NS_RUN=$ROOT/tests/ns-run.sh JOULE_LOADER=$ROOT/$BUILD/src/loader/libjoule-loader.so \
        JOULE_RT_BUILDDIR=$ROOT/$BUILD/src/runtime EMU_WORK_MPI_SRC=$ROOT/tests/emu/emu-work-mpi.c \
        POLICY_CASES=bench bash tests/system/test-runtime-policy.sh >"$OUT" || true
grep -E '^not ok' "$OUT" || true
echo
echo "| code | th | held | true time vs default | energy saved | best saving in the sweep (at) |"
echo "|---|---|---|---:|---:|---:|"
sed -n 's/^# me-\([a-z-]*\)-\([0-9.]*\): held \([0-9]*\) kHz.*= \([+-][0-9.]*%\) of .*saved \([-0-9.]*%\) (sweep best \([0-9.]*%\) at \([0-9]*\) kHz)/| \1 | \2 | \3 kHz | \4 | \5 | \6 (\7 kHz) |/p' "$OUT"
