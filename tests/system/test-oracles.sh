#!/bin/bash
# test-oracles.sh - joule against real peers on the same fixture trees, in the same mount namespace:
# joule info's raw RAPL joules against node_exporter's node_rapl_*_joules_total and powercap-info's
# energy_uj, and joule's temperatures against `sensors -j` (lm-sensors). The emulator is frozen while the
# readings are compared, so that every reader sees the same counter values. TAP.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule
for tool in prometheus-node-exporter powercap-info sensors; do
        if ! command -v "$tool" >/dev/null; then
                echo "1..0 # SKIP $tool is not installed (apt-get install prometheus-node-exporter powercap-utils lm-sensors)"
                exit 0
        fi
done

# compare_rapl FX TAG: joule info vs node_exporter vs powercap-info, emulator frozen
compare_rapl() {
        local fx=$1 tag=$2 port
        port=$(free_port)
        # node_exporter inside the namespace reads the fixture at the real path
        "$NS_RUN" "$fx" -- prometheus-node-exporter --path.sysfs=/sys --collector.disable-defaults \
                --collector.rapl --collector.hwmon --web.listen-address="127.0.0.1:$port" \
                >"$T_DIR/ne-$tag.log" 2>&1 &
        local ne=$!
        T_PIDS+=($ne)
        local metrics=""
        for _ in $(seq 50); do
                metrics=$("$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "http://127.0.0.1:$port/metrics" 2>/dev/null) && break
                sleep 0.1
        done
        kill $ne 2>/dev/null
        printf '%s\n' "$metrics" > "$T_DIR/ne-$tag.txt"
        in_ns "$fx" "$JOULE" info --json > "$T_DIR/info-$tag.json"
        in_ns "$fx" powercap-info -p intel-rapl > "$T_DIR/pc-$tag.txt"
        t_check "$tag: node_exporter answered" -- grep -q '^node_rapl_package_joules_total' "$T_DIR/ne-$tag.txt"
        t_check "$tag: joule info's raw joules equal node_exporter's node_rapl_*_joules_total" -- \
                "$PY" - "$T_DIR/info-$tag.json" "$T_DIR/ne-$tag.txt" <<'PYEOF'
import json, re, sys
info = json.load(open(sys.argv[1]))
ne = {}
for line in open(sys.argv[2]):
    m = re.match(r'node_rapl_(\w+)_joules_total\{index="(\d+)",path="[^"]*/(intel-rapl:[\d:]+)"\} (\S+)', line)
    if m:
        ne[(m.group(1), m.group(2))] = float(m.group(4))
rapl = [c for c in info["channels"] if c["provider"] == "rapl" and c["kind"] == "energy"]
bad = []
for c in rapl:
    kind, _, idx = c["name"].partition("-")
    key = (kind, idx if kind != "psys" else "0")
    if key not in ne:
        bad.append(f"{c['name']}: not in node_exporter's {sorted(ne)}")
    # joule prints the shortest exact double: the raw counters must agree to the µJ
    elif abs(ne[key] - c["value"]) > 1e-6:
        bad.append(f"{c['name']}: joule {c['value']} J, node_exporter {ne[key]} J")
if len(rapl) != len(ne):
    bad.append(f"joule has {len(rapl)} RAPL channels, node_exporter {len(ne)}")
print("\n".join(bad) or f"{len(rapl)} channels agree")
sys.exit(1 if bad or not rapl else 0)
PYEOF
        t_check "$tag: joule info's raw joules equal powercap-info's energy_uj / 1e6" -- \
                "$PY" - "$T_DIR/info-$tag.json" "$T_DIR/pc-$tag.txt" <<'PYEOF'
import json, re, sys
info = json.load(open(sys.argv[1]))
zones, cur, name = {}, None, {}
for line in open(sys.argv[2]):
    m = re.match(r'\s*Zone ([\d:]+)', line)
    if m:
        cur = m.group(1)
        continue
    m = re.match(r'\s*(name|energy_uj|max_energy_range_uj): (\S+)', line)
    if m and cur is not None:
        zones.setdefault(cur, {})[m.group(1)] = m.group(2)
rapl = [c for c in info["channels"] if c["provider"] == "rapl" and c["kind"] == "energy"]
values = sorted(int(z["energy_uj"]) / 1e6 for z in zones.values() if "energy_uj" in z)
mine = sorted(c["value"] for c in rapl)
ok = len(values) == len(mine) and all(abs(a - b) <= 1e-6 for a, b in zip(values, mine))
ranges = {int(z["max_energy_range_uj"]) for z in zones.values() if "max_energy_range_uj" in z}
ok = ok and all(any(abs(c["wrap_j"] - r / 1e6) <= 1e-6 for r in ranges) for c in rapl if "wrap_j" in c)
print("powercap-info:", values, "\njoule:", mine)
sys.exit(0 if ok and mine else 1)
PYEOF
}

# compare_temps FX TAG: joule's temperature channels vs sensors -j (same chip and label names)
compare_temps() {
        local fx=$1 tag=$2
        in_ns "$fx" sensors -j > "$T_DIR/sensors-$tag.json" 2>/dev/null
        in_ns "$fx" "$JOULE" info --json > "$T_DIR/tinfo-$tag.json"
        t_check "$tag: joule's temperatures equal sensors -j, chip by chip, label by label" -- \
                "$PY" - "$T_DIR/tinfo-$tag.json" "$T_DIR/sensors-$tag.json" <<'PYEOF'
import json, sys
info = json.load(open(sys.argv[1]))
sens = json.load(open(sys.argv[2]))
want = {}
for chip, feats in sens.items():
    for label, sub in feats.items():
        if isinstance(sub, dict):
            for k, v in sub.items():
                if k.startswith("temp") and k.endswith("_input"):
                    want[f"{chip}/{label}"] = v
got = {c["name"]: c["value"] for c in info["channels"] if c["kind"] == "temperature" and c["ok"]}
bad = [f"{k}: joule {got.get(k)}, sensors {v}" for k, v in want.items() if got.get(k) is None or abs(got[k] - v) > 0.001]
bad += [f"{k}: joule only" for k in got if k not in want]
print("\n".join(bad) or f"{len(want)} temperatures agree")
sys.exit(1 if bad or not want else 0)
PYEOF
}

# --- intel2s: at rest, then after a loaded phase that wrapped the counters ---
emu_start i intel2s --wrap-uj 50000000
ctl freeze >/dev/null
compare_rapl "$FX" "intel2s at rest"
compare_temps "$FX" "intel2s at rest"
ctl phase 0.9 1.5 >/dev/null
compare_rapl "$FX" "intel2s after a loaded phase"
compare_temps "$FX" "intel2s after a loaded phase"
ctl set-temp 71.5 >/dev/null
compare_temps "$FX" "intel2s at 71.5 C"
ctl quit >/dev/null

# --- amd: package-0 under intel-rapl, k10temp ---
emu_start a amd
ctl freeze >/dev/null
ctl phase 1 1 >/dev/null
compare_rapl "$FX" "amd"
compare_temps "$FX" "amd"
ctl quit >/dev/null

# --- hwmon-only: temperatures and the power meter ---
emu_start h hwmon-only
ctl load 1 >/dev/null
sleep 0.3
ctl freeze >/dev/null
compare_temps "$FX" "hwmon-only"
in_ns "$FX" sensors -j > "$T_DIR/hs.json" 2>/dev/null
in_ns "$FX" "$JOULE" info --json > "$T_DIR/hi.json"
t_check "hwmon-only: joule's power meter reading equals sensors' power1_average" -- "$PY" - "$T_DIR/hi.json" "$T_DIR/hs.json" <<'PYEOF'
import json, sys
info = json.load(open(sys.argv[1])); sens = json.load(open(sys.argv[2]))
want = sens["power_meter-acpi-0"]["power1"]["power1_average"]
got = [c["value"] for c in info["channels"] if c["kind"] == "power" and c["name"].startswith("power_meter-acpi-0")]
print("joule", got, "sensors", want)
sys.exit(0 if got and abs(got[0] - want) < 0.01 else 1)
PYEOF
ctl quit >/dev/null

t_done
