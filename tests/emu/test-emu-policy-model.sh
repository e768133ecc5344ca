#!/bin/bash
# test-emu-policy-model.sh - the emulator as a laboratory for policies: the exact sweep of time and energy
# per iteration across frequencies (joule-emu ctl sweep) has its energy optimum at the top for compute-bound
# work, at the bottom for memory-bound work and inside the range for mixed work, and emu-work, run at fixed
# frequencies set through the emulated cpufreq files, takes the sweep's time and the emulator's node energy
# per iteration within 1 %; its pace follows a frequency changed mid-run. TAP. Needs root (namespaces).
. "$(dirname "$0")/../system/lib.sh"
t_setup
: "${EMU_WORK:?EMU_WORK is not set}"

emu_start n intel2s
t_ok $? "serve intel2s"
CPU=$FX/sys/devices/system/cpu

declare -A SW
for k in compute mixed memory; do
        SW[$k]=$(ctl sweep all $k)
        t_check "sweep $k" -- test -n "${SW[$k]}"
done
t_check "compute: time is cycles / f (3.75 times longer at 0.8 GHz than at 3.0)" -- jtest "${SW[compute]}" \
        'abs(j["points"][0]["time_s"] / j["points"][-1]["time_s"] - 3.75) < 1e-9 and j["mem_s"] == 0'
t_check "every point: energy = time x node power" -- jtest "${SW[mixed]}" \
        'all(abs(p["energy_j"] - p["time_s"] * p["power_w"]) < 1e-6 for p in j["points"])'
t_check "compute-bound: the energy optimum is the top frequency" -- jtest "${SW[compute]}" \
        'j["optimal_khz"] == j["points"][-1]["khz"] == 3000000'
t_check "memory-bound: the energy optimum is the bottom frequency" -- jtest "${SW[memory]}" \
        'j["optimal_khz"] == j["points"][0]["khz"] == 800000'
t_check "mixed: the energy optimum lies inside the range" -- jtest "${SW[mixed]}" \
        'j["points"][0]["khz"] < j["optimal_khz"] < j["points"][-1]["khz"]'
for k in compute mixed memory; do
        t_check "$k: min_energy picks the least energy within th of the time at the top, lower for a larger th" -- \
                "$PY" -c '
import json, sys
j = json.loads(sys.argv[1]); P = j["points"]; ref = P[-1]["time_s"]; me = j["min_energy"]
for th in ("0.05", "0.1", "0.2"):
    ok = [p for p in P if p["time_s"] <= ref * (1 + float(th))]
    pick = next(p for p in P if p["khz"] == me[th])
    if pick not in ok or min(p["energy_j"] for p in ok) < pick["energy_j"]:
        sys.exit("th %s: %s is not the least energy within the bound" % (th, me[th]))
sys.exit(0 if me["0.05"] >= me["0.1"] >= me["0.2"] >= j["optimal_khz"] else "not monotonic: %s" % me)' "${SW[$k]}"
done
t_check "mixed: a 5 % bound keeps min_energy above the optimum, 20 % reaches it" -- jtest "${SW[mixed]}" \
        'j["min_energy"]["0.05"] > j["optimal_khz"] == j["min_energy"]["0.2"]'

# setfreq HOW KHZ: every CPU's scaling_setspeed (waits until scaling_cur_freq shows it), or
# scaling_max_freq (the idle CPUs stay low; the workload keeps its CPUs busy, so that the demand governor
# runs them at the maximum from the moment it starts).
setfreq() {
        local c
        for c in 0 1 2 3; do
                if [ "$1" = setspeed ]; then
                        echo "$2" >"$CPU/cpu$c/cpufreq/scaling_setspeed"
                        echo 3000000 >"$CPU/cpu$c/cpufreq/scaling_max_freq"
                else
                        echo "<unsupported>" >"$CPU/cpu$c/cpufreq/scaling_setspeed"
                        echo "$2" >"$CPU/cpu$c/cpufreq/scaling_max_freq"
                fi
        done
        [ "$1" = setspeed ] || return 0
        for _ in $(seq 50); do
                [ "$(cat "$CPU"/cpu{0,1,2,3}/cpufreq/scaling_cur_freq | sort -u)" = "$2" ] && break
                sleep 0.05
        done
        [ "$(cat "$CPU"/cpu{0,1,2,3}/cpufreq/scaling_cur_freq | sort -u)" = "$2" ]
}

