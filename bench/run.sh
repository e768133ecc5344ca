#!/bin/bash
# bench/run.sh [--write-docs] - joule's performance targets, each measured against a peer or the raw limit
# in the same run (see docs/performance.md):
#   1. one sample of every RAPL domain of an emulated 2-socket node: jl_sampler_sample() ("rapl" only)
#      against a raw pread loop over the same energy_uj files (bench/bench-sample.c);
#   2. the CPU time of `joule measure --interval 100|10 -- sleep 10` itself (without sleep's), against the
#      floor of a bare timerfd + pread loop at the same rate (bench/tick-floor.c), node_exporter's rapl
#      collector scraped at the same rate, and perf's power PMU where the machine has one;
#   3. the peak RSS of joule measure.
# Builds what it needs in build-bench (release), lays out the node with joule-emu, runs everything at the
# real sysfs paths inside a private mount namespace (tests/ns-run.sh; needs root), and prints a markdown
# table. --write-docs also replaces the generated block of docs/performance.md. Never run by `meson test`.
# Environment: REPEAT (runs per joule measurement, median taken; default 3), DURATION (s, default 10),
# BUILD (build dir, default build-bench). Takes about 2.5 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-bench}
REPEAT=${REPEAT:-3}
DURATION=${DURATION:-10}
WRITE_DOCS=false
[ "${1:-}" = "--write-docs" ] && WRITE_DOCS=true
case $BUILD in build-bench*) ;; *) echo "run.sh: BUILD must be a build-bench* directory" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (private mount namespaces)" >&2; exit 2; }

log() { printf '== %s\n' "$*" >&2; }

# ---- build ----
targets=(src/cli/joule bench/bench-sample bench/proc-cost bench/tick-floor tests/emu/joule-emu)
if [ ! -f "$BUILD/build.ninja" ]; then
        log "meson setup $BUILD --buildtype=release"
        meson setup "$BUILD" --buildtype=release >/dev/null
fi
meson configure "$BUILD" -Dwerror=true >/dev/null
ninja -C "$BUILD" "${targets[@]}" >"$BUILD/bench-build.log" 2>&1 || { tail -30 "$BUILD/bench-build.log" >&2; exit 1; }
JOULE=$ROOT/$BUILD/src/cli/joule
EMU=$ROOT/$BUILD/tests/emu/joule-emu
BS=$ROOT/$BUILD/bench/bench-sample
PC=$ROOT/$BUILD/bench/proc-cost
TF=$ROOT/$BUILD/bench/tick-floor
NSRUN=$ROOT/tests/ns-run.sh

