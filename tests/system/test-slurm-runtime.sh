#!/bin/bash
# test-slurm-runtime.sh - a managed MPI job end to end: `srun --joule=on --joule-policy=min_energy` in a real
# one-node Slurm (tests/with-slurm.sh) starts an MPI program (tests/emu/emu-work-mpi.c, 2 ranks launched
# by srun itself: MPICH through Slurm's mpi/pmi2, Open MPI through mpi/pmix) on an emulated node (intel2s)
# with a real jouled storing into SQLite; the plugin preloads the loader, which loads the runtime from the
# build tree (the ranks enter the emulated node's mount namespace through nsenter). Checks: the job
# runs to its end; `joule acct -l` has the step's row on the node with the policy, its threshold, energy,
# time and power, and a mean frequency below the default (the effect on a memory-bound code); `joule
# events` has the policy's decisions; `joule acct -r` the loop; the node's cpufreq settings are those of
# before the job once it ended. Then `--joule-policy=monitoring`: the policy shown, no frequency ever
# written. TAP. Environment: JOULE, JOULED, JOULE_EMU, NS_RUN, SPANK_JOULE, JOULE_LOADER, JOULE_RT_BUILDDIR,
# EMU_WORK_MPI_SRC; SLURM_CONF and JOULE_SLURM_* from with-slurm.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
if [ -n "${JOULE_SLURM_SKIP:-}" ]; then
        echo "1..0 # SKIP $JOULE_SLURM_SKIP"
        exit 0
fi
t_setup
t_need_joule
: "${JOULED:?}" "${SPANK_JOULE:?}" "${JOULE_LOADER:?}" "${JOULE_RT_BUILDDIR:?}" "${EMU_WORK_MPI_SRC:?}"
: "${SLURM_CONF:?run under tests/with-slurm.sh}"
chmod 755 "$T_DIR"
cd "$JOULE_SLURM_DIR/out" || exit 1
if ! command -v mpicc.mpich >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmi2.so ]; then
        echo "1..0 # SKIP needs MPICH (mpicc.mpich) and Slurm's mpi/pmi2"
        exit 0
fi
declare -A PROG
mkdir -p "$T_DIR/mpich" "$T_DIR/ompi"
WORK_COMMON=$(dirname "$EMU_WORK_MPI_SRC")/work-common.c
# MPICH is installed (checked above): a program that does not build is a failure, not a skip
mpicc.mpich -O2 -o "$T_DIR/mpich/emu-work-mpi" "$EMU_WORK_MPI_SRC" "$WORK_COMMON" -lm ||
        { echo "1..1"; echo "not ok 1 - mpicc.mpich builds emu-work-mpi"; exit 1; }
PROG[pmi2]=$T_DIR/mpich/emu-work-mpi
if command -v mpicc.openmpi >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so ] &&
        mpicc.openmpi -O2 -o "$T_DIR/ompi/emu-work-mpi" "$EMU_WORK_MPI_SRC" "$WORK_COMMON" -lm; then
        PROG[pmix]=$T_DIR/ompi/emu-work-mpi
fi
RUN_TIMEOUT=90

emu_start n intel2s || { echo "1..0 # SKIP joule-emu did not start"; exit 0; }
jouled_start emu1
t_ok $? "jouled runs on the emulated node"
J() { "$JOULE" -c "$JD_CFG" "$@"; }
SPANK_CFG=$T_DIR/spank.yml
printf 'node:\n  socket: %s\npolicies:\n  default: monitoring\n  user_policies: [monitoring, min_energy]\n' \
        "$JD_SOCK" >"$SPANK_CFG"
chmod 644 "$SPANK_CFG"
echo "optional $SPANK_JOULE config=$SPANK_CFG loader=$JOULE_LOADER libdir=$JOULE_RT_BUILDDIR" >"$JOULE_SLURM_PLUGSTACK"
# The sanitized loader in programs that are not (docs/runtime.md): srun passes the environment on
TASK_ASAN=detect_leaks=0:verify_asan_link_order=0
# The ranks run in the emulated node's mount namespace (jouled's): its sysfs is where the program and the
# runtime read the frequencies. nsenter gets LD_PRELOAD too, and the loader must stay out of it (a
# runtime's thread makes setns(2) of a mount namespace fail). The emulated node has CPUs 0-3; the ranks
# run on this machine's.
NS_MNT=/proc/$JD_PID/ns/mnt
IN_NODE='[ "$SLURM_PROCID" = 0 ] && echo "job $SLURM_JOB_ID step $SLURM_STEP_ID" >&2; exec nsenter --mount="$0" -- "$@"'
if [ "$(nproc)" -ge 4 ]; then CPUS=0-3; else CPUS=0-1; fi
CF=$FX/sys/devices/system/cpu/cpufreq
snapshot() { # every CPU's cpufreq settings (the values, whatever their trailing newline) and their times
        local p f
        for p in "$CF"/policy*; do
                printf '%s' "${p##*/}"
                for f in scaling_max_freq scaling_min_freq scaling_governor; do printf ' %s' "$(cat "$p/$f")"; done
                printf ' %s\n' "$(stat -c %y "$p/scaling_max_freq" "$p/scaling_min_freq" "$p/scaling_governor" | tr '\n' ' ')"
        done
}
# acct_wait JOB: until the job's steps have ended in joule acct (10 s at most)
acct_wait() {
        local out
        for _ in $(seq 100); do
                out=$(J acct --json --job "$1" --from -1h 2>/dev/null)
                jtest "$out" "len(j) >= 2 and all(r['end'] for r in j)" >/dev/null && break
                sleep 0.1
        done
        printf '%s' "$out"
}

