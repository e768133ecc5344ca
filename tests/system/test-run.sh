#!/bin/bash
# test-run.sh - `joule run --scenario` on an emulated intel2s node: three steps, each `joule-emu ctl phase`,
# give three phases whose energies equal the emulator's ground truth (the emulator is frozen between
# phases and the runner samples exactly at every phase boundary, so 0.5% is slack); environment variables
# reach the commands; a failing command, a timeout and SIGINT fail the run naming the step and the cause;
# the process group of a timed-out step is killed; the timeline. TAP.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule

emu_start i intel2s --wrap-uj 50000000
ctl freeze >/dev/null

cat >"$T_DIR/three.yml" <<EOF
name: three phases
environment:
  EMU: $JOULE_EMU
  FX: $FX
  OUT: $T_DIR
setup:
  - echo setup > "\$OUT/setup.done"
flow:
  - name: light
    commands: ['"\$EMU" ctl --root "\$FX" phase 0.2 1 > "\$OUT/p1.json"']
  - name: heavy
    commands:
      - '"\$EMU" ctl --root "\$FX" phase \$LOAD 1.5 > "\$OUT/p2.json"'
    environment:
      LOAD: "0.9"
    timeout_s: 30
  - name: medium
    commands:
      - echo "\$LOAD" > "\$OUT/load3.txt"
      - '"\$EMU" ctl --root "\$FX" phase 0.5 1 > "\$OUT/p3.json"'
teardown:
  - echo teardown > "\$OUT/teardown.done"
EOF

in_ns "$FX" "$JOULE" run --scenario "$T_DIR/three.yml" --json --baseline 0.3 --timeline "$T_DIR/three.csv" \
        >"$T_DIR/three.json" 2>"$T_DIR/three.err"
t_ok $? "three steps: joule run exits 0"
J=$(cat "$T_DIR/three.json")
t_check "state FINISHED, no message" -- jtest "$J" 'j["state"] == "FINISHED" and j["message"] == "" and j["name"] == "three phases"'
t_check "phases: [BASELINE], light, heavy, medium, all complete" -- \
        jtest "$J" '[p["name"] for p in j["run"]["phases"]] == ["[BASELINE]", "light", "heavy", "medium"] and all(p["complete"] for p in j["run"]["phases"])'
t_check "each phase's energy equals the emulator's ground truth within 0.5% (total and per domain)" -- \
        "$PY" - "$T_DIR" <<'PYEOF'
import json, sys
d = sys.argv[1]
j = json.load(open(d + "/three.json"))
phases = {p["name"]: p for p in j["run"]["phases"]}
bad = []
for name, f in (("light", "p1"), ("heavy", "p2"), ("medium", "p3")):
    truth = json.load(open(f"{d}/{f}.json"))["energy_uj"]
    p = phases[name]
    want = sum(truth[k] for k in ("package-0", "package-1", "dram-0", "dram-1")) / 1e6
    if not abs(p["energy_j"] - want) <= 0.005 * want:
        bad.append(f"{name}: total {p['energy_j']} J, truth {want} J")
    for dom in p["domains"]:
        w = truth[dom["name"]] / 1e6
        if not abs(dom["energy_j"] - w) <= 0.005 * max(w, 1e-3):
            bad.append(f"{name}/{dom['name']}: {dom['energy_j']} J, truth {w} J")
    print(f"# {name}: {p['energy_j']:.4f} J vs truth {want:.4f} J")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
t_check "the frozen baseline used no energy; durations follow the phases" -- \
        jtest "$J" 'abs(j["run"]["phases"][0]["energy_j"]) < 1e-3 and 0.29 < j["run"]["phases"][0]["duration_s"] < 0.6 and 0.99 < j["run"]["phases"][1]["duration_s"] < 1.6 and 1.49 < j["run"]["phases"][2]["duration_s"] < 2.1'
