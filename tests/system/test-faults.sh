#!/bin/bash
# test-faults.sh - bad input in the middle of a run, and the process contract of `joule measure`: a
# counter stepping back without a wrap (a glitch, never negative energy), a CPU going offline, files
# disappearing, energy_uj readable by root only (joule run as nobody), exit codes and signal forwarding.
# TAP.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule

# during FX OUT LOAD SECS "SHELL CMDS": joule measure --json around a phase, with SHELL CMDS run one second
# into it (in the namespace, as root); the phase's truth goes to OUT.phase.
during() {
        local fx=$1 out=$2 load=$3 secs=$4 act=$5
        shift 5
        in_ns "$fx" "$JOULE" measure --json --interval 25 "$@" -- sh -c "
                '$JOULE_EMU' ctl --root '$fx' phase $load $secs > '$out.phase' &
                sleep 1; $act; wait" > "$out"
}
dom() { jget "$(cat "$1")" "[d for d in j['domains'] if d['name'] == '$2'][0]['$3']"; }
truth_j() { jget "$(cat "$1.phase")" "j['energy_j']['$2']"; }

emu_start i intel2s
ctl freeze >/dev/null

# --- a counter goes backwards without a wrap ---
during "$FX" "$T_DIR/bk.json" 0.7 2 "'$JOULE_EMU' ctl --root '$FX' backwards package-0 >/dev/null"
t_ok $? "backwards: joule exits 0"
J=$(cat "$T_DIR/bk.json")
t_check "backwards: package-0 reports a glitch" -- jtest "$J" '[d for d in j["domains"] if d["name"] == "package-0"][0]["glitches"] >= 1'
t_check "backwards: package-0 energy is not negative and within 10% of the truth (the glitch bridged)" -- \
        jtest "$J" "0 < [d for d in j['domains'] if d['name'] == 'package-0'][0]['energy_j'] and abs([d for d in j['domains'] if d['name'] == 'package-0'][0]['energy_j'] - $(truth_j "$T_DIR/bk.json" package-0)) < 0.1 * $(truth_j "$T_DIR/bk.json" package-0)"
t_check "backwards: the other package is exact" -- \
        jtest "$J" "abs([d for d in j['domains'] if d['name'] == 'package-1'][0]['energy_j'] - $(truth_j "$T_DIR/bk.json" package-1)) < 1e-3"
t_check "backwards: a note tells of the glitch" -- jtest "$J" 'any("package-0" in n["subject"] and "glitch" in n["reason"] for n in j["notes"])'

# --- a CPU goes offline mid-run ---
during "$FX" "$T_DIR/off.json" 0.7 2 "'$JOULE_EMU' ctl --root '$FX' offline 3 >/dev/null"
t_ok $? "offline: joule exits 0"
J=$(cat "$T_DIR/off.json")
t_check "offline: energy still exact for every domain (powercap is per package)" -- \
        jtest "$J" "all(abs(d['energy_j'] - json.load(open('$T_DIR/off.json.phase'))['energy_j'][d['name']]) < 1e-3 for d in j['domains'])"
t_check "offline: cpu3's frequency readings failed and say so; the others kept going" -- \
        jtest "$J" '[s for s in j["sensors"] if s["name"] == "cpu3"][0]["errors"] >= 1 and [s for s in j["sensors"] if s["name"] == "cpu0"][0]["errors"] == 0 and any("cpu3" in n["subject"] for n in j["notes"])'
t_check "offline: utilization sane" -- jtest "$J" '0 <= j["cpu_utilization"] <= 1'
ctl quit >/dev/null

# rapl-msr reads one CPU per package: take that CPU away mid-run
emu_start im intel2s
ctl freeze >/dev/null
during "$FX" "$T_DIR/moff.json" 0.7 2 "'$JOULE_EMU' ctl --root '$FX' offline 2 >/dev/null" --providers rapl-msr
t_ok $? "offline under rapl-msr: joule exits 0"
J=$(cat "$T_DIR/moff.json")
t_check "offline under rapl-msr: package-0 exact; package-1 never negative nor above the truth" -- \
        jtest "$J" "abs([d for d in j['domains'] if d['name'] == 'package-0'][0]['energy_j'] - $(truth_j "$T_DIR/moff.json" package-0)) < 1e-2 and 0 <= [d for d in j['domains'] if d['name'] == 'package-1'][0]['energy_j'] <= 1.005 * $(truth_j "$T_DIR/moff.json" package-1)"
p1=$(dom "$T_DIR/moff.json" package-1 energy_j)
t1=$(truth_j "$T_DIR/moff.json" package-1)
if "$PY" -c "import sys; sys.exit(0 if abs($p1 - $t1) < 0.005 * $t1 else 1)"; then
        t_ok 0 "offline under rapl-msr: package-1 continues on its other CPU (exact)"
else
        T_N=$((T_N + 1))
        echo "not ok $T_N - offline under rapl-msr: package-1 continues on its other CPU (exact) # TODO rapl-msr does not move to another CPU of the package (got $p1 J of $t1 J)"
