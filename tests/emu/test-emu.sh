#!/bin/bash
# test-emu.sh JOULE_EMU - the emulator's own test: every model lays out its tree, the server advances it
# with exact ground truth, wraps the counters, follows cpufreq writes, heats and cools, takes CPUs offline,
# steps a counter back, and keeps the broken model's bad files bad. TAP.
JOULE_EMU=${1:-$JOULE_EMU}
. "$(dirname "$0")/../system/lib.sh"
t_setup
EMU_TICK_MS=5

# rd FILE: the content of a fixture file
rd() { cat "$FX/$1" 2>/dev/null; }
# msr FILE ADDR: the 64-bit value at ADDR of an MSR device file
msr() { "$PY" -c 'import os,sys,struct; fd=os.open(sys.argv[1], os.O_RDONLY); print(struct.unpack("<Q", os.pread(fd, 8, int(sys.argv[2], 0)))[0])' "$FX/$1" "$2"; }

# --- layouts of every model ---
for m in intel2s amd hwmon-only broken; do
        t_check "create $m" -- "$JOULE_EMU" create --node "$m" --root "$T_DIR/lay-$m"
done
L=$T_DIR/lay-intel2s
t_check "intel2s: class links point at the real zone directories" -- \
        test "$(readlink "$L/sys/class/powercap/intel-rapl:1:1")" = intel-rapl/intel-rapl:1/intel-rapl:1:1
t_check "intel2s: zones package-0 core dram package-1 core dram psys" -- test "$(cat "$L"/sys/class/powercap/intel-rapl:{0,0:0,0:1,1,1:0,1:1,2}/name | tr '\n' ' ')" = "package-0 core dram package-1 core dram psys "
t_check "intel2s: coretemp labels" -- test "$(cat "$L"/sys/class/hwmon/hwmon1/temp{1,2}_label | tr '\n' ' ')" = "Package id 1 Core 0 "
t_check "intel2s: cpufreq and topology" -- test "$(cat "$L"/sys/devices/system/cpu/cpu3/{cpufreq/scaling_driver,topology/physical_package_id,online} | tr '\n' ' ')" = "intel_pstate 1 1 "
t_check "intel2s: vendor in /proc/cpuinfo" -- grep -q "vendor_id.*GenuineIntel" "$L/proc/cpuinfo"
t_check "create intel2s --power-scale 5" -- "$JOULE_EMU" create --node intel2s --root "$T_DIR/lay-x5" --power-scale 5
t_check "--power-scale 5: the package's stated max power is 5x (500 W)" -- \
        test "$(cat "$T_DIR/lay-x5/sys/class/powercap/intel-rapl:0/constraint_0_max_power_uw")" = 500000000
t_check "--power-scale 5 is kept in emu.conf" -- grep -qx "power_scale 5.000000" "$T_DIR/lay-x5/emu.conf"
L=$T_DIR/lay-amd
t_check "amd: package under intel-rapl, k10temp Tctl, acpi-cpufreq with boost" -- test "$(cat "$L"/sys/class/powercap/intel-rapl:0/name "$L"/sys/class/hwmon/hwmon0/{name,temp1_label} "$L"/sys/devices/system/cpu/{cpufreq/boost,cpu0/cpufreq/scaling_driver} | tr '\n' ' ')" = "package-0 k10temp Tctl 1 acpi-cpufreq "
L=$T_DIR/lay-hwmon-only
t_check "hwmon-only: no powercap, no msr, a power meter" -- test ! -e "$L/sys/class/powercap" -a ! -e "$L/dev/cpu/0/msr" -a "$(cat "$L/sys/class/hwmon/hwmon1/name")" = power_meter
L=$T_DIR/lay-broken
t_check "broken: empty, garbage, negative, missing range, zero range, missing name" -- test \
        ! -s "$L/sys/class/powercap/intel-rapl:0:0/energy_uj" -a "$(cat "$L/sys/class/powercap/intel-rapl:0:1/energy_uj")" = '12ab!?' \
        -a "$(cat "$L/sys/class/powercap/intel-rapl:1/energy_uj")" = -42 -a ! -e "$L/sys/class/powercap/intel-rapl:1:1/max_energy_range_uj" \
        -a "$(cat "$L/sys/class/powercap/intel-rapl:2/max_energy_range_uj")" = 0 -a ! -e "$L/sys/class/powercap/intel-rapl:3/name"

