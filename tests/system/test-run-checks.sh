#!/bin/bash
# test-run-checks.sh - the system checks of `joule run` read the emulated node's cpufreq, turbo, SMT and
# cpuidle files at the real paths and evaluate them against machine.profile; runner.system_checks: fail
# stops a run on a misconfigured machine before its baseline. TAP.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule

printf 'name: checks\nflow:\n  - name: nap\n    commands: ["sleep 0.2"]\n' >"$T_DIR/s.yml"
conf() { # conf NAME PROFILE MODE
        printf 'machine:\n  profile: %s\nrunner:\n  system_checks: %s\n' "$2" "$3" >"$T_DIR/$1.conf"
}
conf bw benchmarking warn
conf bf benchmarking fail
conf pw profiling warn
conf pf profiling fail
run() { # run CONF: joule run --json on $FX, output in $T_DIR/CONF.json
        in_ns "$FX" "$JOULE" -c "$T_DIR/$1.conf" run --scenario "$T_DIR/s.yml" --json --baseline 0.2 \
                >"$T_DIR/$1.json" 2>/dev/null
}
# status of each check as a dict
checks='{c["name"]: c["status"] for c in j["run"]["system_checks"]}'

emu_start i intel2s
CPU=$FX/sys/devices/system/cpu

# --- as created: intel_pstate powersave 800-3000 MHz, turbo on, no SMT, every C-state enabled ---
run bw
t_ok $? "benchmarking/warn on a user-like machine: the run finishes"
J=$(cat "$T_DIR/bw.json")
t_check "benchmarking/warn: governor, turbo, c-states warn; driver, smt, steal, suspend ok" -- \
        jtest "$J" "$checks"' == {"governor": "warn", "driver": "ok", "turbo": "warn", "smt": "ok", "c-states": "warn", "steal": "ok", "suspend": "ok"}'
t_check "observed values come from the emulated files" -- \
        jtest "$J" '{c["name"]: c["observed"] for c in j["run"]["system_checks"]} | {"steal": 0} == {"governor": "powersave (min 800 MHz, max 3000 MHz)", "driver": "intel_pstate", "turbo": "on (intel_pstate/no_turbo)", "smt": "notsupported", "c-states": "enabled: POLL C1 C6", "steal": 0, "suspend": "none"}'
run bf
t_ok $((1 - $?)) "benchmarking/fail on a user-like machine: joule run exits 1"
t_check "benchmarking/fail: FAILED before the baseline, naming the check" -- \
        jtest "$(cat "$T_DIR/bf.json")" 'j["state"] == "FAILED" and j["failed_step"] == "system checks" and j["message"].startswith("system check \x27governor\x27 failed: observed powersave") and j["run"]["phases"] == []'
run pf
t_ok $? "profiling/fail on a user-like machine: the run finishes"
t_check "profiling: every check ok" -- jtest "$(cat "$T_DIR/pf.json")" 'set('"$checks"'.values()) == {"ok"}'

# --- set the node up as the seed's benchmarking machine: fixed frequency, no turbo, only C0 ---
for p in "$CPU"/cpufreq/policy*; do
        echo performance >"$p/scaling_governor"
        echo 2100000 >"$p/scaling_max_freq"
        echo 2100000 >"$p/scaling_min_freq"
done
echo 1 >"$CPU/intel_pstate/no_turbo"
for d in "$CPU"/cpu*/cpuidle/state[12]/disable; do echo 1 >"$d"; done
run bf
t_ok $? "benchmarking/fail on a benchmarking machine: the run finishes"
J=$(cat "$T_DIR/bf.json")
t_check "benchmarking: every check ok" -- jtest "$J" 'set('"$checks"'.values()) == {"ok"} and j["state"] == "FINISHED"'
t_check "observed: fixed frequency, turbo off, only POLL" -- \
        jtest "$J" '{c["name"]: c["observed"] for c in j["run"]["system_checks"]}["governor"] == "performance (min == max == 2100 MHz)" and {c["name"]: c["observed"] for c in j["run"]["system_checks"]}["turbo"] == "off (intel_pstate/no_turbo)" and {c["name"]: c["observed"] for c in j["run"]["system_checks"]}["c-states"] == "enabled: POLL"'
t_check "the emulated CPUs run at the fixed 2100 MHz" -- jtest "$(ctl truth)" 'all(abs(f - 2100000) < 1 for f in j["freq_khz"].values())'
run pf
t_ok $((1 - $?)) "profiling/fail on a benchmarking machine: exit 1"
t_check "profiling/fail: governor fails first" -- \
        jtest "$(cat "$T_DIR/pf.json")" 'j["message"].startswith("system check \x27governor\x27 failed") and j["message"].endswith("(machine.profile profiling)")'
run pw
t_check "profiling/warn: governor, turbo, c-states warn" -- \
        jtest "$(cat "$T_DIR/pw.json")" "$checks"' == {"governor": "warn", "driver": "ok", "turbo": "warn", "smt": "ok", "c-states": "warn", "steal": "ok", "suspend": "ok"} and j["state"] == "FINISHED"'
# the userspace governor is fixed as well, whatever the limits
for p in "$CPU"/cpufreq/policy*; do echo userspace >"$p/scaling_governor"; echo 3000000 >"$p/scaling_max_freq"; done
run bf
t_check "benchmarking: userspace counts as a fixed frequency" -- jtest "$(cat "$T_DIR/bf.json")" "$checks"'["governor"] == "ok"'
# one CPU with another governor
echo powersave >"$CPU/cpufreq/policy2/scaling_governor"
run bw
t_check "governors that differ between CPUs: a breach" -- \
        jtest "$(cat "$T_DIR/bw.json")" "$checks"'["governor"] == "warn" and "not on every CPU" in {c["name"]: c["observed"] for c in j["run"]["system_checks"]}["governor"]'
ctl quit >/dev/null

# --- AMD: acpi-cpufreq ondemand, cpufreq/boost, SMT on ---
emu_start a amd
run pf
t_ok $? "amd, profiling/fail: the run finishes"
t_check "amd, profiling: every check ok (SMT on, boost on, ondemand)" -- jtest "$(cat "$T_DIR/pf.json")" 'set('"$checks"'.values()) == {"ok"}'
run bw
t_check "amd, benchmarking: SMT on and boost on warn" -- \
        jtest "$(cat "$T_DIR/bw.json")" "$checks"'["smt"] == "warn" and '"$checks"'["turbo"] == "warn" and {c["name"]: c["observed"] for c in j["run"]["system_checks"]}["turbo"] == "on (cpufreq/boost)"'
echo 0 >"$FX/sys/devices/system/cpu/smt/active"
echo off >"$FX/sys/devices/system/cpu/smt/control"
echo 0 >"$FX/sys/devices/system/cpu/cpufreq/boost"
run bw
t_check "amd, SMT and boost off: ok" -- jtest "$(cat "$T_DIR/bw.json")" "$checks"'["smt"] == "ok" and '"$checks"'["turbo"] == "ok"'

t_done
