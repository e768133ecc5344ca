#!/bin/bash
# bench/bench-spank.sh - the time spank_joule.so adds to a step's start and end: the same `srun -N1 -n1 true`
# in the same one-node Slurm (tests/with-slurm.sh: munged, slurmctld, slurmd on loopback), without the
# plugin (an empty plugstack.conf), with it (--joule=off: the begin and end at jouled of the job's extern
# step and of step 0) and with --joule=on (also the policies and the environment), rounds interleaved so
# that drift hits all three alike; jouled runs on an emulated node (joule-emu intel2s), SQLite store. Prints
# the median and the mean of each, and the plugin's cost per srun and per step (an srun here is two steps:
# extern and 0). Needs root. Target (docs/performance.md "## Slurm plugin"): under 20 ms per step.
#
#   bench/bench-spank.sh [ROUNDS]        BUILD=build-dir (default build-n-bench, release); ROUNDS default 30
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-n-bench}
ROUNDS=${1:-30}
[ "$(id -u)" = 0 ] || { echo "bench-spank.sh: needs root" >&2; exit 2; }
if [ -z "${SLURM_CONF:-}" ]; then
        [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dwerror=false >/dev/null
        ninja -C "$BUILD" -j2 src/jouled/jouled src/cli/joule tests/emu/joule-emu src/spank/spank_joule.so \
                src/loader/libjoule-loader.so >/dev/null
        exec "$ROOT/tests/with-slurm.sh" -- "$0" "$@"
fi
[ -n "${JOULE_SLURM_SKIP:-}" ] && { echo "bench-spank.sh: $JOULE_SLURM_SKIP" >&2; exit 2; }
B=$ROOT/$BUILD
D=$(mktemp -d /tmp/jbsp.XXXXXX)
chmod 755 "$D"
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        sleep 0.3
        rm -rf "$D"
}
trap cleanup EXIT
"$B/tests/emu/joule-emu" create --node intel2s --root "$D/fx" >/dev/null
"$B/tests/emu/joule-emu" serve --root "$D/fx" </dev/null >/dev/null 2>&1 &
pids+=($!)
"$B/tests/emu/joule-emu" ctl --root "$D/fx" --wait 5 ping >/dev/null
cat >"$D/j.yml" <<EOF
database:
  url: $D/j.db
node:
  name: bench1
  socket: $D/j.sock
  state_dir: $D/state
EOF
"$B/src/cli/joule" -c "$D/j.yml" db init >/dev/null
"$ROOT/tests/ns-run.sh" "$D/fx" -- "$B/src/jouled/jouled" -c "$D/j.yml" </dev/null >"$D/jouled.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$D/j.sock" ] && break; sleep 0.05; done
cd "$JOULE_SLURM_DIR/out"
with="optional $B/src/spank/spank_joule.so config=$D/j.yml loader=$B/src/loader/libjoule-loader.so"
one() { # one MODE: seconds of one srun
        case $1 in
        none) : >"$JOULE_SLURM_PLUGSTACK" ;;
        off) echo "$with" >"$JOULE_SLURM_PLUGSTACK" ;;
        on) echo "$with" >"$JOULE_SLURM_PLUGSTACK" ;;
        esac
        local t0 t1 opt=
        [ "$1" = on ] && opt=--joule=on
        t0=$(date +%s%N)
        srun -Q -N1 -n1 $opt true
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000))
}
for m in none off on; do one $m >/dev/null; done # warm-up
: >"$D/times"
for r in $(seq "$ROUNDS"); do
        for m in none off on; do echo "$m $(one $m)" >>"$D/times"; done
done
python3 - "$D/times" "$ROUNDS" <<'EOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    m, us = line.split()
    t.setdefault(m, []).append(int(us) / 1000)
print("srun -N1 -n1 true, %s rounds interleaved (ms):" % sys.argv[2])
for m in ("none", "off", "on"):
    v = t[m]
    print("  %-4s median %8.1f  mean %8.1f  min %8.1f  max %8.1f" % (m, statistics.median(v), statistics.mean(v), min(v), max(v)))
for m in ("off", "on"):
    d = statistics.median(t[m]) - statistics.median(t["none"])
    print("  plugin (%s) adds %.1f ms per srun (median), %.1f ms per step (2 steps: extern and 0)" % (m, d, d / 2))
EOF
n=$("$B/src/cli/joule" -c "$D/j.yml" acct --json --from -1h | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "steps accounted by jouled: $n (expected $((ROUNDS * 4 + 4)))"