fi
ctl quit >/dev/null

# --- files disappear mid-run ---
# A sysfs attribute that goes away fails reads even on descriptors kept open; a removed regular file would
# still read its old content, so each file is emptied before it is removed, and once more after, through a
# descriptor held across the removal (the running emulator may rewrite it in between).
emu_start r intel2s
ctl freeze >/dev/null
during "$FX" "$T_DIR/rm.json" 0.5 2 "for f in '$FX/sys/class/hwmon/hwmon1/temp1_input' '$FX/sys/devices/system/cpu/cpufreq/policy1/scaling_cur_freq' '$FX/sys/class/powercap/intel-rapl:1:1/energy_uj'; do exec 3<\$f; : > \$f; rm -f \$f; : > /proc/self/fd/3; exec 3<&-; done"
t_ok $? "vanished files: joule exits 0"
J=$(cat "$T_DIR/rm.json")
t_check "vanished files: the temperature and frequency channels count failed readings" -- \
        jtest "$J" '[s for s in j["sensors"] if s["name"] == "coretemp-isa-0001/Package id 1"][0]["errors"] >= 1 and [s for s in j["sensors"] if s["name"] == "cpu1"][0]["errors"] >= 1'
t_check "vanished files: energies sane (an energy_uj kept open reads on; none negative or absurd)" -- \
        jtest "$J" "all(0 <= d['energy_j'] <= 1.005 * json.load(open('$T_DIR/rm.json.phase'))['energy_j'][d['name']] + 1e-3 for d in j['domains'])"
ctl quit >/dev/null

# --- energy_uj readable by root only; joule run as nobody ---
emu_start p intel2s
for f in "$FX"/sys/class/powercap/intel-rapl/intel-rapl:*/energy_uj "$FX"/sys/class/powercap/intel-rapl/intel-rapl:*/intel-rapl:*/energy_uj; do
        chmod 0400 "$f"
done
out=$(in_ns "$FX" setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$JOULE" measure --json -- true)
t_ok $? "permission denied: joule as nobody still runs the command (exit 0)"
t_check "permission denied: notes name energy_uj, permission and root" -- \
        jtest "$out" 'any("energy_uj" in n["reason"] and "permission" in n["reason"].lower() and "root" in n["reason"] for n in j["notes"] if n["subject"].startswith("rapl"))'
t_check "permission denied: no energy from unreadable zones, nothing negative" -- \
        jtest "$out" 'not any(d["provider"] == "rapl" for d in j["domains"]) and j["energy_j"] >= 0'
out=$(in_ns "$FX" setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$JOULE" info --json)
t_check "permission denied: joule info explains it too" -- \
        jtest "$out" 'any("permission" in n["reason"].lower() for n in j["notes"])'
ctl quit >/dev/null

# --- exit codes and signals ---
emu_start s intel2s
in_ns "$FX" "$JOULE" measure --json -- sh -c 'exit 42' >/dev/null
t_ok $(($? != 42)) "exit code 42 passed through"
in_ns "$FX" "$JOULE" measure --json -- /nonexistent/command >/dev/null 2>&1
t_ok $(($? != 127)) "a command that does not exist: 127"
in_ns "$FX" "$JOULE" measure --json -- sh -c 'kill -KILL $$' >/dev/null
t_ok $(($? != 137)) "a command killed by SIGKILL: 137 (128 + 9)"
# started as a simple command (not a function), so that $! is joule itself after ns-run's execs
"$NS_RUN" "$FX" -- "$JOULE" measure --json -- sh -c "trap 'echo got-term > $T_DIR/term; exit 77' TERM; i=0; while [ \$i -lt 100 ]; do sleep 0.05; i=\$((i+1)); done; exit 1" > "$T_DIR/sig.json" &
jpid=$!
T_PIDS+=($jpid)
sleep 1
kill -TERM $jpid
wait $jpid
rc=$?
t_ok $((rc != 77)) "SIGTERM to joule reaches the command; joule exits with its status 77 (got $rc)"
t_check "the command saw SIGTERM" -- test "$(cat "$T_DIR/term" 2>/dev/null)" = got-term
t_check "joule still printed its JSON with exit_code 77" -- jtest "$(cat "$T_DIR/sig.json")" 'j["exit_code"] == 77 and j["energy_j"] > 0'
# (SIGHUP: a non-interactive shell starts background jobs with SIGINT ignored)
"$NS_RUN" "$FX" -- "$JOULE" measure --json -- sh -c 'sleep 5; exit 0' > "$T_DIR/sig2.json" &
jpid=$!
T_PIDS+=($jpid)
sleep 0.5
kill -HUP $jpid
wait $jpid
rc=$?
t_ok $((rc != 129)) "SIGHUP forwarded to a command without a handler: joule exits 129 = 128 + SIGHUP (got $rc)"
t_check "joule's JSON reports the signal as exit_code 129" -- jtest "$(cat "$T_DIR/sig2.json")" 'j["exit_code"] == 129'
ctl quit >/dev/null

t_done
