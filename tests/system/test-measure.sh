#!/bin/bash
# test-measure.sh - `joule measure --json` on every emulated node model. The emulator is frozen except
# during a `phase`, and joule samples right before it starts the command and right after it exits, so
# each domain's energy must equal the emulator's ground truth for the phase (0.5% allowed; it is exact to
# the µJ with powercap). With a small --wrap-uj the counters wrap many times within the run. TAP.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule

# measure FX OUT PHASE_ARGS... [-- joule options]: joule measure --json around `ctl phase`, the phase's
# truth in OUT.phase; joule's JSON in OUT; returns joule's exit code.
measure() {
        local fx=$1 out=$2 load=$3 secs=$4 rc=${5:-0}
        shift 5
        in_ns "$fx" "$JOULE" measure --json "$@" -- \
                sh -c "'$JOULE_EMU' ctl --root '$fx' phase $load $secs > '$out.phase'; exit $rc" > "$out"
}

# close_to OUT DOMAIN... : each domain's energy within 0.5% of the phase's truth
close_to() {
        local out=$1
        shift
        "$PY" - "$out" "$@" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); ph = json.load(open(sys.argv[1] + ".phase"))
dom = {d["name"]: d for d in j["domains"]}
bad = []
for name in sys.argv[2:]:
    prov = None
    if "@" in name:
        name, prov = name.split("@")
    want = ph["energy_uj"][name] / 1e6
    d = dom.get(name)
    if d is None or (prov and d["provider"] != prov):
        bad.append(f"{name}: missing in joule's domains {sorted(dom)}")
    elif not abs(d["energy_j"] - want) <= 0.005 * want:
        bad.append(f"{name}: joule {d['energy_j']} J, truth {want} J ({(d['energy_j'] / want - 1) * 100:+.3f}%)")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PYEOF
}

# --- intel2s, small wrap: many wraps within 3 s ---
emu_start i intel2s --wrap-uj 20000000
ctl freeze >/dev/null
measure "$FX" "$T_DIR/i.json" 0.8 3 0 --interval 20 --timeline "$T_DIR/i.csv"
t_ok $? "intel2s: joule measure exits 0"
J=$(cat "$T_DIR/i.json")
t_check "intel2s: every domain equals the emulator's ground truth within 0.5% across wraps" -- \
        close_to "$T_DIR/i.json" package-0@rapl core-0 dram-0 package-1 core-1 dram-1 psys
t_check "intel2s: the counters wrapped many times and joule saw each wrap" -- \
        jtest "$J" 'min(d["wraps"] for d in j["domains"] if d["name"].startswith("package")) >= 8'
# (a read may rarely land between the emulator's pwrite and ftruncate and see "12\n99": one failed reading,
# bridged by the next one without losing energy)
t_check "intel2s: no glitches, at most 2 failed readings per domain" -- jtest "$J" 'all(d["glitches"] == 0 and d["errors"] <= 2 for d in j["domains"])'
t_check "intel2s: energy_j = packages + DRAM (core, psys listed, not summed)" -- \
        jtest "$J" 'abs(j["energy_j"] - sum(d["energy_j"] for d in j["domains"] if d["scope"] in ("package", "dram"))) < 1e-6 and j["energy_source"] == "domains" and not j["estimated"]'
t_check "intel2s: scopes" -- jtest "$J" '[d["scope"] for d in j["domains"]] == ["package", "subdomain", "dram", "package", "subdomain", "dram", "node"]'
t_check "intel2s: average power = energy / duration, max >= avg" -- \
        jtest "$J" 'all(abs(d["power_w"]["avg"] * j["duration_s"] - d["energy_j"]) < 1e-3 * d["energy_j"] and d["power_w"]["max"] >= d["power_w"]["avg"] for d in j["domains"])'
t_check "intel2s: duration about 3 s" -- jtest "$J" '2.95 < j["duration_s"] < 3.6'
t_check "intel2s: temperature rose with the load (coretemp)" -- jtest "$J" 'j["temperature_c"]["max"] > 40'
t_check "intel2s: frequency follows the demand governor (2560 MHz at 80%)" -- jtest "$J" 'abs(j["frequency_mhz"]["avg"] - 2560) < 50'
t_check "intel2s: CPU utilization from /proc/stat near 0.8" -- jtest "$J" 'abs(j["cpu_utilization"] - 0.8) < 0.1'
t_check "intel2s: samples at the interval" -- jtest "$J" 'j["samples"] >= 100 and j["interval_ms"] == 20'
t_check "intel2s: the timeline's last row holds the totals" -- "$PY" - "$T_DIR/i.csv" "$T_DIR/i.json" <<'PYEOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1]))); j = json.load(open(sys.argv[2]))
last = rows[-1]
bad = [d["name"] for d in j["domains"] if abs(float(last[d["name"] + "_energy_j"]) - d["energy_j"]) > 1e-3]
print(len(rows), "rows; mismatched:", bad)
sys.exit(0 if len(rows) == j["samples"] and not bad else 1)
PYEOF

# the same node through the MSRs (rapl-msr, 1/2^14 J units); the 32-bit counters start 30 J before their wrap
ctl quit >/dev/null
emu_start im intel2s --msr-wrap-in 30
ctl freeze >/dev/null
measure "$FX" "$T_DIR/im.json" 0.8 2 0 --interval 20 --providers rapl-msr
t_ok $? "intel2s via MSR: joule measure exits 0"
t_check "intel2s via MSR: PKG, PP0, DRAM, PSYS equal the ground truth within 0.5% across 32-bit wraps" -- \
        close_to "$T_DIR/im.json" package-0@rapl-msr package-1@rapl-msr core-0 dram-1 psys
