#!/bin/bash
# test-runtime-gpu.sh - the CPU waiting while the GPU computes, end to end on an emulated node (intel2s) with
# the emulated NVML (tests/emu/nvml): jouled reads the GPU's utilisation (one NVML session per node) and
# publishes it in its shared page and on /metrics; a real Open MPI program (tests/emu/emu-work-mpi.c, 2 ranks)
# of kind gpuwait (its iteration waits for the GPU: its time does not depend on the CPU's frequency, its
# power does) tells the emulated NVML that its GPU is busy (util_file=); under min_energy th 0.1 the runtime
# classifies the phase as cpu-waiting-gpu, sets the lowest CPU frequency, measures it and holds it: the
# steady time stays within the bound (1 % tolerance) and energy is saved against the default-frequency truth
# (the emulator's sweep, whose optimum for this code is the lowest frequency at equal time). The same program
# with the GPU idle is NOT classified GPU-wait. Then a two-GPU node under Slurm's GRES: the step's GPU, named
# by SLURM_STEP_GPUS as its device minor number (which differs from its NVML index; CUDA_VISIBLE_DEVICES=0 is
# relative to the job's cgroup and names the other one by index), is found through the minor numbers jouled
# publishes: GPU-wait when the step's GPU is busy, NOT when only the other GPU is. A step on a MIG instance
# (CUDA_VISIBLE_DEVICES=MIG-<uuid>, no Slurm GRES) is matched to its GPU through the instances jouled lists
# under it (shm.h, version 4). TAP.
# Environment: JOULE, JOULED, JOULE_EMU, NS_RUN, JOULE_LOADER, JOULE_RT_BUILDDIR, EMU_WORK_MPI_SRC,
# NVML_EMU_DIR, JOULED_CLIENT.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
t_setup
: "${JOULED:?}" "${JOULE_LOADER:?}" "${JOULE_RT_BUILDDIR:?}" "${EMU_WORK_MPI_SRC:?}" "${NVML_EMU_DIR:?}" "${JOULED_CLIENT:?}"
t_need_joule
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_mpi_yield_when_idle=1 HWLOC_HIDE_ERRORS=2
RUN_TIMEOUT=40
TH=0.1

# the sanitizer runtime first in LD_PRELOAD (the programs are not instrumented)
SAN_PRELOAD=$(ldd "$JOULE_LOADER" | awk '/lib(asan|ubsan)[.]so/ {print $3}' | paste -sd: -)
if [ -z "$SAN_PRELOAD" ] && nm -D "$JOULE_LOADER" 2>/dev/null | grep -q ' U __asan_'; then
        SAN_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
fi
PRELOAD=${SAN_PRELOAD:+$SAN_PRELOAD:}$JOULE_LOADER

if ! command -v mpicc.openmpi >/dev/null; then
        echo "1..0 # SKIP Open MPI's mpicc is not installed"
        exit 0
fi
PROG=$T_DIR/emu-work-mpi
mpicc.openmpi -O2 -o "$PROG" "$EMU_WORK_MPI_SRC" "$(dirname "$EMU_WORK_MPI_SRC")/work-common.c" -lm || {
        echo "Bail out! emu-work-mpi does not build with mpicc.openmpi"
        exit 1
}
if [ "$(nproc)" -ge 4 ]; then CPUS=0-3; TASKSET=0-3; else CPUS=0-1; TASKSET=0,1; fi

# one emulated GPU whose utilisation is what the workload writes into UTIL (0 until it does)
UTIL=$T_DIR/gpu-util
NV=$T_DIR/nvml.conf
printf 'gpu power_w=250 sm_mhz=1980 mem_mhz=2619 util_file=%s name=Emulated H100\n' "$UTIL" >"$NV"

