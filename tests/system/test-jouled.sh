#!/bin/bash
# test-jouled.sh - jouled on an emulated intel2s node (joule-emu at the real sysfs paths, tests/ns-run.sh),
# with its records in a SQLite file and a real munged (run under tests/with-munge.sh): readiness, the
# shared-memory page, job steps and periodic records against the emulator's exact ground truth (the
# emulator is frozen outside `phase`, so every window holds exactly the phase's energy), SO_PEERCRED
# permissions, cpufreq writes reaching the emulated tree, the control port (root, an unlisted user, forged
# and replayed credentials, bad frames), SIGHUP reload, kill -9 during a job, /metrics, clean stop.
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
S=$T_DIR/run/jouled.sock
MP=$(free_port)
CP=$(free_port)
LOG=$T_DIR/jouled.log
DB=$T_DIR/joule.db
C=$JOULED_CLIENT
AS_NOBODY=(setpriv --reuid nobody --regid nogroup --clear-groups)

write_config() { # write_config PERIOD ADMINS
        cat >"$T_DIR/joule.yml" <<EOF
database:
  url: $DB
node:
  name: emu-n1
  period: $1
  sample_ms: 100
  socket: $S
  state_dir: $T_DIR/state
  spool: $T_DIR/spool/records.spool
  control_listen: 127.0.0.1:$CP
  metrics_listen: 127.0.0.1:$MP
  munge_socket: $JOULE_MUNGE_SOCKET
  admins: [$2]
EOF
}

JPID=
start_jouled() {
        # ns-run.sh execs unshare, which execs jouled: $! is jouled's pid
        "$NS_RUN" "$FX" -- "$JOULED" -c "$T_DIR/joule.yml" >>"$LOG" 2>&1 </dev/null &
        JPID=$!
        T_PIDS+=("$JPID")
        for _ in $(seq 50); do
                "$C" --socket "$S" energy >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

q() { "$C" --socket "$S" "$@"; }              # local socket as root
qn() { "${AS_NOBODY[@]}" "$C" --socket "$S" "$@"; } # local socket as nobody
cq() { "$C" --tcp "127.0.0.1:$CP" "$@"; }      # control port as root
cqn() { "${AS_NOBODY[@]}" "$C" --tcp "127.0.0.1:$CP" "$@"; }
close_to() { "$PY" -c 'import sys; a, b, tol = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= tol * max(abs(b), 1) else 1)' "$@"; }
shm_energy() { jget "$(q shm)" 'j["node_energy_uj"]'; }

emu_start n1 intel2s || { echo "1..0 # SKIP joule-emu did not start"; exit 0; }
ctl freeze >/dev/null
write_config 1 ""

# --- start and readiness
start_jouled
t_ok $? "jouled starts and answers on its socket"
Q=$(q query)
t_check "QUERY: node status JSON names the node and takes the node energy from psys" -- \
        jtest "$Q" 'json.loads(j["text"])["node"] == "emu-n1" and json.loads(j["text"])["energy_source"] == "node"'
test "$(stat -c %a "$S")" = 666; t_ok $? "the socket is mode 0666"

# --- shared memory page and a job step against the ground truth
SHM=$(q shm)
t_check "GET_SHM: the page maps read-only (a writable mapping is refused) and names the node" -- \
        jtest "$SHM" 'j["node"] == "emu-n1" and j["writable"] is False and "psys" in j["domains"]'
E0=$(shm_energy)
B=$(q begin 100 0 root)
t_check "JOB_BEGIN as root" -- jtest "$B" 'j["err"] == 0 and json.loads(j["text"])["job_id"] == "100"'
PH=$(ctl phase 0.8 2)
END=$(q end 100 0)
E1=$(shm_energy)
TRUTH=$(jget "$PH" 'j["energy_uj"]["psys"]')
t_check "JOB_END: the step's energy matches the emulator's ground truth within 0.5%" -- \
        close_to "$(jget "$END" 'j["energy_uj"]')" "$TRUTH" 0.005
t_check "JOB_END: complete, time and average power" -- \
        jtest "$END" 'json.loads(j["text"])["complete"] is True and 1900 < j["time_ms"] < 4000 and json.loads(j["text"])["avg_power_w"] > 0'
t_check "the shm page advanced by the phase's energy within 0.5%" -- close_to "$((E1 - E0))" "$TRUTH" 0.005

# --- periodic records in the store
ok=1
for _ in $(seq 40); do
        n=$("$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from periodic_metrics where start_us > (select end_us from steps where job_id=100)").fetchone()[0])' "$DB" 2>/dev/null)
        [ "${n:-0}" -ge 1 ] && { ok=0; break; }
        sleep 0.1
