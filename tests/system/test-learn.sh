#!/bin/bash
# test-learn.sh - the learning run on an emulated node (intel2s) with a real jouled: `joule learn` runs the
# emulator's compute, mixed and memory workloads (tests/emu/emu-work: their speed and power follow the
# emulated frequency) at five frequencies and writes a coefficient file whose power curve matches the
# emulator's own power model (its static power 86 W: board 40 + 2 x package 20 + 2 x DRAM 3, within 3 %;
# its voltage shape V_min/V_max 0.8, within 0.06; the compute workload's power across frequencies as the
# emulator's sweep gives it, within 2 %); the frequencies are given back; `joule learn --show` prints the
# file; a min_energy run (Open MPI, tests/emu/emu-work-mpi.c) with that file uses the learnt curve (the
# `model` event) and keeps its bound (the true time at the frequency held within (1 + th) of the time at
# the default, 1 %); a file of another node, and a missing one, leave the defaults with one line at
# JOULE_VERBOSE 1; as nobody, `joule learn` is refused and changes nothing. TAP.
# Environment: JOULE, JOULED, JOULE_EMU, NS_RUN, EMU_WORK; JOULE_LOADER, JOULE_RT_BUILDDIR, EMU_WORK_MPI_SRC
# (the min_energy part; skipped without Open MPI's mpicc).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
t_setup
: "${JOULED:?}" "${EMU_WORK:?}"
t_need_joule
chmod 0755 "$T_DIR"

emu_start n intel2s || { echo "1..0 # SKIP joule-emu did not start"; exit 0; }
JD_CFG=$T_DIR/jd.yml
JD_SOCK=$T_DIR/jd.sock
COEFFS=$T_DIR/coeffs
printf 'database:\n  url: %s\nnode:\n  name: emu1\n  socket: %s\n  sample_ms: 50\n  period: 1\n  state_dir: %s\nruntime:\n  coefficients_dir: %s\n' \
        "$T_DIR/jd.db" "$JD_SOCK" "$T_DIR/jd.state" "$COEFFS" >"$JD_CFG"
chmod 0644 "$JD_CFG"
"$JOULE" -c "$JD_CFG" db init >/dev/null || { echo "1..0 # SKIP joule db init failed"; exit 0; }
"$NS_RUN" "$FX" -- "$JOULED" -c "$JD_CFG" </dev/null >>"$T_DIR/jd.log" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 100); do
        [ -S "$JD_SOCK" ] && break
        sleep 0.05
done
[ -S "$JD_SOCK" ]
t_ok $? "jouled runs on the emulated node"
CF=$FX/sys/devices/system/cpu/cpufreq
limits() { # the cpufreq limits of CPUs 0-1 (jouled writes them without a newline)
        local f
        for f in "$CF"/policy0/scaling_{min,max}_freq "$CF"/policy1/scaling_{min,max}_freq; do
                printf '%s ' "$(cat "$f")"
        done
}

# --- as nobody: refused, nothing changed, no file
BEFORE=$(limits)
"$NS_RUN" "$FX" -- taskset -c 0,1 setpriv --reuid nobody --regid nogroup --clear-groups \
        "$JOULE" -c "$JD_CFG" learn --kernel-cmd true --freqs 800000,3000000 --idle-ms 200 --settle-ms 0 \
        --output "$T_DIR/nobody.coeffs" >"$T_DIR/nobody.out" 2>"$T_DIR/nobody.err"
st=$?
t_ok "$([ $st -ne 0 ] && grep -q 'root and node.admins' "$T_DIR/nobody.err"; echo $?)" \
        "as nobody, joule learn is refused with a line saying who may (exit $st: $(tail -1 "$T_DIR/nobody.err"))"
t_ok "$([ ! -e "$T_DIR/nobody.coeffs" ] && [ "$(limits)" = "$BEFORE" ]; echo $?)" "... and writes nothing, changes no frequency"