emu_start n intel2s || { echo "1..0 # SKIP joule-emu did not start"; exit 0; }
JD_CFG=$T_DIR/jd.yml
JD_SOCK=$T_DIR/jd.sock
PORT=$(free_port)
printf 'database:\n  url: %s\nnode:\n  name: emu1\n  socket: %s\n  sample_ms: 50\n  period: 1\n  state_dir: %s\n  metrics_listen: 127.0.0.1:%s\n' \
        "$T_DIR/jd.db" "$JD_SOCK" "$T_DIR/jd.state" "$PORT" >"$JD_CFG"
"$JOULE" -c "$JD_CFG" db init >/dev/null || { echo "1..0 # SKIP joule db init failed"; exit 0; }
# NVML for jouled only: the ranks have no libnvidia-ml.so.1 in their path, they read jouled's page
LD_LIBRARY_PATH=$NVML_EMU_DIR JOULE_EMU_NVML=$NV "$NS_RUN" "$FX" -- "$JOULED" -c "$JD_CFG" </dev/null \
        >>"$T_DIR/jd.log" 2>&1 &
JD_PID=$!
T_PIDS+=($JD_PID)
for _ in $(seq 100); do
        [ -S "$JD_SOCK" ] && break
        sleep 0.05
done
t_ok "$([ -S "$JD_SOCK" ]; echo $?)" "jouled runs on the emulated node with one emulated GPU"

metrics() { "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$PORT/metrics"; }
echo "80 30" >"$UTIL"
sleep 0.3
t_check "/metrics shows the GPU's utilisation (joule_gpu_utilization_ratio 0.8, memory 0.3)" -- \
        sh -c 'printf "%s" "$1" | grep -q "^joule_gpu_utilization_ratio{node=\"emu1\",domain=\"gpu-0\"} 0.800$" &&
               printf "%s" "$1" | grep -q "^joule_gpu_memory_utilization_ratio{node=\"emu1\",domain=\"gpu-0\"} 0.300$"' \
        _ "$(metrics)"
rm -f "$UTIL"

SWEEP=$(ctl sweep "$CPUS" gpuwait)
t_check "the truth: for gpuwait the lowest frequency is energy-optimal, at the time of the default frequency" -- \
        jtest "$SWEEP" 'j["optimal_khz"] == j["points"][0]["khz"] and abs(j["points"][0]["time_s"] - j["points"][-1]["time_s"]) < 1e-9 and j["points"][0]["energy_j"] < 0.9 * j["points"][-1]["energy_j"]'
LOW=$(jget "$SWEEP" 'j["points"][0]["khz"]')

# run NAME GPU_UTIL ITERATIONS: gpuwait on 2 ranks under min_energy th 0.1, writing its GPU's utilisation into
# UTIL, with RUN_ENV's variables; stdout NAME.out, stderr NAME.err
RUN_ENV=()
run() {
        timeout "$RUN_TIMEOUT" "$NS_RUN" "$FX" -- taskset -c "$TASKSET" env "${RUN_ENV[@]}" LD_PRELOAD="$PRELOAD" \
                ASAN_OPTIONS=detect_leaks=0 JOULE_LIBDIR="$JOULE_RT_BUILDDIR" JOULE_SOCKET="$JD_SOCK" \
                JOULE_VERBOSE=2 JOULE_WINDOW_MS=500 JOULE_SETTLE_MS=60 JOULE_POLICY=min_energy JOULE_POLICY_TH=$TH \
                mpirun.openmpi -np 2 "$PROG" --root "$FX" --kind gpuwait --cpus "$CPUS" --iterations "$3" \
                --steady 60 --gpu-util-file "$UTIL" --gpu-util "$2" >"$T_DIR/$1.out" 2>"$T_DIR/$1.err"
}
show_err() { grep -E 'joule:|emu-work' "$T_DIR/$1.err" | head -30 | sed 's/^/#   /'; }

