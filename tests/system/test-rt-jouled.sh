#!/bin/bash
# test-rt-jouled.sh - the runtime's side at jouled (issue 8) on an emulated node, jouled storing into SQLite
# itself: tests/system/test-rt-client (linking src/runtime/report.c, the runtime's client) sets frequencies
# for a step and sends application, loop and event records; the CPUs' settings from before the step are
# restored at `joule job end`, at kill -9 of a program run by `joule launch`, at kill -9 of `joule launch`
# itself, after a jouled restart mid-step, and at jouled's start when the step's process ended while jouled
# was down; a user (nobody, uid 1001) cannot set frequencies outside a step of theirs nor send records for
# another user's step; malformed records are refused with words while jouled keeps serving; the records
# appear in `joule acct -l`, `joule acct -r` and `joule events` (text, JSON, CSV); `joule launch` runs a
# real program with the loader preloaded, exits with its code, and the step is in `joule acct`; jouled down:
# one line, the program runs. TAP. Environment: JOULE, JOULED, JOULE_EMU, NS_RUN, RT_CLIENT, JOULE_LOADER.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
t_setup
t_need_joule
: "${JOULED:?}" "${RT_CLIENT:?}"
chmod 755 "$T_DIR"

emu_start n intel2s
jouled_start rt1
t_ok $? "jouled starts on the emulated node"
J() { "$JOULE" -c "$JD_CFG" "$@"; }
export JOULE_SOCKET=$JD_SOCK
CF=$FX/sys/devices/system/cpu/cpufreq
as_user() { local uid=$1; shift; setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"; }
state() { for p in "$@"; do printf '%s:%s:%s ' "$(cat $CF/policy$p/scaling_governor)" "$(cat $CF/policy$p/scaling_min_freq)" "$(cat $CF/policy$p/scaling_max_freq)"; done; }
MIN=$(cat $CF/policy2/cpuinfo_min_freq)
MAX=$(cat $CF/policy2/cpuinfo_max_freq)
# the administrator's settings in force before any step: not the defaults, so that a restore shows
echo $((MAX - 200000)) >$CF/policy2/scaling_max_freq
echo $((MIN + 200000)) >$CF/policy3/scaling_min_freq
BEFORE=$(state 2 3)
t_diag "before the steps: $BEFORE (cpuinfo $MIN..$MAX)"
F1=$((MIN + 400000)) F2=$((MIN + 300000)) F3=$((MIN + 500000))
wait_state() { # WANT: poll (5 s) until policies 2 and 3 are in that state
        for _ in $(seq 50); do [ "$(state 2 3)" = "$1" ] && return 0; sleep 0.1; done
        echo "state $(state 2 3), want $1"
        return 1
}
pinned() { echo "$(cat $CF/policy2/scaling_governor):$1:$1 $(cat $CF/policy3/scaling_governor):$1:$1 "; }

# --- rights: a step root declares for nobody on CPUs 2-3 ---
J job begin --job 100 --step 0 --user nobody --cpus 2-3 >/dev/null
t_ok $? "root declares job 100 step 0 for nobody on CPUs 2-3"
export JOULE_JOB_ID=100 JOULE_STEP_ID=0
OUT=$(as_user 65534 "$RT_CLIENT" setfreq 2-3 $F1)
t_check "nobody sets its step's CPUs 2-3 to $F1 kHz through report.c: $OUT" -- wait_state "$(pinned $F1)"
OUT=$(as_user 65534 "$RT_CLIENT" setfreq 1-3 $F2)
t_check "nobody cannot set CPU 1, outside its step: $OUT" -- sh -c "[ '$OUT' = 'err -1 Operation not permitted' ] && [ \$(cat $CF/policy1/scaling_max_freq) != $F2 ]"
OUT=$(as_user 1001 "$RT_CLIENT" setfreq 2 $F2)
t_check "uid 1001 cannot set CPU 2 of nobody's step: $OUT" -- sh -c "[ '$OUT' = 'err -1 Operation not permitted' ] && [ \$(cat $CF/policy2/scaling_max_freq) = $F1 ]"
OUT=$(as_user 65534 env JOULE_JOB_ID=999 "$RT_CLIENT" setfreq 2 $F2)
t_check "a step that is not open: refused ($OUT)" -- test "$OUT" = "err -2 No such file or directory"

# --- records from the step's processes ---
t_check "nobody sends its application's signature" -- as_user 65534 "$RT_CLIENT" app mini tag1
t_check "nobody sends a loop's signature" -- as_user 65534 "$RT_CLIENT" loop 12:3:1 400
t_check "nobody sends a policy decision" -- as_user 65534 "$RT_CLIENT" event frequency $F1 "min_energy: 2 CPUs to $F1 kHz"
OUT=$(as_user 1001 "$RT_CLIENT" event policy 1 "not mine")
t_check "uid 1001 cannot send records for nobody's step: $OUT" -- test "$OUT" = "err -1 Operation not permitted"
OUT=$(as_user 65534 "$RT_CLIENT" badapp)
t_check "malformed records (negative time, a name with a space) are refused with -EINVAL: $OUT" -- test "$OUT" = "-22 -22"
t_check "root's own step 101: a signature without counters" -- sh -c "'$JOULE' -c '$JD_CFG' job begin --job 101 >/dev/null && JOULE_JOB_ID=101 JOULE_STEP_ID=0 '$RT_CLIENT' app nc-app && '$JOULE' -c '$JD_CFG' job end --job 101 >/dev/null"
t_check "jouled keeps serving after the refusals" -- as_user 65534 "$RT_CLIENT" event phase 2 "CPU bound"
J job begin --job 102 --user nobody >/dev/null
OUT=$(as_user 65534 env JOULE_JOB_ID=102 "$RT_CLIENT" bench 2500)
t_check "a user's flood of records is cut at the step's limit (bursts of 2000): $OUT" -- test "$OUT" = "err -16 Device or resource busy"
J job end --job 102 >/dev/null

# --- the end restores what was in force before the step ---
J job end --job 100 --step 0 >/dev/null
t_ok $? "root ends job 100 step 0"
t_check "job end restores governor, min and max of CPUs 2-3 ($BEFORE)" -- wait_state "$BEFORE"
unset JOULE_JOB_ID JOULE_STEP_ID

# --- what was recorded: acct -l, acct -r, events ---
for _ in $(seq 50); do [ -n "$(J events --json --job 100 | grep phase)" ] && break; sleep 0.1; done
OUT=$(J acct -l --json --job 100)
t_check "acct -l --json: the application's signature, null where unknown" -- jtest "$OUT" \
        "len(j) == 1 and j[0] == {'job_id': 100, 'step_id': 0, 'node': 'rt1', 'app_name': 'mini', 'policy': 'min_energy', 'policy_th': 0.05, 'time_s': 12.5, 'energy_j': 2500.25, 'avg_power_w': 200.02, 'avg_cpufreq_khz': 2100000, 'def_cpufreq_khz': 2400000, 'cpi': 0.75, 'gbs': 12.5, 'tag': 'tag1'}"
t_check "acct -l --csv: a header and one line" -- sh -c "'$JOULE' -c '$JD_CFG' acct -l --csv --job 100 | head -1 | grep -qx 'job_id,step_id,node,app_name,policy,policy_th,time_s,energy_j,avg_power_w,avg_cpufreq_khz,def_cpufreq_khz,cpi,gbs,tag' && [ \$('$JOULE' -c '$JD_CFG' acct -l --csv --job 100 | wc -l) = 2 ]"
t_check "acct -l (text): the application's row" -- sh -c "'$JOULE' -c '$JD_CFG' acct -l --job 100 | grep -q 'mini.*min_energy.*tag1'"
OUT=$(J acct -l --json --job 101)
t_check "acct -l --json: null where the runtime did not know (no counters, no frequency, no tag)" -- jtest "$OUT" \
        "len(j) == 1 and j[0]['app_name'] == 'nc-app' and j[0]['cpi'] is None and j[0]['gbs'] is None and j[0]['avg_cpufreq_khz'] is None and j[0]['tag'] is None and j[0]['def_cpufreq_khz'] == 2400000"
OUT=$(J acct -r --json --job 100)
t_check "acct -r --json: the loop, null where unknown" -- jtest "$OUT" \
        "j == [{'job_id': 100, 'step_id': 0, 'node': 'rt1', 'loop': '12:3:1', 'iterations': 400, 'time_per_iteration_s': 0.125, 'avg_power_w': 190.5, 'avg_cpufreq_khz': 2000000, 'cpi': 0.8, 'gbs': 10.25}]"
OUT=$(J events --json --job 100)
t_check "events --json: the two decisions in order, each with time, node, job, step, kind, value, message" -- jtest "$OUT" \
        "[(e['node'], e['job_id'], e['step_id'], e['kind'], e['value'], e['message']) for e in j] == [('rt1', 100, 0, 'frequency', $F1, 'min_energy: 2 CPUs to $F1 kHz'), ('rt1', 100, 0, 'phase', 2, 'CPU bound')] and all(e['time'].endswith('Z') for e in j)"
t_check "events --csv: header" -- sh -c "'$JOULE' -c '$JD_CFG' events --csv | head -1 | grep -qx 'time,node,job_id,step_id,kind,value,message'"
t_check "events (text) lists the decisions" -- sh -c "'$JOULE' -c '$JD_CFG' events | grep -q 'CPU bound'"

# --- joule launch: kill -9 of the program ends the step and restores ---
# the loader of this (sanitizer) build is preloaded into sanitizer-built programs: ASan's link-order check off
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
launch_bg() { # OUTFILE ERRFILE CMD...: joule launch in the background; LPID
        local out=$1 err=$2
        shift 2
        "$JOULE" -c "$JD_CFG" launch -- "$@" >"$out" 2>"$err" &
        LPID=$!
        for _ in $(seq 50); do grep -q set "$out" 2>/dev/null && return 0; sleep 0.1; done
        cat "$out" "$err"
        return 1
}
launch_bg "$T_DIR/l1.out" "$T_DIR/l1.err" "$RT_CLIENT" hold 2-3 $F2 60
t_ok $? "launch runs a program that sets CPUs 2-3 to $F2 kHz"
t_check "... in force" -- wait_state "$(pinned $F2)"
JOB1=$(sed -n 's/^joule launch: job \([0-9]*\) step 0$/\1/p' "$T_DIR/l1.err")
t_check "launch printed the new job id on stderr ($JOB1)" -- test -n "$JOB1"
CHILD=$(pgrep -P $LPID)
kill -9 "$CHILD"
t_check "kill -9 of the program: the settings from before are restored" -- wait_state "$BEFORE"
wait $LPID
t_ok $([ $? = 137 ] && echo 0 || echo 1) "launch exits with the program's status (137)"
OUT=$(J job end --job "$JOB1" 2>&1)
t_check "the step ended with the program: $OUT" -- sh -c "echo '$OUT' | grep -q 'is not running'"

# --- kill -9 of joule launch itself ---
launch_bg "$T_DIR/l2.out" "$T_DIR/l2.err" "$RT_CLIENT" hold 2-3 $F3 60
t_ok $? "launch again, CPUs 2-3 at $F3 kHz"
t_check "... in force" -- wait_state "$(pinned $F3)"
CHILD=$(pgrep -P $LPID)
kill -9 $LPID
t_check "kill -9 of joule launch: restored while the program still runs" -- sh -c "kill -0 $CHILD && exit 0; exit 1"
t_check "... the settings from before" -- wait_state "$BEFORE"
kill -9 "$CHILD" 2>/dev/null

# --- a jouled restart mid-step: the saved settings survive it ---
J job begin --job 300 --cpus 2-3 >/dev/null
OUT=$(JOULE_JOB_ID=300 JOULE_STEP_ID=0 "$RT_CLIENT" setfreq 2-3 $F1)
t_check "job 300: CPUs 2-3 at $F1 kHz ($OUT)" -- wait_state "$(pinned $F1)"
jouled_stop KILL
rm -f "$JD_SOCK" # jouled_start waits for the socket: not the dead one's
jouled_start rt1
t_ok $? "jouled restarts after kill -9"
t_check "the step's frequency is still in force" -- wait_state "$(pinned $F1)"
J job end --job 300 >/dev/null
t_check "job end after the restart restores the settings from before" -- wait_state "$BEFORE"

# --- a launched program outlives a jouled restart: the new jouled watches it again ---
launch_bg "$T_DIR/l4.out" "$T_DIR/l4.err" "$RT_CLIENT" hold 2-3 $F3 60
t_ok $? "launch a program that sets $F3 kHz"
t_check "... in force" -- wait_state "$(pinned $F3)"
CHILD=$(pgrep -P $LPID)
jouled_stop KILL
rm -f "$JD_SOCK"
jouled_start rt1
t_ok $? "jouled killed -9 and started again while the program runs"
kill -9 "$CHILD"
t_check "kill -9 of the program after the restart: the restarted jouled restores the settings" -- wait_state "$BEFORE"
wait $LPID 2>/dev/null

# --- the step's program ends while jouled is down: restored at jouled's start ---
launch_bg "$T_DIR/l3.out" "$T_DIR/l3.err" "$RT_CLIENT" hold 2-3 $F2 60
t_ok $? "launch a program that sets $F2 kHz"
t_check "... in force" -- wait_state "$(pinned $F2)"
CHILD=$(pgrep -P $LPID)
jouled_stop KILL
kill -9 "$CHILD"
wait $LPID 2>/dev/null
t_check "launch said the step could not be ended (jouled down)" -- grep -q "ending job" "$T_DIR/l3.err"
rm -f "$JD_SOCK"
jouled_start rt1
t_check "jouled's start ends the step whose process is gone and restores the settings" -- wait_state "$BEFORE"
t_check "... and says so in its log" -- grep -q "ended while jouled was down" "$T_DIR/rt1.log"

# --- launch with a real program, accounted; bad values; jouled down ---
OUT=$(J launch --verbose 1 --tag t1 --policy monitoring -- sh -c 'cat /dev/null; exit 3' 2>&1)
RC=$?
t_check "launch runs sh with the loader preloaded, exits with its code (rc $RC): $OUT" -- test $RC = 3
JOB2=$(printf '%s\n' "$OUT" | sed -n 's/^joule launch: job \([0-9]*\) step 0$/\1/p')
t_check "the runtime's notice came from the preloaded loader" -- sh -c "printf '%s' '$OUT' | grep -q 'joule'"
for _ in $(seq 50); do J acct --json --job "$JOB2" | grep -q '"complete": *true' && break; sleep 0.1; done
OUT=$(J acct --json --job "$JOB2")
t_check "the launched step is accounted by joule acct" -- jtest "$OUT" "len(j) == 1 and j[0]['step_id'] == 0 and j[0]['user'] == 'root' and j[0]['complete'] is True and j[0]['energy_j'] > 0"
J launch --policy fast --policy-th 7 --verbose 9 --cpufreq x --tag 'a b' -- true 2>"$T_DIR/bad.err"
RC=$?
t_check "launch with bad values: one line each, and the command still runs (rc $RC)" -- sh -c "[ $RC = 0 ] && [ \$(grep -c 'launch: --' '$T_DIR/bad.err') = 5 ]"
OUT=$(JOULE_REPORT=/proc/none/mine J launch --policy monitoring -- sh -c 'cat /dev/null; echo ran' 2>&1)
RC=$?
t_check "an unwritable JOULE_REPORT: one line naming the file, the program runs (rc $RC): $OUT" -- sh -c "[ $RC = 0 ] && [ \$(printf '%s\n' '$OUT' | grep -c 'JOULE_REPORT: cannot write /proc/none/mine.rt1.csv') = 1 ] && printf '%s' '$OUT' | grep -q '^ran$'"
ERR=$(JOULE_SOCKET=$T_DIR/none.sock J launch -- sh -c 'echo ran' 2>&1)
RC=$?
t_check "jouled down: one line, the program runs unmanaged (rc $RC): $ERR" -- sh -c "[ $RC = 0 ] && [ \$(printf '%s\n' '$ERR' | grep -c 'runs unmanaged') = 1 ] && printf '%s' '$ERR' | grep -q '^ran$'"
T0=$(date +%s%N)
OUT=$(JOULE_SOCKET=$T_DIR/none.sock JOULE_JOB_ID=5 "$RT_CLIENT" event policy 1 x)
T1=$(date +%s%N)
t_check "report.c with jouled down: an error at once ($OUT, $(((T1 - T0) / 1000000)) ms)" -- sh -c "[ $(((T1 - T0) / 1000000)) -lt 1500 ] && echo '$OUT' | grep -q '^err'"
J job begin --job 103 >/dev/null
kill -STOP "$JD_PID"
T0=$(date +%s%N)
OUT=$(JOULE_JOB_ID=103 JOULE_STEP_ID=0 "$RT_CLIENT" event policy 1 x)
T1=$(date +%s%N)
kill -CONT "$JD_PID"
MS=$(((T1 - T0) / 1000000))
t_check "report.c with jouled stopped (SIGSTOP): gives up within its 1 s ($OUT, $MS ms)" -- sh -c "[ $MS -ge 900 ] && [ $MS -lt 1500 ] && [ '$OUT' = 'err -110 Connection timed out' ]"
t_check "jouled serves again after SIGCONT" -- env JOULE_JOB_ID=103 JOULE_STEP_ID=0 "$RT_CLIENT" event policy 1 y
J job end --job 103 >/dev/null

# --- records while jouled is away: a breaker after one timeout, a queue until it is back ---
burst_events() { J events --csv --job "$1" | grep -c ',burst,'; }
J job begin --job 104 >/dev/null
kill -STOP "$JD_PID"
JOULE_JOB_ID=104 JOULE_STEP_ID=0 "$RT_CLIENT" burst 20 50 30 >"$T_DIR/burst1.out" &
BP=$!
sleep 2.5
kill -CONT "$JD_PID"
wait $BP
RC=$?
OUT=$(cat "$T_DIR/burst1.out")
MS=$(sed -n 's/^sent 20 in \([0-9]*\) ms.*/\1/p' "$T_DIR/burst1.out")
t_check "jouled stopped (SIGSTOP): 20 records cost one timeout, not 20 ($OUT)" -- sh -c "[ -n '$MS' ] && [ '$MS' -lt 3000 ]"
t_check "... all 20 reach jouled once it runs again (rc $RC)" -- sh -c "[ $RC = 0 ] && echo '$OUT' | grep -q '0 waiting, 0 dropped, 0 refused'"
for _ in $(seq 50); do [ "$(burst_events 104)" = 20 ] && break; sleep 0.1; done
OUT=$(J events --json --job 104)
t_check "... stored once each, in order" -- jtest "$OUT" "[e['value'] for e in j if e['kind'] == 'burst'] == list(range(20))"
J job end --job 104 >/dev/null
J job begin --job 105 >/dev/null
jouled_stop KILL
rm -f "$JD_SOCK"
JOULE_JOB_ID=105 JOULE_STEP_ID=0 "$RT_CLIENT" burst 10 100 30 >"$T_DIR/burst2.out" &
BP=$!
sleep 0.5
jouled_start rt1
t_ok $? "jouled restarts while a program sends records"
wait $BP
RC=$?
OUT=$(cat "$T_DIR/burst2.out")
t_check "the records sent while jouled was down reach the new jouled ($OUT, rc $RC)" -- sh -c "[ $RC = 0 ] && echo '$OUT' | grep -q '0 waiting, 0 dropped, 0 refused'"
for _ in $(seq 50); do [ "$(burst_events 105)" = 10 ] && break; sleep 0.1; done
OUT=$(J events --json --job 105)
t_check "... stored once each, in order" -- jtest "$OUT" "[e['value'] for e in j if e['kind'] == 'burst'] == list(range(10))"
J job end --job 105 >/dev/null

# --- a user's launch: a step of their own, for accounting only ---
OUT=$(as_user 65534 "$JOULE" -c "$JD_CFG" launch -- "$RT_CLIENT" setfreq 2 $F1 2>"$T_DIR/user.err")
RC=$?
t_check "nobody's launch: the runtime's frequency request is refused, the program runs ($OUT, rc $RC)" -- sh -c "[ '$OUT' = 'err -1 Operation not permitted' ] && [ $RC = 1 ] && [ \$(cat $CF/policy2/scaling_max_freq) != $F1 ]"
JOB4=$(sed -n 's/^joule launch: job \([0-9]*\) step 0$/\1/p' "$T_DIR/user.err")
for _ in $(seq 50); do J acct --json --job "$JOB4" | grep -q '"complete": *true' && break; sleep 0.1; done
OUT=$(J acct --json --job "$JOB4")
t_check "nobody's launched step is accounted as nobody's" -- jtest "$OUT" "len(j) == 1 and j[0]['user'] == 'nobody' and j[0]['complete'] is True"

# --- an Open MPI program on 2 ranks under joule launch ---
if command -v mpicc.openmpi >/dev/null && [ -f "${JOULE_LIBDIR:-}/libjoule-rt-ompi.so" ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
        export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
        export OMPI_MCA_mpi_yield_when_idle=1 # a waiting rank yields its CPU on a busy machine
        mpicc.openmpi -O2 -o "$T_DIR/pp" "$(dirname "$0")/../runtime/mpi-pingpong.c"
        # MPI libraries leave their allocations at exit: no leak check for the MPI program
        OUT=$(ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 timeout 60 "$JOULE" -c "$JD_CFG" launch --report "$T_DIR/mine" --verbose 1 --policy monitoring -- mpirun.openmpi -np 2 "$T_DIR/pp" 60 2>&1)
        RC=$?
        t_check "launch runs an Open MPI program on 2 ranks (rc $RC)" -- sh -c "[ $RC = 0 ] && printf '%s' '$OUT' | grep -q '^result:'"
        t_check "both ranks are managed by libjoule-rt-ompi.so" -- sh -c "[ \$(printf '%s\n' '$OUT' | grep -c 'managed by libjoule-rt-ompi.so') = 2 ]"
        JOB3=$(printf '%s\n' "$OUT" | sed -n 's/^joule launch: job \([0-9]*\) step 0$/\1/p')
        for _ in $(seq 50); do J acct --json --job "$JOB3" | grep -q '"complete": *true' && break; sleep 0.1; done
        OUT=$(J acct --json --job "$JOB3")
        t_check "the MPI step is accounted by joule acct" -- jtest "$OUT" "len(j) == 1 and j[0]['complete'] is True and j[0]['energy_j'] > 0"
        # JOULE_REPORT: the user's own CSV copy, per node, as jouled names it (rt1); python's csv is the oracle
        # JOULE_LEARNING (the plugin's --joule-learning): one P-state for the whole run, as EAR's learning phase
        # no scaling_available_frequencies here (intel_pstate): 100 MHz steps down from cpuinfo_max_freq
        WANT=$(($(cat $CF/policy0/cpuinfo_max_freq) - 200000))
        OUT=$(ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 JOULE_LEARNING=2 timeout 60 "$NS_RUN" "$FX" -- "$JOULE" -c "$JD_CFG" launch --verbose 2 --policy min_energy -- mpirun.openmpi -np 2 "$T_DIR/pp" 20 2>&1)
        RC=$?
        JOB5=$(printf '%s\n' "$OUT" | sed -n 's/^joule launch: job \([0-9]*\) step 0$/\1/p')
        for _ in $(seq 50); do J events --csv --job "$JOB5" | grep -q ',learning,' && break; sleep 0.1; done
        OUT=$(J events --json --job "$JOB5")
        t_check "JOULE_LEARNING=2: the whole run at P-state 2 ($WANT kHz), no policy decision (rc $RC)" -- jtest "$OUT" \
                "$WANT > 0 and [e['value'] for e in j if e['kind'] == 'learning'] == [$WANT] and not [e for e in j if e['kind'] in ('policy', 'frequency', 'bound')]"
        t_check "... and the settings from before are back after it" -- wait_state "$BEFORE"
        t_check "JOULE_REPORT: the node master wrote mine.rt1.csv: an application line, loops, each of 24 fields" -- python3 -c "
import csv, sys
rows = list(csv.reader(open('$T_DIR/mine.rt1.csv')))
h = rows[0]
assert h[:3] == ['record', 'time', 'job_id'] and len(h) == 24, h
assert all(len(r) == 24 for r in rows), [len(r) for r in rows]
d = [dict(zip(h, r)) for r in rows[1:]]
apps = [r for r in d if r['record'] == 'application']
loops = [r for r in d if r['record'] == 'loop']
assert len(apps) == 1 and apps[0]['job_id'] == '$JOB3' and apps[0]['policy'] == 'monitoring' and float(apps[0]['time_s']) > 0, apps
assert apps[0]['cpi'] == '' and apps[0]['node'] == 'rt1' and apps[0]['policy_th'] == '', apps  # no threshold under monitoring
assert loops and all(int(r['iterations']) > 0 for r in loops), loops
"
else
        t_skip "launch of an Open MPI program" "mpicc.openmpi or libjoule-rt-ompi.so missing"
fi
jouled_stop TERM
t_done
