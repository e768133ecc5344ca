#!/bin/bash
# test-run-calibrate.sh - `joule calibrate` on an emulated intel2s node with short durations: the idle
# baseline matches the emulator's idle (power, temperature), the load (the emulator's own `phase` as the
# load command) heats the packages, the temperature falls back within 1 °C of idle, and the recommended
# settings follow from them; --write stores them as a YAML snippet that joule's configuration loader
# accepts and in the machine's row (machines show / list, the changelog), and fails for a machine that is not
# in the database. TAP.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule

# tau 1 s: the package cools back within seconds; start at the idle equilibrium (30 + 0.4 × 20 W = 38 °C)
emu_start c intel2s --tau 1 --start-temp 38
printf 'database:\n  url: "%s"\nmachine:\n  id: 5\n  base_temperature_chip: coretemp-isa-0000\n  base_temperature_feature: Package id 0\n' \
        "$T_DIR/joule.db" >"$T_DIR/c.conf"
"$JOULE" -c "$T_DIR/c.conf" db init >/dev/null && "$JOULE" -c "$T_DIR/c.conf" machines add --id 5 --description m5 >/dev/null
t_ok $? "a database with machine 5"
SECONDS=0
in_ns "$FX" "$JOULE" -c "$T_DIR/c.conf" calibrate --json --idle 2 --load 3 --cool-max 40 \
        --load-command "'$JOULE_EMU' ctl --root '$FX' phase 1 3 >/dev/null" --write "$T_DIR/snippet.yml" \
        >"$T_DIR/c.json" 2>"$T_DIR/c.err"
t_ok $? "joule calibrate exits 0"
t_ok $(($SECONDS < 40 ? 0 : 1)) "it took $SECONDS s (bounded)"
J=$(cat "$T_DIR/c.json")
t_check "idle: the emulator's idle power (2 × 20 W packages + 2 × 3 W DRAM) and 38 °C" -- \
        jtest "$J" 'abs(j["idle"]["power_w"]["mean"] - 46) < 4 and abs(j["idle"]["temperature_c"]["mean"] - 38) < 0.5 and j["idle"]["temperature_c"]["sd"] < 0.5'
t_check "the sampling overhead is measured, small, and more than not sampling" -- \
        jtest "$J" '0 <= j["overhead"]["cpu_not_sampling"] <= j["overhead"]["cpu_sampling"] < 0.05'
t_check "load: full power (2 × 100 W + 2 × 10 W) and the packages heat up" -- \
        jtest "$J" 'j["load"]["ok"] and abs(j["load"]["power_w"]["avg"] - 220) < 15 and j["load"]["temperature_c"]["max"] > 55 and 2.9 < j["load"]["duration_s"] < 4'
t_check "the temperature falls back within 1 °C of idle, within seconds" -- \
        jtest "$J" 'j["cooldown"]["reached"] and 0.5 < j["cooldown"]["duration_s"] < 20'
t_check "recommended: base temperature = ceil(idle + max(1, 2 sd)), sleep = ceil(1.1 × cool-down)" -- \
        jtest "$J" 'j["recommended"]["base_temperature_value"] == 39 and j["recommended"]["sleep_time_after_job"] == __import__("math").ceil(1.1 * j["cooldown"]["duration_s"])'
t_check "--write: a snippet with both settings" -- \
        bash -c "grep -qx '  base_temperature_value: 39' '$T_DIR/snippet.yml' && grep -q '^  sleep_time_after_job: [0-9]*$' '$T_DIR/snippet.yml'"
M=$("$JOULE" -c "$T_DIR/c.conf" machines show --id 5 --json)
t_check "--write: the calibration is stored in the machine's row (machines show --json)" -- "$PY" -c '
import json, sys
m, c = json.loads(sys.argv[1]), json.loads(sys.argv[2])
k = m["calibration"]
sys.exit(0 if k["base_temperature_value"] == 39 and k["sleep_time_after_job"] == c["recommended"]["sleep_time_after_job"]
         and k["report"]["recommended"] == c["recommended"] and k["time"].endswith("Z") else 1)' "$M" "$J"
t_check "... machines show and list print it" -- bash -c "
        '$JOULE' -c '$T_DIR/c.conf' machines show --id 5 | grep -q '^calibrated:  .*: base_temperature_value 39, sleep_time_after_job [0-9]*$' &&
        '$JOULE' -c '$T_DIR/c.conf' machines list | grep -q 'calibrated: base_temperature_value 39'"
t_check "... and the changelog says so" -- "$PY" -c '
import sqlite3, sys
n = sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM changelog WHERE machine_id = 5 AND message LIKE ?", ("joule calibrate: base_temperature_value 39, %",)).fetchone()[0]
sys.exit(0 if n == 1 else 1)' "$T_DIR/joule.db"
sed 's/  id: 5/  id: 6/' "$T_DIR/c.conf" >"$T_DIR/c6.conf"
in_ns "$FX" "$JOULE" -c "$T_DIR/c6.conf" calibrate --json --idle 0.5 --load 0.5 --cool-max 1 --load-command true \
        --write "$T_DIR/snippet6.yml" >/dev/null 2>"$T_DIR/c6.err"
RC=$?
t_check "--write for a machine not in the database: exit 1 saying so, the file written still" -- bash -c \
        "[ $RC = 1 ] && grep -q 'machine 6 (machine.id) does not exist in the database' '$T_DIR/c6.err' && test -s '$T_DIR/snippet6.yml'"
printf 'name: n\nflow: [{name: a, commands: ["true"]}]\n' >"$T_DIR/n.yml"
t_check "the snippet is a valid joule configuration" -- \
        "$JOULE" -c "$T_DIR/snippet.yml" run --scenario "$T_DIR/n.yml" --baseline 0 --json

# a cool-down that never comes: bounded by --cool-max, said so
ctl ambient 80 >/dev/null
in_ns "$FX" "$JOULE" -c "$T_DIR/c.conf" calibrate --json --idle 1 --load 1 --cool-max 2 \
        --load-command "'$JOULE_EMU' ctl --root '$FX' phase 1 1 >/dev/null" >"$T_DIR/hot.json" 2>/dev/null
t_ok $? "a machine that keeps heating: calibrate still ends"
t_check "cool-down not reached, bounded by --cool-max" -- \
        jtest "$(cat "$T_DIR/hot.json")" 'not j["cooldown"]["reached"] and 1.9 < j["cooldown"]["duration_s"] < 3'

# a failing load is reported, not hidden
in_ns "$FX" "$JOULE" calibrate --json --idle 0.5 --load 1 --cool-max 1 --load-command "exit 3" \
        >"$T_DIR/bad.json" 2>/dev/null
t_check "a failing load command: reported with its status" -- \
        jtest "$(cat "$T_DIR/bad.json")" 'not j["load"]["ok"] and j["load"]["message"] == "step \x27load\x27: command \x27exit 3\x27 exited with status 3"'

t_done