# --- intel2s served, small wrap ---
WRAP=3000000
emu_start i intel2s --wrap-uj $WRAP
t_ok $? "serve intel2s"
e0=$(rd sys/class/powercap/intel-rapl:0/energy_uj)
sleep 0.2
e1=$(rd sys/class/powercap/intel-rapl:0/energy_uj)
t_check "counters advance at idle" -- test "$e0" != "$e1"
ctl freeze >/dev/null
a=$(rd sys/class/powercap/intel-rapl:0/energy_uj); sleep 0.2; b=$(rd sys/class/powercap/intel-rapl:0/energy_uj)
t_check "frozen counters stand still" -- test "$a" = "$b"
m0=$(msr dev/cpu/2/msr 0x611)
truth0=$(ctl truth)
ph=$(ctl phase 0.8 1.5)
truth1=$(ctl truth)
m1=$(msr dev/cpu/2/msr 0x611)
t_check "phase reports ground truth per domain" -- jtest "$ph" 'j["energy_uj"]["package-0"] > 0 and j["energy_uj"]["psys"] > j["energy_uj"]["package-0"]'
t_check "phase: truth moved exactly by the phase (frozen before and after)" -- jtest "$truth1" "all(j['energy_uj'][k] - json.loads('''$truth0''')['energy_uj'][k] == json.loads('''$ph''')['energy_uj'][k] for k in j['energy_uj'])"
t_check "the counters crossed several wraps" -- jtest "$ph" "j['energy_uj']['package-0'] > 3 * $WRAP"
t_check "energy_uj files hold (offset + truth) mod range" -- jtest "$truth1" "all(j['counter_uj'][k] == int(open('$FX/sys/class/powercap/' + z + '/energy_uj').read()) for k, z in [('package-0','intel-rapl:0'), ('dram-1','intel-rapl:1:1'), ('psys','intel-rapl:2')])"
t_check "package power follows idle + load x dyn x f/fmax" -- jtest "$ph" 'abs(j["energy_j"]["package-1"] / j["seconds"] - (20 + 0.8 * 80 * (800000 + 0.8 * 2200000) / 3000000)) < 0.01'
t_check "MSR PKG counter advanced by the truth in 1/2^14 J units" -- "$PY" -c "
import json,sys; ph=json.loads('''$ph'''); d=($m1 - $m0) % 2**32
sys.exit(0 if abs(d * 1e6 / 2**14 - ph['energy_uj']['package-1']) < 200 else print(d * 1e6 / 2**14, ph['energy_uj']['package-1']) or 1)"
t_check "MSR unit register: ESU 14" -- test $(( ($(msr dev/cpu/0/msr 0x606) >> 8) & 31 )) -eq 14
# 0x614 overlaps the counters 0x611 and 0x619 in a file: it must read as implausible (a reserved bit set)
t_check "MSR_PKG_POWER_INFO (made of counter bytes) has its reserved bit 15 set" -- \
        test $(( ($(msr dev/cpu/0/msr 0x614) >> 15) & 1 )) -eq 1
t_check "temperature rose under load" -- jtest "$truth1" 'j["temp_c"]["package-0"] > 35'
hw=$(( $(rd sys/class/hwmon/hwmon0/temp1_input) ))
t_check "coretemp file follows the model" -- jtest "$truth1" "abs(j['temp_c']['package-0'] * 1000 - $hw) <= 1"

# cpufreq: scaling_max_freq and scaling_setspeed writes move scaling_cur_freq
ctl thaw >/dev/null
ctl load 1 >/dev/null
echo 1200000 > "$FX/sys/devices/system/cpu/cpu1/cpufreq/scaling_max_freq"
echo 1000000 > "$FX/sys/devices/system/cpu/cpu2/cpufreq/scaling_setspeed"
sleep 0.2
t_check "scaling_cur_freq follows scaling_max_freq (1.2 GHz) and setspeed (1.0 GHz), others at max" -- \
        test "$(rd sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq) $(rd sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq) $(rd sys/devices/system/cpu/cpu2/cpufreq/scaling_cur_freq)" = "3000000 1200000 1000000"
