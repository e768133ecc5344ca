#!/bin/bash
# test-jouled-limits.sh - jouled on a shared node (issue 7): who may begin job steps and set frequencies,
# limits on the steps users open for themselves, slow and many clients on the local socket, the control port
# and /metrics (a deadline from a request's first byte, limits per uid and per address), one jouled per state
# directory and spool, and a stop within a second when the dbd is gone or the SQLite store is locked.
# Unprivileged peers are nobody and uid 1001 (setpriv). Run under tests/with-munge.sh.
# Environment: JOULED, JOULED_CLIENT, JOULE_EMU, NS_RUN, JOULE_MUNGE_SOCKET.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
t_setup
: "${JOULED:?JOULED is not set}"
: "${JOULED_CLIENT:?JOULED_CLIENT is not set}"
if [ -z "${JOULE_MUNGE_SOCKET:-}" ]; then
        echo "1..0 # SKIP no munged (run under tests/with-munge.sh)"
        exit 0
fi
chmod 0755 "$T_DIR"
PUB=$T_DIR/pub # where the unprivileged helpers may write
mkdir -m 0777 "$PUB"
SLOW=$(dirname "${BASH_SOURCE[0]}")/jouled-slow.py
S=$T_DIR/run/jouled.sock
MP=$(free_port)
CP=$(free_port)
LOG=$T_DIR/jouled.log
DB=$T_DIR/joule.db
C=$JOULED_CLIENT
AS_NOBODY=(setpriv --reuid nobody --regid nogroup --clear-groups)
AS_1001=(setpriv --reuid 1001 --regid 1001 --clear-groups)

write_config() { # write_config FILE STATE_DIR SOCKET USER_STEPS_MAX [EXTRA YAML LINES...]
        local f=$1 st=$2 sock=$3 max=$4
        shift 4
        {
                printf 'database:\n  url: %s\nnode:\n  name: emu-n1\n  period: 1\n  sample_ms: 100\n' "$DB"
                printf '  socket: %s\n  state_dir: %s\n  munge_socket: %s\n  user_steps_max: %s\n' \
                        "$sock" "$st" "$JOULE_MUNGE_SOCKET" "$max"
                printf '%s\n' "$@"
        } >"$f"
}

JPID=
start_jouled() { # start_jouled CONFIG SOCKET LOG
        "$NS_RUN" "$FX" -- "$JOULED" -c "$1" >>"$3" 2>&1 </dev/null &
        JPID=$!
        T_PIDS+=("$JPID")
        for _ in $(seq 50); do
                "$C" --socket "$2" energy >/dev/null 2>&1 && return 0
                kill -0 "$JPID" 2>/dev/null || return 1
                sleep 0.1
        done
        return 1
}

# stop_time PID: SIGTERM, then the seconds until it exited (99 when it did not within 10 s)
stop_time() {
        local t0 t1
        t0=$(date +%s.%N)
        kill -TERM "$1"
        for _ in $(seq 200); do
                kill -0 "$1" 2>/dev/null || break
                sleep 0.05
        done
        kill -0 "$1" 2>/dev/null && { echo 99; return; }
        t1=$(date +%s.%N)
        "$PY" -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))' "$t0" "$t1"
}

q() { "$C" --socket "$S" "$@"; }
qn() { "${AS_NOBODY[@]}" "$C" --socket "$S" "$@"; }
q1() { "${AS_1001[@]}" "$C" --socket "$S" "$@"; }
cq() { "$C" --tcp "127.0.0.1:$CP" "$@"; }
cqn() { "${AS_NOBODY[@]}" "$C" --tcp "127.0.0.1:$CP" "$@"; }
cq1() { "${AS_1001[@]}" "$C" --tcp "127.0.0.1:$CP" "$@"; }
maxfreq() { cat "$FX/sys/devices/system/cpu/cpu$1/cpufreq/scaling_max_freq"; }