done
t_ok $ok "periodic records land in the SQLite store"
CHECK=$("$PY" - "$DB" "$PH" <<'EOF'
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
ph = json.loads(sys.argv[2])
rows = c.execute("select seq, start_us, end_us, energy_uj, domains_json from periodic_metrics where node='emu-n1' order by start_us").fetchall()
seqs = [r[0] for r in rows]
out = {"n": len(rows), "increasing": all(b > a for a, b in zip(seqs, seqs[1:])),
       "contiguous_windows": all(b[1] == a[2] for a, b in zip(rows, rows[1:])),
       "energy_uj": sum(r[3] for r in rows), "truth_uj": ph["energy_uj"]["psys"], "domains": {}}
for r in rows:
    for k, v in json.loads(r[4]).items():
        out["domains"][k] = out["domains"].get(k, 0) + v
out["domains_ok"] = all(abs(out["domains"].get(k, 0) - v) <= 0.005 * v for k, v in ph["energy_uj"].items() if k != "node")
st = c.execute("select energy_uj, complete, user_name from steps where job_id=100 and step_id=0").fetchone()
out["step"] = list(st) if st else None
print(json.dumps(out))
EOF
)
t_check "records: sequence numbers strictly increasing, windows back to back" -- \
        jtest "$CHECK" 'j["n"] >= 3 and j["increasing"] and j["contiguous_windows"]'
t_check "records: the node energy summed over the records matches the ground truth within 0.5%" -- \
        jtest "$CHECK" 'abs(j["energy_uj"] - j["truth_uj"]) <= 0.005 * j["truth_uj"]'
t_check "records: every domain's energy matches the ground truth within 0.5%" -- jtest "$CHECK" 'j["domains_ok"]'
t_check "the step is stored with its energy, complete, and its user" -- \
        jtest "$CHECK" 'j["step"] and abs(j["step"][0] - j["truth_uj"]) <= 0.005 * j["truth_uj"] and j["step"][1] == 1 and j["step"][2] == "root"'

# --- SO_PEERCRED: a user reads, but sets frequencies only on the CPUs of their own job
t_check "nobody may read the energy" -- jtest "$(qn energy)" 'j["err"] == 0'
t_check "nobody may map the shared-memory page" -- jtest "$(qn shm)" 'j["node"] == "emu-n1"'
t_check "nobody is refused SET_CPUFREQ on CPUs without their job" -- jtest "$(qn cpufreq 0-1 1200000)" 'j["err"] == -1'
t_check "nobody is refused JOB_BEGIN for root's job" -- jtest "$(qn begin 201 0 root)" 'j["err"] == -1'
t_check "root begins job 200 for nobody on CPUs 0-1" -- jtest "$(q begin 200 0 nobody 0-1)" 'j["err"] == 0'
t_check "nobody may set the frequency of CPUs 0-1 (their job's)" -- jtest "$(qn cpufreq 0-1 1200000)" 'j["err"] == 0'
t_check "nobody is still refused CPU 2 (not their job's)" -- jtest "$(qn cpufreq 2 1200000)" 'j["err"] == -1'
t_check "the cpufreq write reached the emulated tree" -- \
        test "$(cat "$FX/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")" = 1200000
ctl phase 0.5 0.3 >/dev/null
TR=$(ctl truth)
t_check "the emulator reacts: cpu0 runs at 1.2 GHz, cpu2 does not" -- \
        jtest "$TR" 'j["freq_khz"]["cpu0"] == 1200000 and j["freq_khz"]["cpu2"] != 1200000'
