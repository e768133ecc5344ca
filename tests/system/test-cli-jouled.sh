#!/bin/bash
# test-cli-jouled.sh - the CLI verbs against a real jouled on an emulated node, with a real munged
# (run under tests/with-munge.sh): `joule job begin|end` (energy against the emulator's ground truth),
# `joule control query|set-cpufreq|set-powercap|reload` over the MUNGE-authenticated control port (as
# root, refused for another user), and `joule acct|report|status` reading what jouled itself wrote into
# its SQLite database. TAP. Environment: JOULE, JOULED, JOULE_EMU, JOULE_MUNGE_SOCKET.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
t_setup
t_need_joule
: "${JOULED:?}" "${JOULE_MUNGE_SOCKET:?run under tests/with-munge.sh}"
chmod 755 "$T_DIR"

PORT=$(free_port)
emu_start n intel2s --wrap-uj 50000000
jouled_start emu1 "control_listen: 127.0.0.1:$PORT" "munge_socket: $JOULE_MUNGE_SOCKET" "partition: batch"
t_ok $? "jouled starts with its control port"
J() { "$JOULE" -c "$JD_CFG" "$@"; }
CPUFREQ=$FX/sys/devices/system/cpu/cpufreq
RAPL=$FX/sys/class/powercap/intel-rapl:0

# --- job begin/end: the step's energy is the node's, as the emulator's truth says ---
ctl load 0.5 >/dev/null
sleep 0.3
T0=$(ctl truth)
OUT=$(J job begin --job 4242 --step 1)
t_check "job begin: $OUT" -- test "$OUT" = "job 4242 step 1 began (user root)"
sleep 2
OUT=$(J job end --job 4242 --step 1 --json)
t_ok $? "job end --json exits 0"
T1=$(ctl truth)
TRUTH_W=$(jget "$T1" 'j["power_w"]["node"]')
t_check "job end: jouled's account (time about 2 s, average power = the node's within 1%)" -- jtest "$OUT" \
        "j['event'] == 'end' and j['job_id'] == '4242' and j['step_id'] == 1 and 1.9 < j['time_s'] < 2.6 and abs(j['avg_power_w'] - $TRUTH_W) <= 0.01 * $TRUTH_W and j['complete'] is True"
STEP_J=$(jget "$OUT" 'j["energy_j"]')
bad() { # bad DESCRIPTION EXPECTED_RC PATTERN -- CMD...
        local desc=$1 want=$2 pat=$3
        shift 4
        local out rc
        out=$("$@" 2>&1)
        rc=$?
        if [ "$rc" -eq "$want" ] && printf '%s' "$out" | grep -q -- "$pat"; then
                t_ok 0 "$desc"
        else
                t_ok 1 "$desc"
                t_diag "rc $rc (want $want): $out"
        fi
}
bad "job end of a step that is not running: refused with jouled's reason" 1 "is not running on this node" -- \
        J job end --job 4242 --step 1
bad "job begin without --job" 2 "required" -- env -u SLURM_JOB_ID "$JOULE" -c "$JD_CFG" job begin
bad "job begin --job x1" 2 "not a non-negative integer" -- J job begin --job x1
bad "job begin --user of nobody known" 2 "unknown user" -- J job begin --job 5 --user no-such-user-x
bad "job begin with no jouled" 1 "jouled is not running" -- env JOULE_SOCKET="$T_DIR/none.sock" "$JOULE" -c "$JD_CFG" job begin --job 5
ctl load 0 >/dev/null

# --- control over the MUNGE-authenticated port ---
N=127.0.0.1:$PORT
OUT=$(J control --node "$N" query)
t_ok $? "control query exits 0"
t_check "control query: the node's status as JSON" -- jtest "$OUT" 'isinstance(j, dict) and len(j) > 0'
t_check "control without --node uses node.control_listen" -- J control query
OUT=$(J control --node "$N" set-cpufreq 2000000 --cpus 2-3)
t_check "control set-cpufreq 2000000 --cpus 2-3 as root: $OUT" -- \
        sh -c "[ \$(cat $CPUFREQ/policy2/scaling_max_freq) = 2000000 ] && [ \$(cat $CPUFREQ/policy3/scaling_max_freq) = 2000000 ] && [ \$(cat $CPUFREQ/policy0/scaling_max_freq) != 2000000 ]"