emu_start n1 intel2s || { echo "1..0 # SKIP joule-emu did not start"; exit 0; }
ctl freeze >/dev/null
CFG=$T_DIR/joule.yml
write_config "$CFG" "$T_DIR/state" "$S" 2 "  control_listen: 127.0.0.1:$CP" "  metrics_listen: 127.0.0.1:$MP"
start_jouled "$CFG" "$S" "$LOG"
t_ok $? "jouled starts"

# --- the control port: job steps only for root and node.admins
t_check "control port: nobody (not in node.admins) may not begin a job step" -- jtest "$(cqn begin 10 0)" 'j.get("err") == -1 or "closed" in j'
t_check "control port: uid 1001 may not either" -- jtest "$(cq1 begin 11 0)" 'j.get("err") == -1 or "closed" in j'
t_check "control port: root may" -- jtest "$(cq begin 12 0 nobody)" 'j["err"] == 0'
t_check "control port: nobody may not end it" -- jtest "$(cqn end 12 0)" 'j.get("err") == -1 or "closed" in j'
t_check "control port: root ends it" -- jtest "$(cq end 12 0)" 'j["err"] == 0'
t_check "no step of those users is open" -- jtest "$(q query)" 'json.loads(j["text"])["jobs"] == []'

# --- steps users open for themselves: node.user_steps_max each, accounting only
t_check "nobody opens a step of their own" -- jtest "$(qn begin 20 0)" 'j["err"] == 0'
t_check "and a second (node.user_steps_max 2)" -- jtest "$(qn begin 20 1)" 'j["err"] == 0'
t_check "a third is refused (EUSERS, with words)" -- \
        jtest "$(qn begin 20 2)" 'j["err"] == -87 and "user_steps_max" in j["message"]'
t_check "uid 1001 has steps of their own all the same" -- jtest "$(q1 begin 21 0)" 'j["err"] == 0'
t_check "nobody's own step (every CPU by default) gives no right to set CPU 0's frequency" -- \
        jtest "$(qn cpufreq 0 1200000)" 'j["err"] == -1'
test "$(maxfreq 0)" != 1200000
t_ok $? "cpu0's scaling_max_freq is untouched"
t_check "root declares job 30 for nobody on CPUs 2-3" -- jtest "$(q begin 30 0 nobody 2-3)" 'j["err"] == 0'
t_check "nobody sets CPUs 2-3 (their root-declared step's)" -- jtest "$(qn cpufreq 2-3 1200000)" 'j["err"] == 0'
test "$(maxfreq 2)" = 1200000
t_ok $? "the write reached cpu2"
t_check "nobody is still refused CPU 0" -- jtest "$(qn cpufreq 0-3 1200000)" 'j["err"] == -1'
t_check "uid 1001 is refused CPUs 2-3 (nobody's)" -- jtest "$(q1 cpufreq 2-3 1500000)" 'j["err"] == -1'
t_check "root declares job 31 for nobody without CPUs" -- jtest "$(q begin 31 0 nobody)" 'j["err"] == 0'
t_check "a step declared without CPUs gives nobody no right over CPU 0" -- jtest "$(qn cpufreq 0 1200000)" 'j["err"] == -1'
t_check "root's steps do not count against node.user_steps_max" -- jtest "$(q begin 32 0)" 'j["err"] == 0'
t_check "root restores every CPU" -- jtest "$(q cpufreq 0-1023 0)" 'j["err"] == 0'
t_check "nobody may not end job 30, which root declared for them" -- jtest "$(qn end 30 0)" 'j["err"] == -1'
t_check "uid 1001 may not end nobody's own step" -- jtest "$(q1 end 20 0)" 'j["err"] == -1'
t_check "nobody ends their own step" -- jtest "$(qn end 20 0)" 'j["err"] == 0'
for k in 20.1 21.0 30.0 31.0 32.0; do q end "${k%.*}" "${k#*.}" >/dev/null; done
t_check "every step is closed again" -- jtest "$(q query)" 'json.loads(j["text"])["jobs"] == []'