t_check "nobody may not end the job root began for them" -- jtest "$(qn end 200 0)" 'j["err"] == -1'
t_check "root ends it" -- jtest "$(q end 200 0)" 'j["err"] == 0 and json.loads(j["text"])["user"] == "nobody"'
t_check "nobody begins a job of their own" -- jtest "$(qn begin 202 0)" 'j["err"] == 0'
t_check "and ends it" -- jtest "$(qn end 202 0)" 'j["err"] == 0 and json.loads(j["text"])["user"] == "nobody"'
t_check "root restores the default range (0 kHz) on every CPU" -- jtest "$(q cpufreq 0-1023 0)" 'j["err"] == 0'
t_check "scaling_max_freq is back at cpuinfo_max_freq" -- \
        test "$(cat "$FX/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")" = "$(cat "$FX/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")"
t_check "nobody is refused SET_POWERCAP" -- jtest "$(qn powercap 100)" 'j["err"] == -1'
t_check "SET_GPUFREQ without a GPU: EOPNOTSUPP" -- jtest "$(q gpufreq 0 1000000)" 'j["err"] == -95'

# --- control port (MUNGE)
t_check "control port: root queries with a MUNGE credential" -- \
        jtest "$(cq query)" 'j["err"] == 0 and json.loads(j["text"])["node"] == "emu-n1"'
t_check "control port: root sets a power limit (spread over the packages)" -- jtest "$(cq powercap 120)" 'j["err"] == 0'
t_check "the power limit reached package-0's long-term constraint" -- \
        test "$(cat "$FX/sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw")" = 60000000
t_check "control port: an unlisted user may read" -- jtest "$(cqn query)" 'j["err"] == 0'
t_check "control port: an unlisted user is refused a change" -- jtest "$(cqn cpufreq 0-3 1200000)" 'j["err"] == -1'
t_check "control port: a forged credential is refused" -- jtest "$(cq forged)" '"closed" in j or j["err"] == -13'
RP=$(cq replay | tail -1)
t_check "control port: a replayed credential is refused" -- jtest "$RP" '"closed" in j or j["err"] == -13'
t_check "control port: a request without a credential is refused" -- jtest "$(cq plain)" '"closed" in j or j["err"] == -13'
for bad in raw-random raw-truncated raw-oversized raw-version; do
        t_check "control port: $bad: connection dropped" -- jtest "$(cq $bad 300)" '"closed" in j'
done
for bad in raw-random raw-truncated raw-oversized raw-version; do
        t_check "local socket: $bad: connection dropped" -- jtest "$(q $bad 300)" '"closed" in j'
done
t_check "after all that the daemon still serves the socket" -- jtest "$(q energy)" 'j["err"] == 0'
t_check "after all that the daemon still serves the control port" -- jtest "$(cq query)" 'j["err"] == 0'
for why in "credential rejected" "an oversized frame" "another protocol version" "bad magic" \
        "middle of a frame" "without a MUNGE credential" "refused to uid 65534"; do
        grep -q "$why" "$LOG"
        t_ok $? "the log says why: $why"
done

# --- SIGHUP reload: node.period and node.admins change at run time
write_config 2 nobody
kill -HUP "$JPID"
ok=1
for _ in $(seq 30); do
        jtest "$(q query)" 'json.loads(j["text"])["period_s"] == 2' >/dev/null && { ok=0; break; }
        sleep 0.1
done
t_ok $ok "SIGHUP: node.period is reloaded"
t_check "SIGHUP: nobody, now in node.admins, may change frequencies through the control port" -- \
        jtest "$(cqn cpufreq 0-3 0)" 'j["err"] == 0'
grep -q "configuration reloaded" "$LOG"
t_ok $? "SIGHUP: the log says the configuration was reloaded"
t_check "RELOAD through the control port (root)" -- jtest "$(cq reload)" 'j["err"] == 0'