# --- the learning run: three workloads on CPUs 0-1 at five frequencies
W="$EMU_WORK --root $FX --cpus 0-1 --iterations 15"
FREQS=800000,1300000,1900000,2500000,3000000
T0=$(date +%s.%N)
timeout 120 "$NS_RUN" "$FX" -- taskset -c 0,1 "$JOULE" -c "$JD_CFG" learn \
        --kernel-cmd "$W --kind compute" --kernel-cmd "$W --kind mixed" --kernel-cmd "$W --kind memory" \
        --freqs $FREQS --idle-ms 400 --settle-ms 50 >"$T_DIR/learn.out" 2>"$T_DIR/learn.err"
st=$?
T1=$(date +%s.%N)
t_ok $st "joule learn --kernel-cmd (emu-work compute, mixed, memory) at 5 frequencies completes ($(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }') s)"
[ $st -eq 0 ] || sed 's/^/#   /' "$T_DIR/learn.err" "$T_DIR/learn.out"
sed 's/^/# /' "$T_DIR/learn.out"
tail -1 "$T_DIR/learn.err" | sed 's/^/# /'
FILE=$COEFFS/emu1.coeffs
t_ok "$([ -s "$FILE" ] && [ ! -e "$FILE.tmp.*" ]; echo $?)" "it wrote runtime.coefficients_dir/emu1.coeffs (the node's name from jouled)"
AFTER=$(limits)
t_ok "$([ "$AFTER" = "$BEFORE" ]; echo $?)" "the frequencies in force before are given back (before: $BEFORE; after: $AFTER)"
t_ok "$(grep -q '^joule-coeffs 1$' "$FILE" && grep -q '^node emu1$' "$FILE" && ! grep -q '^pair' "$FILE"; echo $?)" \
        "the file: version 1, node emu1, no counter pairs (no counters here)"

SWEEP=$(ctl sweep 0-1 compute)
check_curve() {
        "$PY" - "$FILE" "$SWEEP" <<'EOF'
import json, sys
curve = [l.split() for l in open(sys.argv[1]) if l.startswith('curve ')][0]
st, v0, fmin, fmax = (float(x) for x in curve[1:5])
sw = json.loads(sys.argv[2])
def s(f):
    v = v0 + (1 - v0) * (f - fmin) / (fmax - fmin)
    return f / fmax * v * v
# the emulator's model (tests/emu/model.c, intel2s): at rest 40 + 2 x 20 + 2 x 3 W; V_min/V_max 0.8
print('learnt: static %.3f W (emulator 86), V_min/V_max %.4f (emulator 0.8)' % (st, v0))
bad = []
if abs(st - 86) > 0.03 * 86: bad.append('static power off by more than 3 %')
if abs(v0 - 0.8) > 0.06: bad.append('voltage shape off by more than 0.06')
# the compute workload's power through the curve, b from the sweep's top point, against the sweep
pts = {p['khz']: p['power_w'] for p in sw['points']}
b = (pts[int(fmax)] - st) / s(fmax)
worst = max(abs(st + b * s(f) - p) / p for f, p in pts.items() if fmin <= f <= fmax)
print('compute across frequencies through the curve: worst %.2f %% off the sweep' % (worst * 100))
if worst > 0.02: bad.append('the curve misses the sweep by more than 2 %')
if bad:
    print('; '.join(bad)); sys.exit(1)
EOF
}
t_check "the power curve matches the emulator's model (static within 3 %, V ratio within 0.06, compute's sweep within 2 %)" -- check_curve
t_diag "$(check_curve 2>&1 | paste -sd';')"

"$JOULE" -c "$JD_CFG" learn --show >"$T_DIR/show.out" 2>"$T_DIR/show.err"
t_ok "$(cmp -s "$T_DIR/show.out" "$FILE" && grep -q 'power curve' "$T_DIR/show.err"; echo $?)" \
        "joule learn --show prints the node's file (and a summary on stderr)"
printf 'joule-coeffs 1\nnode emu1\n' >"$T_DIR/trunc.coeffs"
"$JOULE" -c "$JD_CFG" learn --show --output "$T_DIR/trunc.coeffs" >/dev/null 2>"$T_DIR/trunc.err"
t_ok "$([ $? -ne 0 ] && grep -q 'truncated' "$T_DIR/trunc.err"; echo $?)" "--show of a truncated file: refused with words"