# mpi_job NAME MPI SRUN_ARGS... -- PROGRAM_ARGS...: the job (MPI: pmi2 for MPICH, pmix for Open MPI); stdout
# in NAME.out, stderr in NAME.err (rank 0 writes the job id there first); sets JOB
mpi_job() {
        local name=$1 mpi=$2
        shift 2
        local sargs=()
        while [ "$1" != "--" ]; do sargs+=("$1"); shift; done
        shift
        ASAN_OPTIONS=$TASK_ASAN timeout "$RUN_TIMEOUT" srun -N1 -n2 --mpi="$mpi" --joule=on "${sargs[@]}" \
                --export=ALL,JOULE_WINDOW_MS=500,JOULE_SETTLE_MS=60 \
                bash -c "$IN_NODE" "$NS_MNT" "${PROG[$mpi]}" --root "$FX" --cpus "$CPUS" "$@" \
                >"$T_DIR/$name.out" 2>"$T_DIR/$name.err"
        local st=$?
        JOB=$(sed -n 's/^job \([0-9]*\) step 0$/\1/p' "$T_DIR/$name.err" | head -1)
        return $st
}
show_err() { grep -v 'MPI calls' "$T_DIR/$1.err" | head -30 | sed 's/^/#   /'; }
prog_out() { grep '^{' "$T_DIR/$1.out" | head -1; }
# rt_wait JOB: until the job's steps have ended and the runtime's application record is stored (10 s at
# most); prints acct -l --json
rt_wait() {
        acct_wait "$1" >/dev/null
        local out
        for _ in $(seq 100); do
                out=$(J acct -l --json --job "$1" 2>/dev/null)
                jtest "$out" "len(j) >= 1" >/dev/null && break
                sleep 0.1
        done
        printf '%s' "$out"
}
vals() { awk '{print $1, $2, $3, $4}'; } # a snapshot's settings without their times

# --- min_energy on a memory-bound code (MPICH, srun --mpi=pmi2); the node's settings before it are not
# the default range (an administrator's floor of 1.2 GHz), so that only jouled's restore at the step's end
# brings them back
for p in "$CF"/policy*; do echo 1200000 >"$p/scaling_min_freq"; done
B0=$(snapshot)
mpi_job me pmi2 --joule-policy=min_energy --joule-policy-th=0.1 --joule-verbose=2 -- --kind memory --iterations 300 --steady 60
st=$?
t_ok $st "srun -n2 --mpi=pmi2 --joule=on --joule-policy=min_energy --joule-policy-th=0.1 (MPICH): the job completes"
[ $st -eq 0 ] || show_err me
t_check "... the loader stayed out of nsenter (a namespace tool), which the runtime's thread would break" -- \
        sh -c "! grep -E 'joule: nsenter\[[0-9]*\]: not an MPI program|nsenter: reassociate' '$T_DIR/me.err'"
O=$(prog_out me)
t_check "... the program ran to its end: its 300 iterations" -- jtest "${O:-null}" "j['iterations'] == 300"
t_check "... job $JOB: the loader and the runtime in both ranks (MPICH program: managed by libjoule-rt-mpich.so)" -- \
        sh -c "[ \$(grep -c 'joule: emu-work-mpi\[[0-9]*\]: MPICH program .*managed by libjoule-rt-mpich.so' '$T_DIR/me.err') = 2 ]"
L=$(rt_wait "$JOB")
t_check "acct -l: the step's row on the node: policy min_energy, policy_th 0.1, energy, time and power, the mean frequency below the default (memory-bound)" -- \
        jtest "$L" "len(j) == 1 and j[0]['step_id'] == 0 and j[0]['node'] == 'emu1' and j[0]['app_name'] == 'emu-work-mpi' and j[0]['policy'] == 'min_energy' and abs(j[0]['policy_th'] - 0.1) < 1e-9 and j[0]['energy_j'] > 0 and j[0]['time_s'] > 0 and j[0]['avg_power_w'] > 0 and j[0]['def_cpufreq_khz'] == 3000000 and j[0]['avg_cpufreq_khz'] < j[0]['def_cpufreq_khz']"