# check NAME: the steady state against the sweep: the lowest frequency, the bound, energy saved
check() {
        "$PY" - "$T_DIR/$1.out" "$SWEEP" "$TH" <<'EOF'
import json, sys
out = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
sw = json.loads(sys.argv[2]); th = float(sys.argv[3])
if not out:
    print('no output'); sys.exit(1)
o = out[0]
pts = {p['khz']: p for p in sw['points']}
ref = pts[sw['ref_khz']]
f = min(pts, key=lambda k: abs(k - o['final_khz']))
saved = 1 - pts[f]['energy_j'] / ref['energy_j']
print('held %d kHz (steady %.0f kHz, lowest %d): measured steady %.6f s/it against the true %.6f s at %d kHz '
      '(%+.2f%%, bound %+.0f%%); true energy %.4f J/it, saved %.1f%% against the default frequency (sweep best '
      '%.1f%%)' % (f, o['steady_khz'], sw['points'][0]['khz'], o['steady_tpi_s'], ref['time_s'], sw['ref_khz'],
      (o['steady_tpi_s'] / ref['time_s'] - 1) * 100, th * 100, pts[f]['energy_j'], saved * 100,
      (1 - pts[sw['optimal_khz']]['energy_j'] / ref['energy_j']) * 100))
bad = []
if f != sw['points'][0]['khz']:
    bad.append('not the lowest frequency')
if abs(o['steady_khz'] - o['final_khz']) > 0.005 * o['final_khz']:
    bad.append('the frequency moved during the steady state')
if o['steady_tpi_s'] > (1 + th) * ref['time_s'] * 1.01:
    bad.append('bound broken')
if not saved > 0.2:
    bad.append('less than 20% saved')
if bad:
    print('; '.join(bad)); sys.exit(1)
EOF
}

# --- the GPU computes (95 %): GPU-wait, the lowest frequency, measured within the bound
run busy 95 200
t_ok $? "gpuwait with the GPU 95% busy (Open MPI, 2 ranks, min_energy th $TH): the program completes"
t_check "the phase event says the CPU waits for the GPU (cpu-waiting-gpu)" -- \
        grep -qE 'event phase 6: cpu-waiting-gpu' "$T_DIR/busy.err" || show_err busy
t_check "min_energy sends the GPU-wait phase to the lowest frequency ($LOW kHz) and measures it there" -- \
        grep -qE "event phase 6: reference .*cpu-waiting-gpu: the lowest frequency $LOW kHz, to be measured" \
        "$T_DIR/busy.err" || show_err busy
if ! t_check "GPU-wait: the lowest frequency held, steady time within (1 + $TH) of the default's (1 %), energy saved" -- \
        check busy; then
        show_err busy
fi
t_diag "$(check busy 2>&1 | head -1)"
t_check "the GPU's utilisation is back at 0 after the run" -- grep -qx '0 0' "$UTIL"

# --- the same program with the GPU idle: never GPU-wait
run idle 0 200
t_ok $? "gpuwait with the GPU idle (0%): the program completes"
t_check "with the GPU idle the phase is not GPU-wait (a phase event names another one)" -- \
        sh -c "! grep -q 'cpu-waiting-gpu' '$T_DIR/idle.err' && grep -qE 'event phase [0-9]+: ' '$T_DIR/idle.err'" ||
        show_err idle
t_diag "idle GPU: $(grep -E 'event phase' "$T_DIR/idle.err" | head -2 | tr '\n' ' ')"

# --- two GPUs, one of them the step's: NVML's gpu-0 is /dev/nvidia1, gpu-1 is /dev/nvidia0; Slurm gave the
# step /dev/nvidia0 (SLURM_STEP_GPUS=0) and, its cgroup showing that one GPU only, CUDA_VISIBLE_DEVICES=0
kill "$JD_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$JD_PID" 2>/dev/null || break; sleep 0.1; done
UTIL0=$T_DIR/gpu0-util UTIL1=$T_DIR/gpu1-util
MIG1=MIG-5a1e0000-0000-4000-8000-0000000000a1 MIG2=MIG-5a1e0000-0000-4000-8000-0000000000a2
printf 'gpu power_w=250 minor=1 util_file=%s name=Emulated H100\ngpu power_w=250 minor=0 util_file=%s mig=%s,%s name=Emulated H100\n' \
        "$UTIL0" "$UTIL1" "$MIG1" "$MIG2" >"$NV"