t_check "intel2s via MSR: the package counters wrapped" -- jtest "$(cat "$T_DIR/im.json")" 'min(d["wraps"] for d in j["domains"] if d["scope"] == "package") >= 1'
ctl quit >/dev/null

# --- amd: package under intel-rapl, k10temp, acpi-cpufreq; exit code passed through ---
emu_start a amd --wrap-uj 20000000
ctl freeze >/dev/null
measure "$FX" "$T_DIR/a.json" 1 2 7 --interval 25
t_ok $(($? != 7)) "amd: joule exits with the command's exit code 7"
J=$(cat "$T_DIR/a.json")
t_check "amd: exit_code 7 in the JSON" -- jtest "$J" 'j["exit_code"] == 7'
t_check "amd: package-0 equals the ground truth" -- close_to "$T_DIR/a.json" package-0@rapl
t_check "amd: Tctl temperature and acpi-cpufreq frequency (4.2 GHz at full load with boost)" -- \
        jtest "$J" 'any(s["name"].endswith("/Tctl") for s in j["sensors"]) and abs(j["frequency_mhz"]["avg"] - 4200) < 50'
measure "$FX" "$T_DIR/am.json" 1 1 0 --interval 25 --providers rapl-msr
t_check "amd via MSR (0xC001029B, ESU 16): package-0 equals the ground truth" -- close_to "$T_DIR/am.json" package-0@rapl-msr
ctl quit >/dev/null

# --- hwmon-only: no RAPL; temperatures, the ACPI power meter ---
emu_start h hwmon-only
ctl freeze >/dev/null
measure "$FX" "$T_DIR/h.json" 0.5 2 3 --interval 50
t_ok $(($? != 3)) "hwmon-only: exit code 3 passed through"
J=$(cat "$T_DIR/h.json")
t_check "hwmon-only: a note says why there is no RAPL" -- jtest "$J" 'any(n["subject"] == "rapl" and "powercap" in n["reason"] for n in j["notes"])'
t_check "hwmon-only: coretemp temperatures" -- jtest "$J" 'j["temperature_c"] is not None and any(s["name"] == "coretemp-isa-0000/Package id 0" for s in j["sensors"])'
PH=$(cat "$T_DIR/h.json.phase")
t_check "hwmon-only: the power meter's mean power is the node's power" -- \
        jtest "$J" "any(s['kind'] == 'power' and s['name'].startswith('power_meter') and abs(s['mean'] - $(jget "$PH" 'j["energy_j"]["node"] / j["seconds"]')) < 0.05 * s['mean'] for s in j['sensors'])"
t_check "hwmon-only: total energy is never negative or absurd" -- jtest "$J" '0 < j["energy_j"] < 1e5'
node_j=$(jget "$PH" 'j["energy_j"]["node"]')
if jtest "$J" "j['energy_source'] == 'node' and abs(j['energy_j'] - $node_j) < 0.02 * $node_j" >/dev/null; then
        t_ok 0 "hwmon-only: node energy measured by integrating the power meter"
else
        T_N=$((T_N + 1))
        echo "not ok $T_N - hwmon-only: node energy measured by integrating the power meter # TODO the hwmon power meter is not used as a whole-node energy source yet (energy_source $(jget "$J" 'j["energy_source"]'))"
fi
ctl quit >/dev/null

# --- broken: no crash, the child's exit code, notes naming every bad file, no absurd energy ---
emu_start b broken
ctl freeze >/dev/null
measure "$FX" "$T_DIR/b.json" 0.5 1 5 --interval 50
t_ok $(($? != 5)) "broken: no crash; exit code 5 passed through"
J=$(cat "$T_DIR/b.json")
t_check "broken: the one good zone is measured exactly" -- close_to "$T_DIR/b.json" package-0@rapl
t_check "broken: no negative or absurd energy" -- jtest "$J" 'all(0 <= d["energy_j"] < 1e4 for d in j["domains"]) and 0 < j["energy_j"] < 1e4'
for f in intel-rapl:0:0/energy_uj intel-rapl:0:1/energy_uj intel-rapl:1/energy_uj intel-rapl:1:0/energy_uj \
        intel-rapl:1:1/max_energy_range_uj intel-rapl:2/max_energy_range_uj intel-rapl:3 hwmon0/temp1_input \
        cpu0/cpufreq/scaling_cur_freq cpu1/cpufreq/scaling_cur_freq cpu2/cpufreq/scaling_cur_freq; do
        t_check "broken: a note names $f" -- jtest "$J" "any('$f' in n['reason'] for n in j['notes'])"
done
t_check "broken: joule info lists the good channels and does not crash" -- bash -c \
        "in_ns() { '$NS_RUN' \"\$1\" -- \"\${@:2}\"; }; in_ns '$FX' '$JOULE' info --json > '$T_DIR/bi.json'"
t_check "broken: joule info: package-0 ok, notes for the bad zones" -- \
        jtest "$(cat "$T_DIR/bi.json")" 'any(c["name"] == "package-0" and c["ok"] for c in j["channels"]) and sum(n["subject"].startswith("rapl") for n in j["notes"]) >= 6'
ctl quit >/dev/null

t_done
