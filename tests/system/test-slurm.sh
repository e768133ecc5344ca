#!/bin/bash
# test-slurm.sh - spank_joule.so in a real one-node Slurm (tests/with-slurm.sh: Debian's munged, slurmctld
# and slurmd on loopback) beside a real jouled on an emulated node: the options of srun and sbatch, the
# environment and LD_PRELOAD a task sees, authorised and unauthorised users, every step accounted (srun
# steps, batch, extern; --joule=off too) with the ids, users and times Slurm reports, abnormal ends
# (scancel, kill -9 of the step's processes and of slurmstepd, jouled restarted during a step), jouled down
# or hung at submission. TAP. Environment: JOULE, JOULED, JOULE_EMU, SPANK_JOULE, JOULE_LOADER,
# JOULE_RT_BUILDDIR; SLURM_CONF and JOULE_SLURM_* from with-slurm.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
if [ -n "${JOULE_SLURM_SKIP:-}" ]; then
        echo "1..0 # SKIP $JOULE_SLURM_SKIP"
        exit 0
fi
t_setup
t_need_joule
: "${JOULED:?}" "${SPANK_JOULE:?}" "${SLURM_CONF:?run under tests/with-slurm.sh}"
chmod 755 "$T_DIR"
OUTD=$JOULE_SLURM_DIR/out
cd "$OUTD" || exit 1

# --- test users: one authorised (policies.authorized_users), one not ---
for u in joule-sa joule-su; do
        id "$u" >/dev/null 2>&1 || useradd -M -r -s /bin/bash -d /nonexistent "$u" || true
done

emu_start n intel2s
jouled_start emu1
t_ok $? "jouled starts on the emulated node"
J() { "$JOULE" -c "$JD_CFG" "$@"; }
SPANK_CFG=$T_DIR/spank.yml
cat >"$SPANK_CFG" <<EOF
node:
  socket: $JD_SOCK
policies:
  default: monitoring
  min_energy_th: 0.05
  min_time_th: 0.7
  default_cpufreq_khz: 2400000
  user_policies: [monitoring, min_energy]
  authorized_users: [joule-sa]
EOF
chmod 644 "$SPANK_CFG"
plugstack() { # plugstack [ARGS...]: the plugin with config, loader and runtime directory, and ARGS
        echo "optional $SPANK_JOULE config=$SPANK_CFG loader=$JOULE_LOADER libdir=$JOULE_RT_BUILDDIR $*" \
                >"$JOULE_SLURM_PLUGSTACK"
}
plugstack
# The sanitized loader must not abort the programs it is preloaded into (docs/runtime.md)
export ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0
SAN_RT=$(ldd "$JOULE_LOADER" | awk '/lib(asan|ubsan)[.]so/ {print $3}' | paste -sd: -)

# acct_wait JOB N: waits (10 s at most) until joule acct shows N ended steps of JOB; prints its JSON
acct_wait() {
        local out
        for _ in $(seq 100); do
                out=$(J acct --json --job "$1" --from -1h 2>/dev/null)
                if "$PY" -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if len(j) >= int(sys.argv[2]) and all(r["end"] for r in j) else 1)' "$out" "$2" 2>/dev/null; then
                        break
                fi
                sleep 0.1
        done
        printf '%s' "$out"
}
job_of() { sed -n 's/^SLURM_JOB_ID=//p' "$1" | head -1; }
# wait_job JOB: until Slurm forgets it is running (30 s at most)
wait_job() {
        for _ in $(seq 300); do
                squeue -h -j "$1" 2>/dev/null | grep -q . || return 0
                sleep 0.1
        done
        return 1
}
EXT=4294967292 # SLURM_EXTERN_CONT
BATCH=4294967291 # SLURM_BATCH_SCRIPT

# --- options listed by srun --help and sbatch --help ---
for cmd in srun sbatch; do
        H=$($cmd --help 2>&1)
        n=0
        for o in joule joule-policy joule-policy-th joule-cpufreq joule-verbose joule-tag joule-learning; do
                printf '%s\n' "$H" | grep -q -- "--$o[= ]" && n=$((n + 1))
        done
        t_ok $((n != 7)) "$cmd --help lists the 7 --joule options ($n)"
done