# ---- the emulated node ----
TMP=$(mktemp -d /tmp/joule-bench.XXXXXX)
FX=$TMP/node
serve_pid="" ne_pid=""
cleanup() {
        [ -n "$ne_pid" ] && kill "$ne_pid" 2>/dev/null && wait "$ne_pid" 2>/dev/null
        [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
        rm -rf "$TMP"
}
trap cleanup EXIT
"$EMU" create --node intel2s --root "$FX" >/dev/null

kv() { # kv FILE KEY: the value of KEY in a line of key=value pairs
        tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | head -1
}
median() { # median of the numbers on stdin
        sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'
}
calc() { awk "BEGIN {printf \"%.${2:-3}f\", $1}"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

load_start=$(load)
t_start=$(date +%s)

# ---- 1. one sample: jl_sampler_sample() against a raw pread loop (counters still: no serve yet) ----
log "1. jl_sampler_sample() vs raw pread loop, $REPEAT runs"
for i in $(seq "$REPEAT"); do
        "$NSRUN" "$FX" -- "$BS" 100000 10000 >"$TMP/bs.$i" 2>"$TMP/bs.$i.txt"
        head -1 "$TMP/bs.$i" >"$TMP/bs1.$i"
done
# the run with the median ratio
best=$(for i in $(seq "$REPEAT"); do echo "$(kv "$TMP/bs1.$i" ratio) $i"; done | sort -g | awk '{a[NR]=$2} END {print a[int((NR+1)/2)]}')
cat "$TMP/bs.$best.txt" >&2
s_med=$(kv "$TMP/bs1.$best" sampler_median_us) s_p99=$(kv "$TMP/bs1.$best" sampler_p99_us)
r_med=$(kv "$TMP/bs1.$best" raw_median_us) r_p99=$(kv "$TMP/bs1.$best" raw_p99_us)
s_ratio=$(kv "$TMP/bs1.$best" ratio) s_ch=$(kv "$TMP/bs1.$best" channels)
s_ratios=$(for i in $(seq "$REPEAT"); do kv "$TMP/bs1.$i" ratio; done | sort -g | paste -sd ' ')
prov_line() { grep "^provider=$1 gap_ms=${2:-0} " "$TMP/bs.$best" | tr ' ' '\n' | sed -n 's/^median_us=//p'; }

# ---- 2 and 3. joule measure on the live node ----
"$EMU" serve --root "$FX" >"$TMP/serve.log" 2>&1 &
serve_pid=$!
sleep 0.3

run_cost() { # run_cost OUT CMD...: proc-cost inside the namespace
        local out=$1
        shift
        "$NSRUN" "$FX" -- "$PC" --timeout $((DURATION + 30)) -o "$out" -- "$@"
}

log "2. joule's own CPU time: joule measure --interval 100|10 -- sleep $DURATION, $REPEAT runs each"
for iv in 100 10; do
        for i in $(seq "$REPEAT"); do
                run_cost "$TMP/j$iv.$i" "$JOULE" measure --interval "$iv" --json -- sleep "$DURATION" \
                        >"$TMP/j$iv.$i.json" 2>"$TMP/j$iv.$i.err"
                log "   interval $iv ms, run $i: $(cat "$TMP/j$iv.$i")"
        done
        log "   floor: tick-floor $iv $DURATION"
        run_cost "$TMP/f$iv" "$TF" "$iv" "$DURATION" >/dev/null
        log "   $(cat "$TMP/f$iv")"
done
log "   bare sleep $DURATION (for the tree-minus-sleep cross-check)"
run_cost "$TMP/sleep" sleep "$DURATION"

# ---- node_exporter's rapl collector, scraped at the same rates ----
NE=$(command -v prometheus-node-exporter || command -v node_exporter || true)
declare -A ne_cpu ne_n ne_wall
ne_hwm=""
if [ -n "$NE" ]; then
        for try in 1 2 3 4 5; do
                port=$((20000 + RANDOM % 20000))
                "$NE" --path.sysfs="$FX/sys" --collector.disable-defaults --collector.rapl \
                        --web.listen-address=127.0.0.1:$port >"$TMP/ne.log" 2>&1 &
                ne_pid=$!
                ok=false
                for _ in $(seq 50); do
                        if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/metrics"; then ok=true; break; fi
                        kill -0 "$ne_pid" 2>/dev/null || break
                        sleep 0.1
                done
                $ok && break
                kill "$ne_pid" 2>/dev/null; wait "$ne_pid" 2>/dev/null || true; ne_pid=""
        done
        if [ -n "$ne_pid" ]; then
                ne_zones=$(curl -s --max-time 2 "http://127.0.0.1:$port/metrics" | grep -c '^node_rapl_.*_joules_total')
                tck=$(getconf CLK_TCK)
                ne_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$ne_pid/stat"; }
                for hz in 10 100; do
                        n=$((hz * DURATION))
                        log "node_exporter: $n scrapes at $hz Hz"
                        a=$(ne_ticks) t0=$(date +%s.%N)
                        curl -s -o /dev/null --max-time $((DURATION + 30)) --rate "$hz/s" \
                                "http://127.0.0.1:$port/metrics?[1-$n]"
                        b=$(ne_ticks) t1=$(date +%s.%N)
                        ne_cpu[$hz]=$(calc "($b - $a) * 1000 / $tck" 0)
                        ne_n[$hz]=$n
                        ne_wall[$hz]=$(calc "$t1 - $t0" 2)
                done
                ne_hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$ne_pid/status")
                kill "$ne_pid"; wait "$ne_pid" 2>/dev/null || true; ne_pid=""
        fi
fi

# ---- perf's power PMU: the exact command; where it works, its own CPU time ----
perf_cmd="perf stat -a -e power/energy-pkg/ sleep $DURATION"
perf_res="perf not installed"
if command -v perf >/dev/null; then
        log "$perf_cmd"
        if run_cost "$TMP/perf" perf stat -a -e power/energy-pkg/ sleep "$DURATION" >"$TMP/perf.out" 2>&1; then
                perf_res="works: perf's own CPU $(kv "$TMP/perf" own_cpu_ms) ms (one reading at the end, not per tick)"
        else
                perf_res="not supported, it said: $(grep -iE 'pmu|not supported|error|cannot' "$TMP/perf.out" | head -2 | tr -s ' \n' ' ' | sed 's/ *$//')"
        fi
fi

# ---- what the RSS is made of: the same joule without libfreeipmi linked (only when it is linked) ----
ipmi_rss=""
if ldd "$JOULE" | grep -q libfreeipmi; then
        log "libfreeipmi is linked: the same joule built with -Dfreeipmi=disabled in $BUILD-noipmi"
        [ -f "$BUILD-noipmi/build.ninja" ] ||
                meson setup "$BUILD-noipmi" --buildtype=release -Dfreeipmi=disabled >/dev/null
        if ninja -C "$BUILD-noipmi" src/cli/joule >"$BUILD-noipmi/bench-build.log" 2>&1; then
                for b in "$BUILD" "$BUILD-noipmi"; do
                        run_cost "$TMP/rss.${b##*-}" "$ROOT/$b/src/cli/joule" measure --json -- sleep 1 >/dev/null
                done
                ipmi_rss="$(kv "$TMP/rss.bench" hwm_kib) KiB with libfreeipmi linked, $(kv "$TMP/rss.noipmi" hwm_kib) KiB without (\`-Dfreeipmi=disabled\`); startup + 10 samples: $(kv "$TMP/rss.bench" own_cpu_ms) ms vs $(kv "$TMP/rss.noipmi" own_cpu_ms) ms CPU"
        fi
fi
kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null || true; serve_pid=""

# ---- figures ----
pct() { calc "$1 / ($DURATION * 1000) * 100" 3; }
for iv in 100 10; do
        declare "cpu$iv=$(for i in $(seq "$REPEAT"); do kv "$TMP/j$iv.$i" own_cpu_ms; done | median)"
        declare "cpus$iv=$(for i in $(seq "$REPEAT"); do kv "$TMP/j$iv.$i" own_cpu_ms; done | sort -g | paste -sd ' ')"
        declare "tree$iv=$(for i in $(seq "$REPEAT"); do kv "$TMP/j$iv.$i" tree_cpu_ms; done | median)"
        declare "samples$iv=$(sed -n 's/.*"samples":\([0-9]*\).*/\1/p' "$TMP/j$iv.1.json")"
        declare "floor$iv=$(kv "$TMP/f$iv" own_cpu_ms)"
done
sleep_cpu=$(kv "$TMP/sleep" own_cpu_ms)
hwm=$(for iv in 100 10; do for i in $(seq "$REPEAT"); do kv "$TMP/j$iv.$i" hwm_kib; done; done | sort -g | tail -1)
maxrss=$(for iv in 100 10; do for i in $(seq "$REPEAT"); do kv "$TMP/j$iv.$i" tree_maxrss_kib; done; done | sort -g | tail -1)
sleep_rss=$(kv "$TMP/sleep" tree_maxrss_kib)
floor_rss=$(kv "$TMP/f100" hwm_kib)
threads=$(for iv in 100 10; do for i in $(seq "$REPEAT"); do kv "$TMP/j$iv.$i" threads; done; done | sort -g | tail -1)
verdict() { awk "BEGIN {print ($1) ? \"met\" : \"**missed**\"}"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src 2>/dev/null || commit="$commit + uncommitted src/ changes"
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)

{
echo "Run of \`bench/run.sh\` on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) CPUs ($cpu_model), $(uname -r)," \
        "commit $commit, REPEAT=$REPEAT, DURATION=${DURATION}s; load average $load_start at the start," \
        "$(load) at the end; took $(($(date +%s) - t_start)) s."
echo
echo "| # | target | joule | peer / limit (same run) | ratio | goal | verdict |"
echo "|---|---|---|---|---|---|---|"
echo "| 1 | one sample of $s_ch RAPL domains, median (p99) | $s_med µs ($s_p99) | raw pread loop $r_med µs ($r_p99) | ${s_ratio}× (runs: $s_ratios) | ≤ 1.5× | $(verdict "$s_ratio <= 1.5") |"
for iv in 100 10; do
        c=cpu$iv f=floor$iv n=samples$iv
        goal=$([ $iv = 100 ] && echo 0.1 || echo 1)
        hz=$((1000 / iv))
        nec="n/a" ner="n/a"
        if [ -n "${ne_cpu[$hz]:-}" ]; then
                nec="node_exporter $(pct "${ne_cpu[$hz]}") % (${ne_cpu[$hz]} ms, ${ne_n[$hz]} scrapes in ${ne_wall[$hz]} s)"
                ner=$(calc "${!c} / (${ne_cpu[$hz]} > 0 ? ${ne_cpu[$hz]} : 1)" 2)
        fi
        echo "| 2 | CPU of \`joule measure --interval $iv -- sleep $DURATION\` (${!n} samples), % of one core | $(pct "${!c}") % (${!c} ms; runs: $(eval echo \$cpus$iv)) | floor (timerfd + pread loop) $(pct "${!f}") % (${!f} ms); $nec | $(calc "${!c} / ${!f}" 2)× floor; ${ner}× node_exporter | < $goal % | $(verdict "$(pct "${!c}") < $goal") |"
done
echo "| 3 | peak RSS of joule measure (VmHWM; ru_maxrss of joule + sleep) | $(calc "$hwm / 1024" 2) MiB ($(calc "$maxrss / 1024" 2) MiB) | floor $(calc "$floor_rss / 1024" 2) MiB; node_exporter ${ne_hwm:+$(calc "$ne_hwm / 1024" 1) MiB}; bare sleep $(calc "$sleep_rss / 1024" 2) MiB | $(calc "$hwm / $floor_rss" 2)× floor | < 4 MiB | $(verdict "$hwm < 4096 && $maxrss < 4096") |"
echo
echo "Per-provider cost of one jl_sampler_sample() (hot loop, median µs): rapl $(prov_line rapl)," \
        "hwmon $(prov_line hwmon), cpufreq $(prov_line cpufreq), proc $(prov_line proc)," \
        "all as joule measure opens them $(prov_line all); cold, after a 10 ms sleep: rapl $(prov_line rapl 10)," \
        "hwmon $(prov_line hwmon 10), cpufreq $(prov_line cpufreq 10), proc $(prov_line proc 10), all $(prov_line all 10)."
echo "CPU per sample, start-up included: joule measure $(calc "$cpu100 * 1000 / $samples100" 0) µs at 100 ms and" \
        "$(calc "$cpu10 * 1000 / $samples10" 0) µs at 10 ms; the floor $(calc "$floor100 * 1000 / ($DURATION * 10)" 0) µs" \
        "and $(calc "$floor10 * 1000 / ($DURATION * 100)" 0) µs."
echo "Cross-check of the CPU method: joule + sleep (wait4 rusage) minus a bare sleep ($sleep_cpu ms) =" \
        "$(calc "$tree100 - $sleep_cpu" 1) ms at 100 ms and $(calc "$tree10 - $sleep_cpu" 1) ms at 10 ms," \
        "against $cpu100 and $cpu10 ms from joule's own schedstat; joule ran $threads thread(s)."
echo "perf: \`$perf_cmd\`: $perf_res."
[ -n "$ipmi_rss" ] && echo "Peak RSS of joule measure: $ipmi_rss."
echo "joule is linked with $(ldd "$JOULE" | grep -c '=>') shared objects: $(ldd "$JOULE" | awk '/=>/ {print $1}' | paste -sd ' ')."
[ -n "$NE" ] && echo "node_exporter: \`$(basename "$NE") --path.sysfs=FIXTURE/sys --collector.disable-defaults --collector.rapl --web.listen-address=127.0.0.1:PORT\`, ${ne_zones:-?} RAPL zones per scrape, scraped by \`curl --rate 10/s\` and \`--rate 100/s\`; CPU from /proc/PID/stat utime+stime (1/$(getconf CLK_TCK) s ticks)."
} >"$TMP/table.md"

echo
cat "$TMP/table.md"

if $WRITE_DOCS; then
        doc=docs/performance.md
        grep -q '<!-- bench:begin -->' "$doc" || { echo "run.sh: $doc has no <!-- bench:begin --> block" >&2; exit 1; }
        awk -v f="$TMP/table.md" '
                /<!-- bench:begin -->/ {print; while ((getline l < f) > 0) print l; skip = 1; next}
                /<!-- bench:end -->/ {skip = 0}
                !skip' "$doc" >"$TMP/doc.md"
        cat "$TMP/doc.md" >"$doc"
        log "wrote the figures into $doc"
fi