t_check "power: avg = energy / duration, max >= avg; heavy draws more than light" -- \
        jtest "$J" 'all(p["duration_s"] == 0 or abs(p["power_w"]["avg"] * p["duration_s"] - p["energy_j"]) < 1e-3 * max(p["energy_j"], 1) for p in j["run"]["phases"]) and all(p["power_w"]["max"] >= p["power_w"]["avg"] - 1e-9 for p in j["run"]["phases"]) and j["run"]["phases"][2]["power_w"]["avg"] > j["run"]["phases"][1]["power_w"]["avg"]'
t_check "temperature and CPU utilization per phase (coretemp rises under load; /proc/stat)" -- \
        jtest "$J" 'j["run"]["phases"][2]["temperature_c"]["max"] > j["run"]["phases"][0]["temperature_c"]["max"] and abs(j["run"]["phases"][2]["cpu_utilization"] - 0.9) < 0.15'
t_check "domains: packages, cores, DRAM, psys; energy_j = packages + DRAM" -- \
        jtest "$J" 'all(abs(p["energy_j"] - sum(d["energy_j"] for d in p["domains"] if d["scope"] in ("package", "dram"))) < 1e-6 for p in j["run"]["phases"]) and sorted(d["name"] for d in j["run"]["phases"][1]["domains"]) == ["core-0", "core-1", "dram-0", "dram-1", "package-0", "package-1", "psys"]'
t_check "the step's environment overrides, the scenario's reaches every command" -- \
        test "$(cat "$T_DIR/load3.txt")" = "" -a -s "$T_DIR/p2.json"
t_check "setup and teardown ran" -- test -s "$T_DIR/setup.done" -a -s "$T_DIR/teardown.done"
t_check "system checks recorded (governor, driver, turbo, smt, c-states, steal, suspend)" -- \
        jtest "$J" '[c["name"] for c in j["run"]["system_checks"]] == ["governor", "driver", "turbo", "smt", "c-states", "steal", "suspend"] and j["run"]["suspended_s"] == 0'
t_check "the timeline: energy points of a phase sum to its domain's energy" -- "$PY" - "$T_DIR" <<'PYEOF'
import csv, json, sys
d = sys.argv[1]
j = json.load(open(d + "/three.json"))
rows = list(csv.DictReader(open(d + "/three.csv")))
bad = []
for p in j["run"]["phases"]:
    for dom in p["domains"]:
        s = sum(float(r["value"]) for r in rows if r["phase"] == p["name"] and r["metric"] == dom["name"])
        if abs(s - dom["energy_j"]) > 1e-4 + 1e-6 * dom["energy_j"]:
            bad.append(f'{p["name"]}/{dom["name"]}: timeline {s}, phase {dom["energy_j"]}')
print(len(rows), "rows;", "\n".join(bad))
sys.exit(0 if rows and not bad else 1)
PYEOF

# --- a failing command names the step and the cause; the rest of the flow is skipped; teardown runs ---
cat >"$T_DIR/fail.yml" <<EOF
name: fails
flow:
  - name: prepare
    commands: ["true"]
  - name: compile
    commands: ["true", "exit 2"]
  - name: never
    commands: ["touch $T_DIR/never"]
teardown: ["touch $T_DIR/teardown2"]
EOF
in_ns "$FX" "$JOULE" run --scenario "$T_DIR/fail.yml" --json --baseline 0 >"$T_DIR/fail.json" 2>/dev/null
t_ok $((1 - $?)) "a failing command: joule run exits 1"
J=$(cat "$T_DIR/fail.json")
t_check "message names the step, the command and the status" -- \
        jtest "$J" 'j["state"] == "FAILED" and j["message"] == "step \x27compile\x27: command \x27exit 2\x27 exited with status 2" and j["failed_step"] == "compile"'
t_check "later steps skipped, teardown ran, the failed phase is recorded as cut short" -- \
        bash -c "test ! -e '$T_DIR/never' -a -e '$T_DIR/teardown2'" 