# --- srun with the plugin off by default: every step accounted, nothing in the environment ---
srun -N1 -n1 printenv >"$T_DIR/off.out" 2>"$T_DIR/off.err"
t_ok $? "srun (default off) runs"
JOB=$(job_of "$T_DIR/off.out")
t_check "... no LD_PRELOAD, no JOULE_POLICY in the task" -- sh -c "! grep -q -E '^(LD_PRELOAD=.*joule|JOULE_POLICY=)' '$T_DIR/off.out'"
OUT=$(acct_wait "$JOB" 2)
t_check "... steps $JOB.0 and $JOB.extern accounted, user root, ended, with energy" -- jtest "$OUT" \
        "sorted(r['jobid'] for r in j) == ['$JOB.0', '$JOB.extern'] and all(r['user'] == 'root' and r['end'] and r['energy_j'] > 0 and r['nodes'] == ['emu1'] for r in j)"
OUT=$(J acct --job "$JOB" --from -1h)
t_check "... joule acct shows them as sacct does" -- sh -c "printf '%s\n' '$OUT' | grep -q '^$JOB.0 ' && printf '%s\n' '$OUT' | grep -q '^$JOB.extern '"

# --- srun --joule=on with every option: the task's environment and the loader in it ---
srun -N1 -n1 --joule=on --joule-policy=min_energy --joule-policy-th=0.1 --joule-verbose=1 --joule-tag=t1 \
        printenv >"$T_DIR/on.out" 2>"$T_DIR/on.err"
t_ok $? "srun --joule=on --joule-policy=min_energy --joule-policy-th=0.1 --joule-verbose=1 --joule-tag=t1 runs"
JOB=$(job_of "$T_DIR/on.out")
t_check "... the task sees JOULE_POLICY=min_energy JOULE_POLICY_TH=0.1 JOULE_VERBOSE=1 JOULE_TAG=t1 JOULE_CPUFREQ=2400000 JOULE_SOCKET JOULE_COEFFS_DIR" -- \
        sh -c "grep -qx JOULE_POLICY=min_energy '$T_DIR/on.out' && grep -qx 'JOULE_COEFFS_DIR=/var/lib/joule/coeffs' '$T_DIR/on.out' && grep -qx JOULE_POLICY_TH=0.1 '$T_DIR/on.out' && grep -qx JOULE_VERBOSE=1 '$T_DIR/on.out' && grep -qx JOULE_TAG=t1 '$T_DIR/on.out' && grep -qx JOULE_CPUFREQ=2400000 '$T_DIR/on.out' && grep -qx 'JOULE_SOCKET=$JD_SOCK' '$T_DIR/on.out'"
t_check "... LD_PRELOAD starts with the loader" -- grep -q "^LD_PRELOAD=$JOULE_LOADER" "$T_DIR/on.out"
t_check "... and the loader ran in the task (its notice at JOULE_VERBOSE=1)" -- \
        grep -q "joule: printenv\[[0-9]*\]: not an MPI program: managed by libjoule-rt.so" "$T_DIR/on.err"
OUT=$(acct_wait "$JOB" 2)
t_check "... accounted" -- jtest "$OUT" "sorted(r['jobid'] for r in j) == ['$JOB.0', '$JOB.extern']"
srun -N1 -n1 --joule=on --export=ALL,LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6 printenv LD_PRELOAD >"$T_DIR/pre.out" 2>/dev/null
t_check "... the loader is prepended to the user's LD_PRELOAD" -- grep -qx "$JOULE_LOADER:/lib/x86_64-linux-gnu/libc.so.6" "$T_DIR/pre.out"
srun -N1 -n1 --joule=off printenv >"$T_DIR/off2.out" 2>&1
JOB=$(job_of "$T_DIR/off2.out")
t_check "srun --joule=off: no JOULE_POLICY" -- sh -c "! grep -q '^JOULE_POLICY=' '$T_DIR/off2.out'"
OUT=$(acct_wait "$JOB" 2)
t_check "... still accounted" -- jtest "$OUT" "sorted(r['jobid'] for r in j) == ['$JOB.0', '$JOB.extern']"

srun -N1 -n1 --joule printenv >"$T_DIR/alone.out" 2>"$T_DIR/alone.err"
t_check "srun --joule alone: on (monitoring), no complaint" -- \
        sh -c "grep -qx JOULE_POLICY=monitoring '$T_DIR/alone.out' && ! grep -q 'ignored' '$T_DIR/alone.err'"