rm -f "$JD_SOCK"
LD_LIBRARY_PATH=$NVML_EMU_DIR JOULE_EMU_NVML=$NV "$NS_RUN" "$FX" -- "$JOULED" -c "$JD_CFG" </dev/null \
        >>"$T_DIR/jd.log" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 100); do
        [ -S "$JD_SOCK" ] && break
        sleep 0.05
done
t_ok "$([ -S "$JD_SOCK" ]; echo $?)" "jouled runs again with two emulated GPUs whose minor numbers are not their indices"
PAGE=$("$JOULED_CLIENT" --socket "$JD_SOCK" shm)
t_check "the shared page carries each GPU's UUID, minor number, PCI bus id and MIG instances (version 4)" -- \
        jtest "$PAGE" 'j["gpus"] == {"gpu-0": {"uuid": "GPU-e0000000-0000-4000-8000-000000000000", "minor": 1, "pci": "00000000:01:00.0"}, "gpu-1": {"uuid": "GPU-e0000000-0000-4000-8000-000000000001", "minor": 0, "pci": "00000000:02:00.0", "mig": "'"$MIG1,$MIG2"'"}}' ||
        t_diag "page: $PAGE"
RUN_ENV=(SLURM_STEP_GPUS=0 SLURM_JOB_GPUS=0 CUDA_VISIBLE_DEVICES=0)

UTIL=$UTIL1 run step 95 150
t_ok $? "the step's GPU (minor 0, NVML's gpu-1) 95% busy: the program completes"
t_check "the runtime takes NVML's gpu-1 from SLURM_STEP_GPUS (its minor number on jouled's page)" -- \
        grep -q 'GPUs of the step: gpu-1 (from SLURM_STEP_GPUS)' "$T_DIR/step.err" || show_err step
t_check "the step's GPU busy: the phase is GPU-wait" -- grep -qE 'event phase 6: cpu-waiting-gpu' "$T_DIR/step.err" ||
        show_err step

UTIL=$UTIL0 run other 95 150
t_ok $? "only the other GPU (minor 1, NVML's gpu-0, CUDA_VISIBLE_DEVICES' index 0) 95% busy: the program completes"
t_check "only the other GPU busy: the phase is not GPU-wait (a phase event names another one)" -- \
        sh -c "! grep -q 'cpu-waiting-gpu' '$T_DIR/other.err' && grep -qE 'event phase [0-9]+: ' '$T_DIR/other.err'" ||
        show_err other
t_diag "other GPU busy: $(grep -E 'GPUs of the step|event phase' "$T_DIR/other.err" | head -3 | tr '\n' ' ')"

# --- a MIG instance of gpu-1 named by CUDA_VISIBLE_DEVICES alone (MIG-<uuid>, R470 and later)
RUN_ENV=(CUDA_VISIBLE_DEVICES=$MIG2)
UTIL=$UTIL1 run mig 95 150
t_ok $? "a step on a MIG instance of gpu-1, gpu-1 95% busy: the program completes"
t_check "the runtime takes gpu-1 for its MIG instance (listed on jouled's page)" -- \
        grep -q "GPUs of the step: gpu-1 (from CUDA_VISIBLE_DEVICES): .*$MIG2.* is a MIG instance" "$T_DIR/mig.err" ||
        show_err mig
t_check "the instance's GPU busy: the phase is GPU-wait" -- grep -qE 'event phase 6: cpu-waiting-gpu' "$T_DIR/mig.err" ||
        show_err mig
t_done
