#!/bin/bash
# bench/bench-jouled.sh - jouled at 1 Hz beside prometheus-node-exporter on the same emulated node (joule-emu
# intel2s): jouled samples every 1000 ms (records every 10 s into SQLite) with /metrics on; node_exporter
# serves the fixture's sysfs (--path.sysfs, RAPL and hwmon collectors only); both /metrics endpoints are
# scraped once a second. Over SECONDS (default 60) it reads each process's CPU time (utime+stime from
# /proc/PID/stat, and the sum of its threads' /proc/PID/task/*/schedstat run time in ns) and memory (VmHWM,
# VmRSS, Pss). Needs root (private mount namespace). Targets (docs/performance.md "## jouled at 1 Hz"): CPU
# below 0.1% of a core, RSS below 8 MiB. Never run by `meson test`.
#
#   bench/bench-jouled.sh [SECONDS]        BUILD=build-dir (default build-n-bench, release)
#                                          JOULED_METRICS=0: jouled without /metrics (its default), not scraped
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-n-bench}
SECS=${1:-60}
JM=${JOULED_METRICS:-1}
[ "$(id -u)" = 0 ] || { echo "bench-jouled.sh: needs root" >&2; exit 2; }
NE=$(command -v prometheus-node-exporter || command -v node_exporter || true)
[ -n "$NE" ] || { echo "bench-jouled.sh: no prometheus-node-exporter (apt-get install prometheus-node-exporter)" >&2; exit 2; }
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dwerror=false >/dev/null
ninja -C "$BUILD" -j2 src/jouled/jouled src/cli/joule tests/emu/joule-emu >/dev/null
D=$(mktemp -d /tmp/jbjd.XXXXXX)
EMU=$ROOT/$BUILD/tests/emu/joule-emu
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        sleep 0.3
        rm -rf "$D"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
JP=$(free_port)
NP=$(free_port)

"$EMU" create --node intel2s --root "$D/fx" >/dev/null
"$EMU" serve --root "$D/fx" </dev/null >/dev/null 2>&1 &
pids+=($!)
"$EMU" ctl --root "$D/fx" --wait 5 ping >/dev/null
"$EMU" ctl --root "$D/fx" load 0.5 >/dev/null
printf 'database:\n  url: %s/j.db\nnode:\n  name: bench\n  socket: %s/jouled.sock\n  sample_ms: 1000\n  period: 10\n  state_dir: %s/state\n' \
        "$D" "$D" "$D" >"$D/joule.yml"
[ "$JM" = 1 ] && printf '  metrics_listen: 127.0.0.1:%s\n' "$JP" >>"$D/joule.yml"
"$ROOT/$BUILD/src/cli/joule" -c "$D/joule.yml" db init >/dev/null
"$ROOT/tests/ns-run.sh" "$D/fx" -- "$ROOT/$BUILD/src/jouled/jouled" -c "$D/joule.yml" </dev/null >"$D/jouled.log" 2>&1 &
JPID=$!
pids+=($JPID)
"$NE" --path.sysfs="$D/fx/sys" --collector.disable-defaults --collector.rapl --collector.hwmon \
        --web.listen-address="127.0.0.1:$NP" </dev/null >"$D/ne.log" 2>&1 &
NPID=$!
pids+=($NPID)
for _ in $(seq 100); do
        [ -S "$D/jouled.sock" ] && curl -sf "http://127.0.0.1:$NP/metrics" >/dev/null 2>&1 && break
        sleep 0.1
done
[ -S "$D/jouled.sock" ] || { echo "jouled does not start" >&2; cat "$D/jouled.log" >&2; exit 1; }
if [ "$JM" = 1 ]; then
        for _ in $(seq 50); do curl -sf "http://127.0.0.1:$JP/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
        curl -sf "http://127.0.0.1:$JP/metrics" | grep -q '^joule_energy_joules_total' || { echo "jouled's /metrics does not answer" >&2; cat "$D/jouled.log" >&2; exit 1; }
fi
curl -sf "http://127.0.0.1:$NP/metrics" | grep -q '^node_rapl_' || { echo "node_exporter serves no RAPL metric" >&2; cat "$D/ne.log" >&2; exit 1; }
sleep 3 # past start-up (first sample, store opened)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sched_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
pss() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }
HZ=$(getconf CLK_TCK)
J0=$(ticks $JPID) N0=$(ticks $NPID) JS0=$(sched_ns $JPID) NS0=$(sched_ns $NPID)
T0=$(date +%s.%N)
for _ in $(seq "$SECS"); do
        [ "$JM" = 1 ] && curl -sf -o /dev/null "http://127.0.0.1:$JP/metrics" &
        curl -sf -o /dev/null "http://127.0.0.1:$NP/metrics" &
        sleep 1
done
wait_curls() { for _ in $(seq 20); do pgrep -P $$ curl >/dev/null || return 0; sleep 0.1; done; }
wait_curls
J1=$(ticks $JPID) N1=$(ticks $NPID) JS1=$(sched_ns $JPID) NS1=$(sched_ns $NPID)
T1=$(date +%s.%N)
echo "$(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $("$NE" --version 2>&1 | head -1)"
python3 - "$T0" "$T1" "$HZ" "$J0" "$J1" "$JS0" "$JS1" "$N0" "$N1" "$NS0" "$NS1" \
        "$(kib $JPID VmHWM)" "$(kib $JPID VmRSS)" "$(pss $JPID)" "$(ls /proc/$JPID/task | wc -l)" \
        "$(kib $NPID VmHWM)" "$(kib $NPID VmRSS)" "$(pss $NPID)" "$(ls /proc/$NPID/task | wc -l)" "$JM" <<'PY'
import sys
a = sys.argv[1:]
t = float(a[1]) - float(a[0]); hz = int(a[2])
def row(name, t0, t1, s0, s1, hwm, rss, pss, thr):
    ticks_pct = (int(t1) - int(t0)) / hz / t * 100
    sched_pct = (int(s1) - int(s0)) / 1e9 / t * 100
    print(f"| {name} | {sched_pct:.3f}% ({(int(s1) - int(s0)) / 1e6:.1f} ms) | {ticks_pct:.2f}% ({int(t1) - int(t0)} ticks) "
          f"| {int(hwm) / 1024:.1f} MiB | {int(rss) / 1024:.1f} MiB | {int(pss) / 1024:.1f} MiB | {thr} |")
print(f"over {t:.1f} s, node_exporter scraped at 1 Hz, jouled's /metrics {'scraped at 1 Hz' if a[19] == '1' else 'off (the default)'}")
print("| process | CPU (schedstat) | CPU (stat ticks) | VmHWM | VmRSS | Pss | threads |")
print("|---|---|---|---|---|---|---|")
row("jouled (1 s sampling, 10 s records)", *a[3:7], *a[11:15])
row("node_exporter (rapl, hwmon)", *a[7:11], *a[15:19])
PY