t_check "control set-cpufreq 0 --cpus 2-3 restores the range" -- \
        sh -c "'$JOULE' -c '$JD_CFG' control set-cpufreq 0 --cpus 2-3 && [ \$(cat $CPUFREQ/policy2/scaling_max_freq) = \$(cat $CPUFREQ/policy2/cpuinfo_max_freq) ]"
OUT=$(J control --node "$N" set-powercap 150)
t_ok $? "control set-powercap 150 as root: $OUT"
t_diag "package-0 limit now $(cat "$RAPL/constraint_0_power_limit_uw") µW"
t_check "control reload as root" -- J control --node "$N" reload
sleep 0.5
t_check "jouled still serves after the reload" -- J control --node "$N" query
bad "control set-cpufreq as another user: refused, exit 1, with the reason" 1 "refused set-cpufreq: only root and node.admins" -- \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$JOULE" -c "$JD_CFG" control --node "$N" set-cpufreq 1800000
t_check "... and the cpufreq files did not change" -- sh -c "[ \$(cat $CPUFREQ/policy0/scaling_max_freq) != 1800000 ]"
t_check "control query as another user is allowed" -- \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$JOULE" -c "$JD_CFG" control --node "$N" query
bad "control to a port nobody listens on" 1 "cannot connect" -- J control --node "127.0.0.1:$(free_port)" query
bad "control --node without a port" 2 "is not HOST:PORT" -- J control --node localhost query
bad "control set-cpufreq garbage" 2 "not a frequency" -- J control --node "$N" set-cpufreq fast
bad "control set-powercap 1e9 (absurd)" 2 "not a power" -- J control --node "$N" set-powercap 1e9
bad "control with an unknown command" 2 "is not a command" -- J control --node "$N" overclock
sed "s|munge_socket: .*|munge_socket: $T_DIR/no-munge.sock|" "$JD_CFG" >"$T_DIR/nomunge.yml"
bad "control without munged: cannot get a credential" 1 "MUNGE credential" -- \
        "$JOULE" -c "$T_DIR/nomunge.yml" control --node "$N" query
J control --node "$N" set-powercap 0 >/dev/null

# --- acct / report / status from what jouled wrote into its database (after a record period) ---
sleep 1.5
OUT=$(J acct --json --job 4242)
t_check "acct: the step jouled accounted, with its energy" -- jtest "$OUT" \
        "len(j) == 1 and j[0]['nodes'] == ['emu1'] and j[0]['user'] == 'root' and abs(j[0]['energy_j'] - $STEP_J) < 1e-3 and j[0]['complete'] is True"
OUT=$(J report --by node --json --from -1h)
t_check "report --by node: emu1's energy from its periodic records" -- jtest "$OUT" \
        'j["source"] == "metrics" and [r["key"] for r in j["rows"]] == ["emu1"] and j["rows"][0]["energy_j"] > 0 and j["total_energy_j"] == j["rows"][0]["energy_j"]'
T_NOW=$(ctl truth)
t_check "report: the records' average power is between idle and the loaded node's" -- jtest "$OUT" \
        "0.95 * $(jget "$T_NOW" 'j["power_w"]["node"]') <= j['rows'][0]['avg_power_w'] <= 1.05 * $TRUTH_W"
OUT=$(J status --json)
t_check "status: emu1 is ok with a recent record" -- jtest "$OUT" \
        '[(n["node"], n["health"]) for n in j["nodes"]] == [("emu1", "ok")] and j["nodes"][0]["age_s"] < 3'
jouled_stop TERM
sleep 3.5
OUT=$(J status --json)
t_check "status: emu1 is stale 3 periods after jouled stopped" -- jtest "$OUT" 'j["nodes"][0]["health"] == "stale" and j["stale"] == 1'
t_done