# --- /metrics
M=$(curl -sf "http://127.0.0.1:$MP/metrics")
t_ok $? "/metrics answers"
MC=$("$PY" - "$M" "$(shm_energy)" <<'EOF'
import json, re, sys
text, shm = sys.argv[1], int(sys.argv[2])
line = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+-]+$')
bad = [l for l in text.splitlines() if l and not l.startswith("#") and not line.match(l)]
vals = {}
for l in text.splitlines():
    m = re.match(r'joule_energy_joules_total\{node="emu-n1",domain="([^"]+)"\} (\S+)', l)
    if m:
        vals[m.group(1)] = float(m.group(2))
print(json.dumps({"bad": bad, "node_j": vals.get("node"), "psys_j": vals.get("psys"), "shm_j": shm / 1e6,
                  "has": [n for n in ("joule_power_watts", "joule_temperature_celsius", "joule_cpu_frequency_hertz") if n in text]}))
EOF
)
t_check "/metrics parses as the Prometheus text format" -- jtest "$MC" 'j["bad"] == []'
t_check "/metrics: the node's energy counter equals the shm page's" -- \
        jtest "$MC" 'abs(j["node_j"] - j["shm_j"]) < 1e-3 and abs(j["psys_j"] - j["shm_j"]) < 1e-3'
t_check "/metrics: power, temperature and frequency gauges" -- jtest "$MC" 'len(j["has"]) == 3'

# --- kill -9 during a job: the step is still closed, marked incomplete
SEQ_BEFORE=$(jget "$(q query)" 'json.loads(j["text"])["records"]["next_seq"]')
q begin 300 0 root >/dev/null
P1=$(ctl phase 0.5 1)
sleep 2.5 # a period passes: the open step's energy so far is saved
kill -9 "$JPID"
wait "$JPID" 2>/dev/null
start_jouled
t_ok $? "jouled restarts after kill -9"
t_check "the open step survived the restart" -- jtest "$(q query)" 'json.loads(j["text"])["jobs"][0]["job_id"] == "300"'
P2=$(ctl phase 0.5 1)
END=$(q end 300 0)
WANT=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["energy_uj"]["psys"] + json.loads(sys.argv[2])["energy_uj"]["psys"])' "$P1" "$P2")
t_check "the step ends, marked incomplete" -- jtest "$END" 'j["err"] == 0 and json.loads(j["text"])["complete"] is False'
t_check "its energy is what was measured before and after the restart (within 0.5%)" -- \
        close_to "$(jget "$END" 'j["energy_uj"]')" "$WANT" 0.005
ok=1
for _ in $(seq 40); do
        c=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select complete from steps where job_id=300").fetchone()[0])' "$DB" 2>/dev/null)
        [ "$c" = 0 ] && { ok=0; break; }
        sleep 0.1
done
t_ok $ok "the store holds the step as incomplete"
SEQ_AFTER=$(jget "$(q query)" 'json.loads(j["text"])["records"]["next_seq"]')
[ "$SEQ_AFTER" -gt "$SEQ_BEFORE" ]
t_ok $? "sequence numbers keep increasing across the restart ($SEQ_BEFORE -> $SEQ_AFTER)"
t_check "no duplicate (node, seq) in the store" -- test "$("$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) - count(distinct seq) from periodic_metrics").fetchone()[0])' "$DB")" = 0
t_check "an unknown step's end is refused (ENOENT)" -- jtest "$(q end 999 0)" 'j["err"] == -2'

# --- clean stop
kill -TERM "$JPID"
rc=124
for _ in $(seq 50); do
        if ! kill -0 "$JPID" 2>/dev/null; then
                wait "$JPID"
                rc=$?
                break
        fi
        sleep 0.1
done
t_ok $((rc != 0)) "SIGTERM: jouled exits 0 (rc $rc)"
test ! -e "$S"
t_ok $? "SIGTERM: the socket is removed"
if [ "$T_FAILED" -gt 0 ]; then
        t_diag "jouled's log:"
        tail -40 "$LOG" | sed 's/^/#   /'
fi
t_done