t_check "... its energy and time are the emulator's for the run (within 5 %)" -- \
        jtest "[$L, ${O:-null}]" "abs(j[0][0]['energy_j'] - j[1]['energy_j']) <= 0.05 * j[1]['energy_j'] and abs(j[0][0]['time_s'] - j[1]['time_s']) <= 0.05 * j[1]['time_s']"
t_diag "$(J acct -l --job "$JOB")"
t_diag "the program: $(jget "${O:-null}" "'%.3f s, %.1f J (the emulator\'s), %.2f J per iteration, steady state at %d kHz' % (j['time_s'], j['energy_j'], j['energy_per_iteration_j'], j['steady_khz'])")"
E=$(J events --json --job "$JOB")
t_check "events: the policy's decisions for the step on the node, the last frequency the one the program ran at in its steady state" -- \
        jtest "[$E, ${O:-null}]" "all(e['job_id'] == $JOB and e['step_id'] == 0 and e['node'] == 'emu1' for e in j[0]) and any(e['kind'] == 'policy' for e in j[0]) and [e['value'] for e in j[0] if e['kind'] == 'frequency'][-1] == j[1]['final_khz'] < 3000000"
R=$(J acct -r --json --job "$JOB")
t_check "acct -r: the loop, 300 iterations (+-1) below the default frequency" -- \
        jtest "$R" "len(j) == 1 and j[0]['step_id'] == 0 and abs(j[0]['iterations'] - 300) <= 1 and j[0]['avg_cpufreq_khz'] < 3000000 and j[0]['time_per_iteration_s'] > 0"
t_check "the node's cpufreq settings after the job are those of before it" -- \
        test "$(snapshot | vals)" = "$(printf '%s\n' "$B0" | vals)"
t_check "... where the policy had set them (jouled's log)" -- \
        grep -q "job $JOB step 0: cpufreq settings of [0-9]* CPUs restored" "$T_DIR/emu1.log"

# --- monitoring: shown, and no frequency ever written
B0=$(snapshot)
mpi_job mon pmi2 --joule-policy=monitoring --joule-verbose=2 -- --kind memory --iterations 150 --steady 40
st=$?
t_ok $st "srun --joule-policy=monitoring (MPICH): the job completes"
[ $st -eq 0 ] || show_err mon
L=$(rt_wait "$JOB")
t_check "acct -l: policy monitoring, at the default frequency" -- \
        jtest "$L" "len(j) == 1 and j[0]['policy'] == 'monitoring' and j[0]['energy_j'] > 0 and abs(j[0]['avg_cpufreq_khz'] - 3000000) <= 3000"
t_diag "acct -l: $(J acct -l --job "$JOB" | tail -1)"
t_check "events: no frequency decision" -- jtest "$(J events --json --job "$JOB")" "not any(e['kind'] in ('frequency', 'bound') for e in j)"
t_check "no cpufreq file was written (contents and times)" -- test "$B0" = "$(snapshot)"

# --- Open MPI, its ranks started by srun through PMIx
if [ -n "${PROG[pmix]:-}" ]; then
        mpi_job ompi pmix --joule-policy=min_energy --joule-policy-th=0.1 --joule-verbose=1 -- --kind memory --iterations 300 --steady 60
        st=$?
        t_ok $st "srun -n2 --mpi=pmix --joule=on --joule-policy=min_energy (Open MPI): the job completes"
        [ $st -eq 0 ] || show_err ompi
        t_check "... both ranks managed by libjoule-rt-ompi.so" -- \
                sh -c "[ \$(grep -c 'joule: emu-work-mpi\[[0-9]*\]: Open MPI program .*managed by libjoule-rt-ompi.so' '$T_DIR/ompi.err') = 2 ]"
        L=$(rt_wait "$JOB")
        t_check "... acct -l: min_energy, 0.1, below the default" -- jtest "$L" \
                "len(j) == 1 and j[0]['policy'] == 'min_energy' and abs(j[0]['policy_th'] - 0.1) < 1e-9 and j[0]['avg_cpufreq_khz'] < j[0]['def_cpufreq_khz'] == 3000000"
        t_diag "acct -l: $(J acct -l --job "$JOB" | tail -1)"
else
        t_skip "Open MPI through srun --mpi=pmix" "mpicc.openmpi or Slurm's mpi/pmix is not installed"
fi
t_done