# --- users cannot fill the step table: root's begin still succeeds
write_config "$CFG" "$T_DIR/state" "$S" 64 "  control_listen: 127.0.0.1:$CP" "  metrics_listen: 127.0.0.1:$MP"
kill -HUP "$JPID"
sleep 0.5
n=0
for i in $(seq 0 69); do
        jtest "$(qn begin 40 "$i")" 'j["err"] == 0' >/dev/null && n=$((n + 1))
done
t_check "after a reload to node.user_steps_max 64, nobody opened 64 steps of 70 ($n)" -- test "$n" = 64
t_check "root's job begin still succeeds" -- jtest "$(q begin 41 0)" 'j["err"] == 0'
t_check "and uid 1001's is refused: the users' share is full (ENOSPC)" -- jtest "$(q1 begin 42 0)" 'j["err"] == -28'
for i in $(seq 0 63); do q end 40 "$i" >/dev/null; done
q end 41 0 >/dev/null

# --- slow clients: a request must complete within 5 s of its first byte
"${AS_NOBODY[@]}" "$PY" "$SLOW" trickle unix "$S" >"$T_DIR/slow-sock" &
SP1=$!
"$PY" "$SLOW" trickle tcp "127.0.0.1:$CP" >"$T_DIR/slow-cp" &
SP2=$!
wait "$SP1" "$SP2"
t_check "local socket: one byte a second (as nobody) is dropped 5-7 s after the first ($(cat "$T_DIR/slow-sock"))" -- \
        jtest "$(cat "$T_DIR/slow-sock")" 'j["closed_after_s"] is not None and 4.5 <= j["closed_after_s"] <= 7.5'
t_check "control port: the same ($(cat "$T_DIR/slow-cp"))" -- \
        jtest "$(cat "$T_DIR/slow-cp")" 'j["closed_after_s"] is not None and 4.5 <= j["closed_after_s"] <= 7.5'
grep -q "not complete 5 s after its first byte" "$LOG"
t_ok $? "the log says why the slow clients were dropped"

# --- many connections: limits per uid (local socket) and per address (control port)
"${AS_NOBODY[@]}" "$PY" "$SLOW" hold unix "$S" 1100 --hold 2 --ready "$PUB/ready-sock" >"$T_DIR/hold-sock" 2>"$T_DIR/hold-sock.err" &
HP=$!
for _ in $(seq 100); do [ -e "$PUB/ready-sock" ] && break; sleep 0.1; done
t_check "while nobody holds 1024 connections, uid 1001 is served" -- jtest "$(q1 energy)" 'j["err"] == 0'
t_check "and root too" -- jtest "$(q energy)" 'j["err"] == 0'
wait "$HP"
t_check "nobody's connections beyond 1024 were refused ($(cat "$T_DIR/hold-sock"))" -- \
        jtest "$(cat "$T_DIR/hold-sock")" 'j["closed"] == 1100 - 1024'
[ -s "$T_DIR/hold-sock.err" ] && t_diag "$(tail -5 "$T_DIR/hold-sock.err")"
grep -q "too many connections of this user" "$LOG"
t_ok $? "the log names the limit"
n=$(grep -c "connection closed in the middle of a frame" "$LOG")
t_check "the log is not flooded: $n lines for 1100 connections dropped mid-frame (at most 50 per 10 s)" -- \
        test "$n" -le 200

# --- the rights survive a crash: the open steps file keeps who declared each step and its CPUs
q begin 70 0 nobody 2-3 >/dev/null
qn begin 71 0 >/dev/null
kill -9 "$JPID"
wait "$JPID" 2>/dev/null
start_jouled "$CFG" "$S" "$LOG"
t_ok $? "jouled restarts after kill -9 with two steps open"
t_check "nobody still sets CPUs 2-3 of the step root declared" -- jtest "$(qn cpufreq 2-3 1300000)" 'j["err"] == 0'
t_check "their own step still gives no right over CPU 0" -- jtest "$(qn cpufreq 0 1300000)" 'j["err"] == -1'
t_check "nobody may not end root's step after the restart" -- jtest "$(qn end 70 0)" 'j["err"] == -1'
t_check "nobody ends their own after the restart" -- jtest "$(qn end 71 0)" 'j["err"] == 0'
q end 70 0 >/dev/null
q cpufreq 0-1023 0 >/dev/null