echo 1 > "$FX/sys/devices/system/cpu/intel_pstate/no_turbo"
sleep 0.2
t_check "no_turbo caps at the base frequency" -- test "$(rd sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq)" = 2100000
t=$(ctl truth)
t_check "package power follows the mean frequency (2.1 and 1.2 GHz of 3.0)" -- jtest "$t" 'abs(j["power_w"]["package-0"] - (20 + 80 * 1.65 / 3.0)) < 1e-6'
t_check "proc/stat counts busy time under load" -- test "$(awk '/^cpu0 /{print ($2 > 1000)}' "$FX/proc/stat")" = 1

# cooling
ctl load 0 >/dev/null
ctl set-temp 80 >/dev/null
ctl ambient 20 >/dev/null
sleep 0.5
t=$(ctl truth)
t_check "temperature falls toward ambient" -- jtest "$t" '20 < j["temp_c"]["package-0"] < 79'

# backwards
# frozen first: with a 3 J range the counter wraps every 0.15 s at idle, so a slow build could see a wrap
# between the two reads
ctl freeze >/dev/null
before=$(rd sys/class/powercap/intel-rapl:1/energy_uj)
t_check "backwards steps a counter back" -- ctl backwards package-1
after=$(rd sys/class/powercap/intel-rapl:1/energy_uj)
t_check "the counter went back, not through a wrap" -- test "$after" -lt "$before"
ctl thaw >/dev/null

# offline
t_check "offline 3" -- ctl offline 3
t_check "cpu3 is offline: online list, cpu3/online, cpufreq and msr gone" -- test "$(rd sys/devices/system/cpu/online) $(rd sys/devices/system/cpu/cpu3/online)" = "0-2 0" -a ! -e "$FX/sys/devices/system/cpu/cpu3/cpufreq" -a ! -e "$FX/dev/cpu/3/msr"
t_check "offline CPU leaves /proc/stat" -- bash -c "! grep -q '^cpu3 ' '$FX/proc/stat'"
t_check "a bad command is an error" -- bash -c "! '$JOULE_EMU' ctl --root '$FX' frobnicate"
t_check "quit" -- ctl quit

# --- amd ---
emu_start a amd --msr-esu 16
t_ok $? "serve amd"
ctl freeze >/dev/null
m0=$(msr dev/cpu/0/msr 0xC001029B)
ph=$(ctl phase 1 0.5)
m1=$(msr dev/cpu/0/msr 0xC001029B)
t_check "amd: MSR unit ESU 16 at 0xC0010299" -- test $(( ($(msr dev/cpu/0/msr 0xC0010299) >> 8) & 31 )) -eq 16
t_check "amd: PKG MSR 0xC001029B advanced by the truth" -- "$PY" -c "
import json,sys; ph=json.loads('''$ph'''); d=($m1 - $m0) % 2**32
sys.exit(0 if abs(d * 1e6 / 2**16 - ph['energy_uj']['package-0']) < 100 else 1)"
t_check "amd: Tctl rose" -- test "$(rd sys/class/hwmon/hwmon0/temp1_input)" -gt 32000
ctl quit >/dev/null

# --- hwmon-only ---
emu_start h hwmon-only
ctl load 1 >/dev/null
sleep 0.1
t=$(ctl truth)
pw=$(rd sys/class/hwmon/hwmon1/power1_average)
t_check "hwmon-only: power1_average (µW) follows the node power" -- jtest "$t" "abs(j['power_w']['node'] * 1e6 - $pw) < 2e6 and j['power_w']['node'] > 50"
ctl quit >/dev/null

# --- broken ---
emu_start b broken
sleep 0.2
t_check "broken: bad files stay bad while served" -- test "$(rd sys/class/powercap/intel-rapl:0:1/energy_uj) $(rd sys/class/powercap/intel-rapl:1/energy_uj) $(rd sys/class/hwmon/hwmon0/temp1_input) $(rd sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq)" = '12ab!? -42 hot fast'
t=$(ctl truth)
t_check "broken: the good package still advances" -- jtest "$t" 'j["energy_uj"]["package-0"] > 0'
ctl quit >/dev/null

t_done