# --- a kernel shorter than four of jouled's samples (50 ms here) is run again until they have passed, and
# the node at rest is measured that long at least: the power comes from two samples or more, always
"$NS_RUN" "$FX" -- taskset -c 0,1 "$JOULE" -c "$JD_CFG" learn --freqs 800000,3000000 --idle-ms 20 --settle-ms 0 \
        --kernel-cmd "$EMU_WORK --root $FX --cpus 0-1 --iterations 1 --kind compute" \
        --output "$T_DIR/short.coeffs" >"$T_DIR/short.out" 2>"$T_DIR/short.err"
t_check "a short kernel and --idle-ms 20: the node at rest for 200 ms, the kernel run again, a finite power at every frequency" -- \
        "$PY" - "$T_DIR/short.out" "$T_DIR/short.err" <<'EOF'
import math, re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r'^\d+ ', l)]
err = open(sys.argv[2]).read()
bad = []
if 'the node at rest is measured for 200 ms' not in err: bad.append('no line on the idle time')
m = re.search(r'takes ([0-9.]+) s, shorter than four .* run (\d+) times', err)
if not m or int(m.group(2)) < 2: bad.append('the kernel was not run again')
if 'shorter than two' in err: bad.append('a measurement missed its samples')
if len(rows) != 4 or not all(math.isfinite(float(r[-5])) for r in rows): bad.append('rows: %s' % rows)
print('; '.join(bad)); sys.exit(1 if bad else 0)
EOF
t_diag "$(grep -E 'measured for|run [0-9]+ times|learn:' "$T_DIR/short.err" | paste -sd';')"

# --- SIGTERM mid-run: the kernel stops, the frequencies are given back, nothing is written (run last: at
# the end, whether or not the MPI part runs)
learn_term() {
        # a step on the node when learn starts, which ends a second later: learn waits for it, then runs
        "$JOULE" -c "$JD_CFG" job begin --job 990001 --step 0 >"$T_DIR/busy.out" 2>&1 || t_diag "$(cat "$T_DIR/busy.out")"
        sleep 0.3 # jouled's next sample (50 ms) puts it on the page
        (sleep 1; "$JOULE" -c "$JD_CFG" job end --job 990001 --step 0 >/dev/null 2>&1) &
        "$NS_RUN" "$FX" -- taskset -c 0,1 "$JOULE" -c "$JD_CFG" learn --freqs 800000,3000000 --idle-ms 100 \
                --settle-ms 0 --kernel-cmd "$EMU_WORK --root $FX --cpus 0-1 --iterations 1000 --kind compute" \
                --output "$T_DIR/term.coeffs" >/dev/null 2>"$T_DIR/term.err" &
        local lp=$! i
        for i in $(seq 300); do # learn first waits for step 990001 to end (a second)
                [ "$(cat "$CF/policy0/scaling_max_freq")" = 800000 ] && break
                sleep 0.05
        done
        sleep 0.5
        kill -TERM $lp
        wait $lp
        local st=$?
        t_ok "$(grep -q 'job 990001 step 0 is on the node; waiting' "$T_DIR/term.err"; echo $?)" \
                "a step on the node when learn starts: learn waits for it to end, then runs"
        t_ok "$([ $st -eq 143 ] && grep -q 'stopped by signal 15' "$T_DIR/term.err" && [ ! -e "$T_DIR/term.coeffs" ]; echo $?)" \
                "SIGTERM mid-run: learn stops (exit $st), writes nothing"
        [ $st -eq 143 ] || t_diag "$(tail -5 "$T_DIR/term.err" | paste -sd';')"
        t_ok "$([ "$(limits)" = "$BEFORE" ]; echo $?)" "... and the frequencies in force before are given back ($(limits))"
        t_ok "$(! pgrep -f "emu-work --root $FX" >/dev/null; echo $?)" "... and the kernel is stopped"
}

# --- min_energy with the learnt curve (Open MPI)
if [ -z "${JOULE_LOADER:-}" ] || ! command -v mpicc.openmpi >/dev/null ||
        ! mpicc.openmpi -O2 -o "$T_DIR/emu-work-mpi" "$EMU_WORK_MPI_SRC" "$(dirname "$EMU_WORK_MPI_SRC")/work-common.c" -lm; then
        t_skip "min_energy with the learnt curve" "Open MPI's mpicc or the runtime is not built"
        learn_term
        t_done
        exit $?
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_mpi_yield_when_idle=1 HWLOC_HIDE_ERRORS=2
SAN_PRELOAD=$(ldd "$JOULE_LOADER" | awk '/lib(asan|ubsan)[.]so/ {print $3}' | paste -sd: -)
if [ -z "$SAN_PRELOAD" ] && nm -D "$JOULE_LOADER" 2>/dev/null | grep -q ' U __asan_'; then
        SAN_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
