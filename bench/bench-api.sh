#!/bin/bash
# bench/bench-api.sh - joule_energy() latency against a unix-socket round trip (JL_OP_ENERGY) to a live
# jouled on an emulated 2-socket node (joule-emu intel2s, sampling every 100 ms), in one run of
# bench/bench-api.c. Builds in build-h-bench (release). Needs root (private mount namespace). Prints the
# figures; docs/performance.md "## joule_energy() latency" holds a run's. Never run by `meson test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-h-bench}
[ "$(id -u)" = 0 ] || { echo "bench-api.sh: needs root" >&2; exit 2; }
# release, and without -Werror for src/ (an -O3 maybe-uninitialized elsewhere is not this benchmark's to fix;
# bench-api.c itself keeps -Werror)
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dwerror=false >/dev/null
ninja -C "$BUILD" bench/bench-api src/jouled/jouled src/cli/joule tests/emu/joule-emu >/dev/null
D=$(mktemp -d /tmp/jbapi.XXXXXX)
EMU=$ROOT/$BUILD/tests/emu/joule-emu
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        sleep 0.3
        rm -rf "$D"
}
trap cleanup EXIT
"$EMU" create --node intel2s --root "$D/fx" >/dev/null
"$EMU" serve --root "$D/fx" </dev/null >/dev/null 2>&1 &
pids+=($!)
"$EMU" ctl --root "$D/fx" --wait 5 ping >/dev/null
printf 'database:\n  url: %s/j.db\nnode:\n  name: bench\n  socket: %s/jouled.sock\n  sample_ms: 100\n  period: 10\n  state_dir: %s/state\n' \
        "$D" "$D" "$D" >"$D/joule.yml"
"$ROOT/$BUILD/src/cli/joule" -c "$D/joule.yml" db init >/dev/null
"$ROOT/tests/ns-run.sh" "$D/fx" -- "$ROOT/$BUILD/src/jouled/jouled" -c "$D/joule.yml" </dev/null >"$D/jouled.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$D/jouled.sock" ] && break; sleep 0.05; done
echo "$(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
JOULE_SOCKET=$D/jouled.sock "$ROOT/$BUILD/bench/bench-api" "${1:-1000000}" "${2:-20000}"