# run KIND HOW KHZ N: emu-work at that frequency; checks time and energy per iteration against the sweep.
declare -A RUN
run() {
        local k=$1 how=$2 khz=$3 n=$4 out
        t_check "$k at $khz kHz ($how)" -- setfreq "$how" "$khz"
        out=$("$NS_RUN" "$FX" -- "$EMU_WORK" --root "$FX" --kind "$k" --iterations "$n")
        t_ok $? "emu-work $k, $n iterations at $khz kHz"
        RUN[$k-$khz]=$out
        t_check "$k at $khz kHz: time and node energy per iteration within 1 % of the sweep" -- "$PY" -c '
import json, sys
r = json.loads(sys.argv[1]); s = json.loads(sys.argv[2]); khz = int(sys.argv[3])
p = next(p for p in s["points"] if p["khz"] == khz)
dt = r["time_per_iteration_s"] / p["time_s"] - 1
de = r["energy_per_iteration_j"] / p["energy_j"] - 1
print("time %+.3f %%, energy %+.3f %%, freq %s" % (100 * dt, 100 * de, r["freq_khz"]))
sys.exit(0 if abs(dt) < 0.01 and abs(de) < 0.01 and r["completed"] and abs(r["freq_khz"] / khz - 1) < 1e-5 else 1)' \
                "$out" "${SW[$k]}" "$khz"
        t_diag "$k $khz: $out"
}

MIXED_OPT=$(jget "${SW[mixed]}" 'j["optimal_khz"]')
run compute setspeed 3000000 90
run memory setspeed 800000 90
run mixed setspeed 800000 40
run mixed max_freq 1500000 60
run mixed setspeed "$MIXED_OPT" 80
t_check "mixed, measured: the optimum takes less energy per iteration than 0.8 and 1.5 GHz" -- "$PY" -c '
import json, sys
e = [json.loads(a)["energy_per_iteration_j"] for a in sys.argv[1:]]
sys.exit(0 if e[2] < e[1] < e[0] else print(e) or 1)' "${RUN[mixed-800000]}" "${RUN[mixed-1500000]}" "${RUN[mixed-$MIXED_OPT]}"

# On a subset of the CPUs (package 0), the others idle: against the sweep of that subset.
SW[sub]=$(ctl sweep 0-1 mixed)
t_check "a sweep of package 0 alone costs less per iteration than of both packages" -- "$PY" -c '
import json, sys
a = json.loads(sys.argv[1]); b = json.loads(sys.argv[2])
sys.exit(0 if all(p["energy_j"] < q["energy_j"] and p["time_s"] == q["time_s"] for p, q in zip(a["points"], b["points"])) else 1)' \
        "${SW[sub]}" "${SW[mixed]}"
setfreq setspeed 2000000
out=$("$NS_RUN" "$FX" -- "$EMU_WORK" --root "$FX" --kind mixed --cpus 0-1 --iterations 60)
t_ok $? "emu-work mixed on CPUs 0-1 at 2000000 kHz"
t_check "mixed on CPUs 0-1: time and node energy per iteration within 1 % of that sweep" -- "$PY" -c '
import json, sys
r = json.loads(sys.argv[1]); s = json.loads(sys.argv[2])
p = next(p for p in s["points"] if p["khz"] == 2000000)
dt = r["time_per_iteration_s"] / p["time_s"] - 1; de = r["energy_per_iteration_j"] / p["energy_j"] - 1
print("time %+.3f %%, energy %+.3f %%" % (100 * dt, 100 * de))
sys.exit(0 if abs(dt) < 0.01 and abs(de) < 0.01 else 1)' "$out" "${SW[sub]}"

# A frequency changed mid-run changes the pace at once: 0.8 GHz, then 3.0 GHz after about 0.8 s.
setfreq setspeed 800000
"$NS_RUN" "$FX" -- "$EMU_WORK" --root "$FX" --kind mixed --iterations 50 >"$T_DIR/switch.json" &
wpid=$!
sleep 0.8
for c in 0 1 2 3; do echo 3000000 >"$CPU/cpu$c/cpufreq/scaling_setspeed"; done
sw=$(ctl truth)
wait $wpid
t_ok $? "emu-work across a frequency change"
out=$(cat "$T_DIR/switch.json")
t_check "the run's time follows the frequency in force: 0.8 GHz until the change, 3.0 GHz after (2 %)" -- "$PY" -c '
import json, sys
r = json.loads(sys.argv[1]); s = json.loads(sys.argv[2]); t = json.loads(sys.argv[3])
T = {p["khz"]: p["time_s"] for p in s["points"]}
before = t["t_s"] - r["t_start_s"]
want = before + (r["iterations"] - before / T[800000]) * T[3000000]
print("time %.4f s, expected %.4f s (%.4f s at 0.8 GHz)" % (r["time_s"], want, before))
sys.exit(0 if 0 < before < r["time_s"] and abs(r["time_s"] / want - 1) < 0.02 else 1)' "$out" "${SW[mixed]}" "$sw"

t_check "sweep without CPUS sweeps all" -- test "$(ctl sweep mixed)" = "${SW[mixed]}"
t_check "a bad workload is refused" -- bash -c "! '$JOULE_EMU' ctl --root '$FX' work all sprint"
t_check "a CPU that does not exist is refused" -- bash -c "! '$JOULE_EMU' ctl --root '$FX' sweep 9 mixed"
ctl quit >/dev/null
t_done