fi
PRELOAD=${SAN_PRELOAD:+$SAN_PRELOAD:}$JOULE_LOADER
run_me() { # NAME COEFFS_DIR ITERATIONS [VAR=VALUE...]
        local name=$1 dir=$2 n=$3
        shift 3
        timeout 60 "$NS_RUN" "$FX" -- taskset -c 0,1 env LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0 \
                JOULE_LIBDIR="$JOULE_RT_BUILDDIR" JOULE_SOCKET="$JD_SOCK" JOULE_COEFFS_DIR="$dir" JOULE_VERBOSE=2 \
                JOULE_WINDOW_MS=500 JOULE_SETTLE_MS=60 JOULE_POLICY=min_energy JOULE_POLICY_TH=0.1 "$@" \
                mpirun.openmpi -np 2 "$T_DIR/emu-work-mpi" --root "$FX" --kind mixed --cycles 12000000 --mem-s 0.016 --cpus 0-1 --iterations "$n" \
                --steady 60 >"$T_DIR/$name.out" 2>"$T_DIR/$name.err"
}
run_me me-curve "$COEFFS" 300
t_ok $? "min_energy th 0.1 on mixed with the learnt file: the program completes"
grep -E 'event model 1: learnt power curve' "$T_DIR/me-curve.err" | head -1 | sed 's/^/# /'
t_ok "$(grep -q 'event model 1: learnt power curve' "$T_DIR/me-curve.err"; echo $?)" \
        "the runtime used the learnt curve (event model 1)"
check_bound() {
        "$PY" - "$T_DIR/$1.out" "$(ctl sweep 0-1 mixed 12000000 0.016)" 0.1 <<'EOF'
import json, sys
o = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')][0]
sw = json.loads(sys.argv[2]); th = float(sys.argv[3])
pts = {p['khz']: p for p in sw['points']}
ref = pts[sw['ref_khz']]
f = min(pts, key=lambda k: abs(k - o['final_khz']))
t = pts[f]['time_s']
saved = (ref['energy_j'] - pts[f]['energy_j']) / ref['energy_j'] * 100
within = [p for p in sw['points'] if p['time_s'] <= (1 + th) * ref['time_s']]
best = min(within, key=lambda p: p['energy_j'])
print('held %d kHz: true %.6f s/it = %+.2f%% of %.6f s (bound +%.0f%%), saves %.2f%% (the sweep: %.2f%% at %d kHz)' % (
      f, t, (t / ref['time_s'] - 1) * 100, ref['time_s'], th * 100, saved,
      (ref['energy_j'] - best['energy_j']) / ref['energy_j'] * 100, best['khz']))
sys.exit(0 if t <= (1 + th) * ref['time_s'] * 1.01 else 1)
EOF
}
t_check "min_energy with the learnt curve (mixed-mem: a quarter cycles, optimum inside the range) keeps its bound (true time within (1 + 0.1), 1 %)" -- check_bound me-curve
t_diag "$(check_bound me-curve 2>&1 | head -1)"

# another node's file, and none: one line at JOULE_VERBOSE 1, the defaults
mkdir -p "$T_DIR/other"
sed 's/^node emu1$/node emu2/' "$FILE" >"$T_DIR/other/emu1.coeffs"
run_me me-other "$T_DIR/other" 40 JOULE_VERBOSE=1
t_ok "$(grep -q "not used (the file is node emu2's, not emu1's)" "$T_DIR/me-other.err" &&
        ! grep -q 'learnt power curve' "$T_DIR/me-other.err"; echo $?)" "another node's file: one line, the defaults"
run_me me-none "$T_DIR/none" 40 JOULE_VERBOSE=1
t_ok "$(grep -q 'no coefficient file' "$T_DIR/me-none.err"; echo $?)" "no file: one line, the defaults"
learn_term
t_done