t_check "phases: prepare complete, compile cut short" -- \
        jtest "$J" '[(p["name"], p["complete"]) for p in j["run"]["phases"]] == [("prepare", True), ("compile", False)]'

# --- a timeout kills the step's process group and says so ---
cat >"$T_DIR/timeout.yml" <<EOF
name: slow
flow:
  - name: sleepy
    commands: ["sleep 317 & sleep 318"]
    timeout_s: 1
EOF
SECONDS=0
in_ns "$FX" "$JOULE" run --scenario "$T_DIR/timeout.yml" --json --baseline 0 >"$T_DIR/timeout.json" 2>/dev/null
t_ok $((1 - $?)) "a timeout: joule run exits 1"
t_check "message: step 'sleepy': command ... timed out after 1 s" -- \
        jtest "$(cat "$T_DIR/timeout.json")" 'j["message"] == "step \x27sleepy\x27: command \x27sleep 317 & sleep 318\x27 timed out after 1 s"'
t_check "the whole process group is gone (the background sleep too), within the grace period" -- \
        bash -c "! pgrep -f 'sleep 31[78]' && [ $SECONDS -lt 6 ]"

# --- SIGINT while a phase runs: the group is killed, the run FAILED with the reason, exit 130 ---
cat >"$T_DIR/long.yml" <<EOF
name: long
flow:
  - name: forever
    commands: ["sleep 319"]
teardown: ["touch $T_DIR/teardown3"]
EOF
# (a background job of a script ignores SIGINT, and an ignored signal is discarded: start joule with SIGINT
# at its default, as a terminal or systemd would)
(exec "$NS_RUN" "$FX" -- "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
        "$JOULE" run --scenario "$T_DIR/long.yml" --json --baseline 0 >"$T_DIR/long.json" 2>/dev/null) &
rpid=$!
for _ in $(seq 50); do pgrep -f 'sleep 31[9]' >/dev/null && break; sleep 0.1; done
kill -INT $rpid # the subshell, ns-run.sh and python exec down to joule itself
wait $rpid
t_ok $(($? == 130 ? 0 : 1)) "SIGINT: joule run exits 130"
t_check "SIGINT: the teardown ran, no sleep left" -- bash -c "test -e '$T_DIR/teardown3' && ! pgrep -f 'sleep 31[9]'"
t_check "SIGINT: the message names the step and the signal" -- \
        jtest "$(cat "$T_DIR/long.json")" 'j["state"] == "FAILED" and j["message"].startswith("step \x27forever\x27: interrupted by SIGINT")'

# SIGTERM (systemd's stop without KillSignal=SIGINT) the same way, during the baseline
(exec "$NS_RUN" "$FX" -- "$JOULE" run --scenario "$T_DIR/long.yml" --json --baseline 30 >"$T_DIR/term.json" 2>/dev/null) &
rpid=$!
sleep 0.5
kill -TERM $rpid
wait $rpid
t_ok $(($? == 143 ? 0 : 1)) "SIGTERM during the baseline: joule run exits 143"
t_check "SIGTERM: FAILED in [BASELINE], the flow never started" -- \
        jtest "$(cat "$T_DIR/term.json")" 'j["message"] == "[BASELINE]: interrupted by SIGTERM" and [p["name"] for p in j["run"]["phases"]] == ["[BASELINE]"]'

# --- a bad scenario: file, line and key; nothing runs ---
printf 'name: bad\nflow:\n  - name: a\n    commands: [x]\n    timeot_s: 3\n' >"$T_DIR/bad.yml"
out=$(in_ns "$FX" "$JOULE" run --scenario "$T_DIR/bad.yml" 2>&1)
st=$?
t_check "a bad scenario: exit 1, the error names file, line and key" -- \
        bash -c '[ "$1" = 1 ] && grep -q "bad.yml:5: flow\[0\]: unknown key .timeot_s." <<<"$2"' _ "$st" "$out"

t_done