# --- a user beginning and ending their own steps in a loop cannot fill the log; root's steps are all logged
# (this jouled has logged one line of a user's step so far: job 71's end)
L0=$(wc -l <"$LOG")
since() { tail -n +$((L0 + 1)) "$LOG"; }
OUT=$(qn cycle 5000 500)
t_check "nobody begins and ends 500 steps of their own ($OUT)" -- jtest "$OUT" 'j["ok"] == 500 and j["failed"] == 0'
OUT=$(q cycle 5001 60)
t_check "root begins and ends 60 steps ($OUT)" -- jtest "$OUT" 'j["ok"] == 60 and j["failed"] == 0'
for _ in $(seq 50); do # the root's last lines may reach the file a moment after the replies
        [ "$(since | grep -c "job 5001 step")" -ge 120 ] && break
        sleep 0.1
done
logged=$(since | grep -c "job 5000 step")
t_check "the log is not flooded: $logged of nobody's 1000 step lines logged (at most 50 per 10 s)" -- \
        test "$logged" -ge 40 -a "$logged" -le 150
n=$(since | grep -c "job 5001 step")
t_check "every line of root's steps is logged ($n of 120)" -- test "$n" = 120
sleep 10.5 # the limit's window ends: the next line of a user's step is preceded by the count left out
qn begin 5002 0 >/dev/null
qn end 5002 0 >/dev/null
for _ in $(seq 50); do since | grep -q "job 5002 step 0 ended" && break; sleep 0.1; done
left=$(since | sed -n 's/.* \([0-9]*\) more lines about job steps that users opened for themselves were left out.*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
t_check "the log says how many lines were left out: $left, and $logged logged, of nobody's 1000" -- \
        test "$((left + logged))" = 1000
t_check "a later line of a user's step is logged again" -- grep -q "job 5002 step 0 of nobody began" "$LOG"

# --- one jouled per state directory and per spool
S2=$T_DIR/run/second.sock
write_config "$T_DIR/second.yml" "$T_DIR/state" "$S2" 2
timeout 10 "$NS_RUN" "$FX" -- "$JOULED" -c "$T_DIR/second.yml" >"$T_DIR/second.log" 2>&1 </dev/null
RC=$?
t_check "a second jouled on the same state directory refuses to start (rc $RC)" -- test "$RC" = 1
grep -q "in use by another jouled (pid $JPID" "$T_DIR/second.log"
t_ok $? "its message names the first one's pid ($(head -c 300 "$T_DIR/second.log"))"
test ! -e "$S2"
t_ok $? "and it left no socket behind"
kill -TERM "$JPID"; wait "$JPID" 2>/dev/null

NOPORT=$(free_port)
for i in 1 2 3 4 5; do
        write_config "$T_DIR/race$i.yml" "$T_DIR/race-state" "$T_DIR/run/race$i.sock" 2 "  dbd: 127.0.0.1:$NOPORT" \
                "  spool: $T_DIR/race-spool-$i/records.spool"
done
RP=()
for i in 1 2 3 4 5; do
        "$NS_RUN" "$FX" -- "$JOULED" -c "$T_DIR/race$i.yml" >"$T_DIR/race$i.log" 2>&1 </dev/null &
        RP+=($!)
        T_PIDS+=($!)
done
sleep 3
alive=0
for p in "${RP[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
refused=$(grep -l "in use by another jouled (pid" "$T_DIR"/race*.log | wc -l)
t_check "5 jouleds started together on one state directory: one runs, 4 refuse ($alive alive, $refused refused)" -- \
        test "$alive/$refused" = 1/4
! grep -q "cannot write" "$T_DIR"/race*.log
t_ok $? "none failed on a temporary file"
for p in "${RP[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done

write_config "$T_DIR/sp1.yml" "$T_DIR/sp-state1" "$T_DIR/run/sp1.sock" 2 "  dbd: 127.0.0.1:$NOPORT" "  spool: $T_DIR/spool/records.spool"
write_config "$T_DIR/sp2.yml" "$T_DIR/sp-state2" "$T_DIR/run/sp2.sock" 2 "  dbd: 127.0.0.1:$NOPORT" "  spool: $T_DIR/spool/records.spool"
start_jouled "$T_DIR/sp1.yml" "$T_DIR/run/sp1.sock" "$T_DIR/sp1.log"
t_ok $? "a jouled with node.dbd starts"
SP1PID=$JPID
timeout 10 "$NS_RUN" "$FX" -- "$JOULED" -c "$T_DIR/sp2.yml" >"$T_DIR/sp2.log" 2>&1 </dev/null
t_check "another on the same spool (its own state directory) refuses, naming the pid" -- \
        grep -q "spool $T_DIR/spool/records.spool is in use by another jouled (pid $SP1PID" "$T_DIR/sp2.log"

# --- stop within a second once what is pending is on disk: the dbd is gone
"$C" --socket "$T_DIR/run/sp1.sock" begin 50 0 >/dev/null
"$C" --socket "$T_DIR/run/sp1.sock" end 50 0 >/dev/null
sleep 1.5
DT=$(stop_time "$SP1PID")
wait "$SP1PID"
RC=$?
t_check "no dbd: SIGTERM stops jouled within 1 s ($DT s), with status 0 ($RC)" -- \
        "$PY" -c "import sys; sys.exit(0 if $DT < 1 and $RC == 0 else 1)"
t_check "its records and job messages are in the spool" -- test "$(stat -c %s "$T_DIR/spool/records.spool")" -gt 100

# --- the SQLite store is locked: the stop writes what is pending to the state directory
write_config "$CFG" "$T_DIR/state" "$S" 2
start_jouled "$CFG" "$S" "$LOG"
t_ok $? "jouled starts again on its SQLite store"
"$PY" - "$DB" "$T_DIR/locked" <<'PYEOF' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
for _ in range(300):
    if not os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
c.execute("ROLLBACK")
PYEOF
LP=$!
for _ in $(seq 50); do [ -e "$T_DIR/locked" ] && break; sleep 0.1; done
q begin 60 0 >/dev/null
q end 60 0 >/dev/null
sleep 1.5
DT=$(stop_time "$JPID")
wait "$JPID"
RC=$?
t_check "store locked: SIGTERM stops jouled within 1 s ($DT s), with status 0 ($RC)" -- \
        "$PY" -c "import sys; sys.exit(0 if $DT < 1 and $RC == 0 else 1)"
t_check "what the store did not take is in node.state_dir/pending" -- test -s "$T_DIR/state/pending"
rm -f "$T_DIR/locked"
wait "$LP"
start_jouled "$CFG" "$S" "$LOG"
t_ok $? "jouled starts with the store free again"
ok=1
for _ in $(seq 50); do
        c=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from steps where job_id=60 and end_us is not null").fetchone()[0])' "$DB" 2>/dev/null)
        [ "${c:-0}" = 1 ] && [ ! -e "$T_DIR/state/pending" ] && { ok=0; break; }
        sleep 0.1
done
t_ok $ok "the pending job step reaches the store at the next start, and the pending file is gone"
DT=$(stop_time "$JPID")
t_check "a stop with nothing pending is prompt too ($DT s)" -- "$PY" -c "import sys; sys.exit(0 if $DT < 1 else 1)"

# --- /metrics in a private network namespace (an address of its own besides the loopback, nothing outside
# changes): 500 slow connections from 40 loopback addresses hold 8 slots (the loopback is one peer, as any
# local user may use any of 127.0.0.0/8), and a scraper from another address is served at once
NSS=$T_DIR/run/ns.sock
write_config "$T_DIR/ns.yml" "$T_DIR/ns-state" "$NSS" 2 "  metrics_listen: 0.0.0.0:$MP" \
        "  control_listen: 0.0.0.0:$CP"
unshare -n bash -c 'ip link set lo up && ip addr add 10.254.0.1/32 dev lo && exec "$@"' ns \
        "$NS_RUN" "$FX" -- "$JOULED" -c "$T_DIR/ns.yml" >>"$T_DIR/ns.log" 2>&1 </dev/null &
NPID=$!
T_PIDS+=("$NPID")
for _ in $(seq 50); do "$C" --socket "$NSS" energy >/dev/null 2>&1 && break; sleep 0.1; done
IN=(nsenter "--net=/proc/$NPID/ns/net")
"${IN[@]}" "$PY" "$SLOW" trickle tcp "10.254.0.1:$MP" --from 10.254.0.1 --http >"$T_DIR/slow-http" &
SP3=$!
"${IN[@]}" "$PY" "$SLOW" hold tcp "127.0.0.1:$MP" 500 --spread 40 --hold 4 --ready "$T_DIR/ready-http" \
        >"$T_DIR/hold-http" &
HP=$!
for _ in $(seq 100); do [ -e "$T_DIR/ready-http" ] && break; sleep 0.1; done
T0=$(date +%s.%N)
"${IN[@]}" curl -sf -m 5 "http://10.254.0.1:$MP/metrics" >"$T_DIR/metrics.txt"
RC=$?
DT=$("$PY" -c 'import sys,time; print(round(time.time() - float(sys.argv[1]), 2))' "$T0")
t_check "/metrics answers another address within 1 s while 500 slow connections are open ($DT s)" -- \
        sh -c "[ $RC = 0 ] && grep -q joule_energy_joules_total '$T_DIR/metrics.txt' && $PY -c 'import sys; sys.exit(0 if $DT < 1 else 1)'"
wait "$HP"
t_check "/metrics: the 40 loopback addresses hold at most 8 of them ($(cat "$T_DIR/hold-http"))" -- \
        jtest "$(cat "$T_DIR/hold-http")" 'j["closed"] >= 492'
wait "$SP3"
t_check "/metrics: a request trickled a byte a second is dropped within 7 s ($(cat "$T_DIR/slow-http"))" -- \
        jtest "$(cat "$T_DIR/slow-http")" 'j["closed_after_s"] is not None and j["closed_after_s"] <= 7.5'
# the control port: the loopback is one peer there too, and an idle connection is dropped after 10 s
"${IN[@]}" "$PY" "$SLOW" idle tcp "10.254.0.1:$CP" --from 10.254.0.1 >"$T_DIR/idle-cp" &
IP=$!
"${IN[@]}" "$PY" "$SLOW" hold tcp "127.0.0.1:$CP" 100 --spread 10 --hold 2 --ready "$T_DIR/ready-cp" >"$T_DIR/hold-cp" &
HP=$!
for _ in $(seq 100); do [ -e "$T_DIR/ready-cp" ] && break; sleep 0.1; done
t_check "while the loopback holds 64 connections to the control port, another address is served" -- \
        jtest "$("${IN[@]}" "$C" --tcp "10.254.0.1:$CP" query)" 'j["err"] == 0'
wait "$HP"
t_check "the control port refused the loopback's beyond 64 ($(cat "$T_DIR/hold-cp"))" -- \
        jtest "$(cat "$T_DIR/hold-cp")" 'j["closed"] == 100 - 64'
wait "$IP"
t_check "control port: a connection that sends nothing is dropped after 10 s ($(cat "$T_DIR/idle-cp"))" -- \
        jtest "$(cat "$T_DIR/idle-cp")" 'j["closed_after_s"] is not None and 9.5 <= j["closed_after_s"] <= 12'
kill -TERM "$NPID"
wait "$NPID" 2>/dev/null

if [ "$T_FAILED" -gt 0 ]; then
        t_diag "jouled's log:"
        tail -40 "$LOG" | sed 's/^/#   /'
fi
t_done