printf '#!/bin/bash\n#SBATCH --joule=on\n#SBATCH --joule-policy=min_energy\nprintenv JOULE_POLICY\n' >"$OUTD/dir.sh"
JOB=$(sbatch --parsable -o "$OUTD/dir.out" "$OUTD/dir.sh")
wait_job "$JOB"
t_check "#SBATCH --joule=on / --joule-policy=min_energy directives" -- grep -qx min_energy "$OUTD/dir.out"
OUT=$(salloc -N1 --joule=on --joule-policy=min_energy srun -n1 printenv JOULE_POLICY 2>/dev/null)
t_check "salloc --joule=on --joule-policy=min_energy, srun inside" -- test "$OUT" = min_energy

# --- plugstack default=on ---
plugstack default=on
srun -N1 -n1 printenv >"$T_DIR/don.out" 2>&1
t_check "default=on: a plain srun gets the policy (monitoring, the default)" -- grep -qx JOULE_POLICY=monitoring "$T_DIR/don.out"
srun -N1 -n1 --joule=off printenv >"$T_DIR/doff.out" 2>&1
t_check "default=on: --joule=off still turns it off" -- sh -c "! grep -q '^JOULE_POLICY=' '$T_DIR/doff.out'"
plugstack

# --- bad option values: refused by srun and sbatch themselves, naming the option ---
for cmd in "srun -N1 true" "sbatch --wrap true"; do
        for o in --joule=maybe --joule-policy=fastest --joule-policy-th=2 --joule-cpufreq=fast --joule-verbose=9 \
                "--joule-tag=a b" --joule-learning=x; do
                out=$(${cmd%% *} "$o" ${cmd#* } 2>&1)
                rc=$?
                name=${o%%=*}
                if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q -- "$name"; then
                        t_ok 0 "${cmd%% *} $o: refused before the job starts, naming the option"
                else
                        t_ok 1 "${cmd%% *} $o: refused before the job starts, naming the option"
                        t_diag "rc $rc: $out"
                fi
        done
done

# --- sbatch with options: the batch step's and its srun step's environment; batch, 0, extern accounted ---
JOB=$(sbatch --parsable -n2 --joule=on --joule-policy=min_energy --joule-verbose=0 -o "$OUTD/b.out" -e "$OUTD/b.err" \
        --wrap "printenv; srun -n1 sh -c 'echo STEP_POLICY=\$JOULE_POLICY'; srun -n2 sh -c 'echo TASK=\$SLURM_PROCID'")
t_ok $? "sbatch --joule=on --joule-policy=min_energy: job $JOB"
wait_job "$JOB"
t_check "... the batch script sees JOULE_POLICY=min_energy and the loader in LD_PRELOAD" -- \
        sh -c "grep -qx JOULE_POLICY=min_energy '$OUTD/b.out' && grep -q '^LD_PRELOAD=$JOULE_LOADER' '$OUTD/b.out'"
t_check "... its srun step too" -- grep -qx STEP_POLICY=min_energy "$OUTD/b.out"
t_check "... a step of two tasks ran both" -- sh -c "grep -qx TASK=0 '$OUTD/b.out' && grep -qx TASK=1 '$OUTD/b.out'"
OUT=$(acct_wait "$JOB" 4)
t_check "... $JOB.batch, $JOB.0, $JOB.1 (two tasks, one begin and end) and $JOB.extern accounted" -- jtest "$OUT" \
        "sorted(r['jobid'] for r in j) == ['$JOB.0', '$JOB.1', '$JOB.batch', '$JOB.extern'] and sorted(r['step_id'] for r in j) == [0, 1, $BATCH, $EXT]"
# the accounting rows against Slurm's job completion log: user, start and end of the job (extern step)
t_check "... the extern step's user, start and end match Slurm's job completion log within a second" -- \
        "$PY" - "$OUT" "$JOULE_SLURM_JOBCOMP" "$JOB" <<'EOF'
import json, sys, time, calendar, re
rows = json.loads(sys.argv[1]); job = sys.argv[3]
line = [l for l in open(sys.argv[2]) if re.search(r'\bJobId=%s\b' % job, l)][-1]
f = dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
def iso(s): # joule: UTC ISO 8601 with ms
    return calendar.timegm(time.strptime(s[:19], '%Y-%m-%dT%H:%M:%S')) + float('0' + s[19:-1])
def local(s): # Slurm: local time, whole seconds
    return time.mktime(time.strptime(s, '%Y-%m-%dT%H:%M:%S'))
def near(ours, slurm): # Slurm's times are whole seconds (truncated): within a second of [T, T + 1)
    return slurm - 1.0 <= ours <= slurm + 2.0
ext = [r for r in rows if r['jobid'].endswith('.extern')][0]
ok = (f['UserId'].startswith('root(') and ext['user'] == 'root'
      and near(iso(ext['start']), local(f['StartTime'])) and near(iso(ext['end']), local(f['EndTime'])))
print(line, ext)
sys.exit(0 if ok else 1)
EOF

# a time limit (Slurm's smallest, a minute; checked at the end of the abnormal ends)
TL_JOB=$(sbatch --parsable -t 1 -o /dev/null --wrap "srun -n1 sleep 600")
t_ok $? "sbatch -t 1 (a minute) of a 10-minute step: job $TL_JOB"

# --- users: authorised and not ---
run_as() { runuser -u "$1" -- env ASAN_OPTIONS="$ASAN_OPTIONS" SLURM_CONF="$SLURM_CONF" "${@:2}"; }
run_as joule-su srun -N1 -n1 --joule=on --joule-policy=min_energy --joule-policy-th=0.2 printenv >"$T_DIR/u1.out" 2>"$T_DIR/u1.err"
t_ok $? "joule-su: srun --joule-policy=min_energy --joule-policy-th=0.2 runs"
t_check "... allowed: a threshold above the default" -- sh -c "grep -qx JOULE_POLICY_TH=0.2 '$T_DIR/u1.out' && ! grep -q 'may not' '$T_DIR/u1.err'"
JOB=$(job_of "$T_DIR/u1.out")
OUT=$(acct_wait "$JOB" 2)
t_check "... accounted as joule-su" -- jtest "$OUT" "len(j) == 2 and all(r['user'] == 'joule-su' for r in j)"
run_as joule-su srun -N1 -n1 --joule=on --joule-cpufreq=1800000 printenv >"$T_DIR/u2.out" 2>"$T_DIR/u2.err"
t_ok $? "joule-su: srun --joule-cpufreq=1800000: the job runs"
t_check "... one line on stderr says it is refused" -- sh -c "[ \$(grep -c 'joule: user joule-su may not make this request: --joule-cpufreq' '$T_DIR/u2.err') = 1 ]"
t_check "... and the job runs with the defaults (2400000 kHz)" -- grep -qx JOULE_CPUFREQ=2400000 "$T_DIR/u2.out"
run_as joule-su srun -N1 -n1 --joule=on --joule-policy=min_time printenv >"$T_DIR/u3.out" 2>"$T_DIR/u3.err"
t_check "joule-su: --joule-policy=min_time (not in user_policies) refused; monitoring" -- \
        sh -c "grep -q 'min_time is not among policies.user_policies' '$T_DIR/u3.err' && grep -qx JOULE_POLICY=monitoring '$T_DIR/u3.out'"
run_as joule-su srun -N1 -n1 --joule=on --joule-learning=1 printenv >"$T_DIR/u4.out" 2>"$T_DIR/u4.err"
t_check "joule-su: --joule-learning refused, no JOULE_LEARNING" -- \
        sh -c "grep -q 'joule-learning is for policies.authorized_users' '$T_DIR/u4.err' && ! grep -q JOULE_LEARNING '$T_DIR/u4.out'"
run_as joule-sa srun -N1 -n1 --joule=on --joule-policy=min_time --joule-cpufreq=1800000 --joule-learning=1 --joule-policy-th=0.3 \
        printenv >"$T_DIR/a1.out" 2>"$T_DIR/a1.err"
t_check "joule-sa (authorised): min_time, 1800000 kHz, learning 1, threshold 0.3 below the default" -- \
        sh -c "grep -qx JOULE_POLICY=min_time '$T_DIR/a1.out' && grep -qx JOULE_CPUFREQ=1800000 '$T_DIR/a1.out' && grep -qx JOULE_LEARNING=1 '$T_DIR/a1.out' && grep -qx JOULE_POLICY_TH=0.3 '$T_DIR/a1.out' && ! grep -q 'may not' '$T_DIR/a1.err'"
JOB=$(run_as joule-su sbatch --parsable -o "$OUTD/u5.out" -e "$OUTD/u5.err" --joule=on --joule-cpufreq=1700000 --wrap printenv)
wait_job "$JOB"
t_check "joule-su: sbatch --joule-cpufreq: refused on the job's stderr, the job ran with the defaults" -- \
        sh -c "grep -q 'may not make this request' '$OUTD/u5.err' && grep -qx JOULE_CPUFREQ=2400000 '$OUTD/u5.out'"

# --- abnormal ends ---
# scancel of a running step
JOB=$(sbatch --parsable -o /dev/null --wrap "srun -n1 sleep 300")
for _ in $(seq 100); do squeue -h -s -j "$JOB" -o %i | grep -q "^$JOB\.0$" && break; sleep 0.1; done
sleep 0.5
scancel "$JOB"
wait_job "$JOB"
OUT=$(acct_wait "$JOB" 3)
t_check "scancel: $JOB.batch, .0 and .extern closed" -- jtest "$OUT" "len(j) == 3 and all(r['end'] for r in j)"

# kill -9 of the step's processes (slurmstepd ends the step)
srun -N1 -n1 sleep 301 >/dev/null 2>&1 &
SRUN=$!
T_PIDS+=($SRUN)
for _ in $(seq 300); do P=$(pgrep -f "^(/usr/bin/)?sleep 301$" | head -1); [ -n "$P" ] && break; sleep 0.1; done
JOB=$(tr '\0' '\n' <"/proc/$P/environ" 2>/dev/null | sed -n 's/^SLURM_JOB_ID=//p')
kill -9 "$P"
wait "$SRUN"
OUT=$(acct_wait "$JOB" 2)
t_check "kill -9 of the step's process: $JOB.0 and .extern closed" -- jtest "$OUT" "len(j) == 2 and all(r['end'] for r in j)"

# kill -9 of slurmstepd (no exit callback): the job's epilog closes what is left open
srun -N1 -n1 sleep 302 >/dev/null 2>&1 &
SRUN=$!
T_PIDS+=($SRUN)
for _ in $(seq 300); do P=$(pgrep -f "^(/usr/bin/)?sleep 302$" | head -1); [ -n "$P" ] && break; sleep 0.1; done
JOB=$(tr '\0' '\n' <"/proc/$P/environ" 2>/dev/null | sed -n 's/^SLURM_JOB_ID=//p')
STEPD=$(pgrep -f "^slurmstepd: \[$JOB\.0\]$")
kill -9 $STEPD
kill -9 "$P" 2>/dev/null
scancel "$JOB"
wait "$SRUN"
wait_job "$JOB"
OUT=$(acct_wait "$JOB" 2)
t_check "kill -9 of slurmstepd: $JOB.0 closed all the same (job epilog)" -- jtest "$OUT" "len(j) == 2 and all(r['end'] for r in j)"

# jouled restarted during a step
srun -N1 -n1 sh -c 'echo SLURM_JOB_ID=$SLURM_JOB_ID; sleep 4' >"$T_DIR/rs.out" 2>&1 &
SRUN=$!
sleep 1.5
jouled_stop KILL
jouled_start emu1
t_ok $? "jouled restarted (kill -9) during a step"
wait "$SRUN"
t_ok $? "... the step ran to its end"
JOB=$(job_of "$T_DIR/rs.out")
OUT=$(acct_wait "$JOB" 2)
t_check "... $JOB.0 and .extern closed, marked incomplete" -- jtest "$OUT" \
        "len(j) == 2 and all(r['end'] and r['complete'] is False for r in j)"

# the time limit: Slurm ends the job (its limit is checked every half minute or so)
wait_job "$TL_JOB" || { for _ in $(seq 120); do squeue -h -j "$TL_JOB" | grep -q . || break; sleep 1; done; }
OUT=$(acct_wait "$TL_JOB" 3)
t_check "time limit: $TL_JOB.batch, .0 and .extern closed" -- jtest "$OUT" \
        "sorted(r['jobid'] for r in j) == ['$TL_JOB.0', '$TL_JOB.batch', '$TL_JOB.extern'] and all(r['end'] for r in j)"
t_check "... by the time limit (Slurm's job completion log says TIMEOUT)" -- grep -q "JobId=$TL_JOB .*JobState=TIMEOUT" "$JOULE_SLURM_JOBCOMP"

# --- a shared node: two jobs at once, each step its job's share of the node's energy by CPU time ---
REF=$(J job begin --job 999999 --step 0 --json) # by hand: no share, the node's energy (the reference)
A=$(sbatch --parsable -n1 -o /dev/null --wrap "timeout 3 sh -c 'while :; do :; done'; true")
B=$(sbatch --parsable -n1 -o /dev/null --wrap "sleep 3")
wait_job "$A"
wait_job "$B"
REF=$(J job end --job 999999 --step 0 --json)
OA=$(acct_wait "$A" 2)
OB=$(acct_wait "$B" 2)
t_check "shared node: the busy job's and the idle job's shares add up to the node's energy over their time (2%), the busy one has most" -- \
        "$PY" - "$OA" "$OB" "$REF" <<'EOF'
import json, sys, time, calendar
a, b, ref = (json.loads(x) for x in sys.argv[1:4])
def iso(s):
    return calendar.timegm(time.strptime(s[:19], '%Y-%m-%dT%H:%M:%S')) + float('0' + s[19:-1])
ea = [r for r in a if r['jobid'].endswith('.extern')][0]
eb = [r for r in b if r['jobid'].endswith('.extern')][0]
p = ref['avg_power_w']
t0 = min(iso(ea['start']), iso(eb['start'])); t1 = max(iso(ea['end']), iso(eb['end']))
gap = max(0.0, max(iso(ea['start']), iso(eb['start'])) - min(iso(ea['end']), iso(eb['end'])))
node = p * (t1 - t0 - gap)
s = ea['energy_j'] + eb['energy_j']
print('A %.3f J, B %.3f J, sum %.3f J, node %.3f J (%.2f W over %.3f s)' % (ea['energy_j'], eb['energy_j'], s, node, p, t1 - t0 - gap))
sys.exit(0 if abs(s - node) <= 0.02 * node and ea['energy_j'] > 5 * eb['energy_j'] else 1)
EOF
t_diag "$(J acct --job "$A" --from -1h; J acct --job "$B" --from -1h)"

# --- jouled down, or hung, at submission: the job runs, one line, at most 2 s added ---
t0=$(date +%s.%N)
srun -N1 -n1 true >/dev/null 2>&1
t_up=$("$PY" -c "import time; print(time.time() - $t0)")
jouled_stop
t0=$(date +%s.%N)
srun -N1 -n1 --joule=on true >"$T_DIR/down.out" 2>"$T_DIR/down.err"
rc=$?
t_down=$("$PY" -c "import time; print(time.time() - $t0)")
t_ok $rc "jouled down: the job runs (srun exits 0)"
t_check "... one line on its stderr says the step is not accounted" -- \
        sh -c "[ \$(grep -c 'not accounted on this node: jouled is not running' '$T_DIR/down.err') = 1 ]"
t_check "... at most 2 s added ($t_down s against $t_up s)" -- "$PY" -c "import sys; sys.exit(0 if $t_down - $t_up <= 2 else 1)"
# a jouled that accepts and never answers
rm -f "$JD_SOCK"
"$PY" -c '
import socket, sys, time, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(64)
conns = []
end = time.time() + 60
while time.time() < end:
    s.settimeout(1)
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
' "$JD_SOCK" &
T_PIDS+=($!)
for _ in $(seq 50); do [ -S "$JD_SOCK" ] && break; sleep 0.1; done
t0=$(date +%s.%N)
srun -N1 -n1 --joule=on true >"$T_DIR/hung.out" 2>"$T_DIR/hung.err"
rc=$?
t_hung=$("$PY" -c "import time; print(time.time() - $t0)")
t_ok $rc "jouled hung: the job runs"
t_check "... at most 2 s added ($t_hung s against $t_up s)" -- "$PY" -c "import sys; sys.exit(0 if $t_hung - $t_up <= 2 else 1)"
t_check "... one line says so" -- grep -q "not accounted on this node: jouled at .*: Connection timed out" "$T_DIR/hung.err"
t_done
