#!/bin/bash
# test-runner-emu.sh - joule-runner on emulated nodes (tests/emu) at the real sysfs paths (tests/ns-run.sh):
# a job of three steps, each `joule-emu ctl phase` on a frozen intel2s, is stored as four phases whose
# energies equal the emulator's ground truth within 0.5% (total and per domain); temperature gating through
# libsensors (coretemp-isa-0000 / Package id 0) on a node that cools over time (cooldown, then the job) and
# one that is too cold (warm-up, then job_error after runner.temperature_max_tries, the job FAILED saying so;
# warm again, the next job runs); the control workload: three good control runs, then one whose energy
# drifts on the emulator trips the check (measurement_control_error, no jobs taken, the admin mailed through
# a real SMTP sink) until `joule machines clear-error`. SQLite. TAP.
# Environment: JOULE, JOULE_RUNNER, JOULE_EMU, NS_RUN, SMTP_SINK.
. "$(dirname "$0")/lib.sh"
t_setup
t_need_joule
: "${JOULE_RUNNER:?JOULE_RUNNER is not set}"
. "$(dirname "$0")/test-queue-lib.sh"
URL=$T_DIR/joule.db
CFG=$T_DIR/joule.yml
BACKEND=sqlite
export STATE_DIRECTORY=$T_DIR/state # the runner's spool, not /var/lib/joule
printf 'database:\n  url: "%s"\n' "$URL" >"$CFG"

until_true() {
        local n=$(($1 * 10))
        shift
        for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
        return 1
}
state_is() { [ "$(sql "SELECT state FROM bench_jobs WHERE id = $1")" = "$2" ]; }
statuses() { sql "SELECT status FROM runner_status WHERE machine_id = $1 ORDER BY id" | tr '\n' ' '; }

# rcfg FILE MACHINE BASE_TEMP [RUNNER YAML LINES...]
rcfg() {
        local f=$1 m=$2 base=$3
        shift 3
        {
                printf 'database:\n  url: "%s"\n' "$URL"
                printf 'machine:\n  id: %s\n  base_temperature_value: %s\n' "$m" "$base"
                printf '  base_temperature_chip: "coretemp-isa-0000"\n  base_temperature_feature: "Package id 0"\n'
                printf 'runner:\n  baseline: 0.3\n  sleep_time_no_job: 0.3\n  sleep_time_after_job: 0\n'
                printf '  temperature_check_interval: 0.5\n'
                for l in "$@"; do printf '  %s\n' "$l"; done
                [ -n "${EXTRA_CFG:-}" ] && printf '%s\n' "$EXTRA_CFG"
        } >"$f"
}
# runner_in FX NAME CFG: joule-runner with FX at the real kernel paths; RPID
runner_in() {
        RUNTIME_DIRECTORY=$T_DIR/rt-$2 "$NS_RUN" "$1" -- "$JOULE_RUNNER" -c "$3" >"$T_DIR/$2.log" 2>&1 &
        RPID=$!
        T_PIDS+=("$RPID")
}
runner_stop() {
        kill -INT "$1" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        wait "$1"
}
temp_of() { "$JOULE_EMU" ctl --root "$1" truth | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["temp_c"]["package-0"])'; }

J db init >/dev/null
for m in 1 2 3 4; do J machines add --id $m --description "emu-$m" >/dev/null; done

# --- three steps: phases and energies against the ground truth ---
emu_start e1 intel2s --wrap-uj 50000000
E1=$FX
ctl freeze >/dev/null
T1=$(temp_of "$E1")
cat >"$T_DIR/three.yml" <<EOF
name: three phases
environment: {EMU: "$JOULE_EMU", FX: "$E1", OUT: "$T_DIR"}
flow:
  - name: light
    commands: ['"\$EMU" ctl --root "\$FX" phase 0.2 1 > "\$OUT/p1.json"']
  - name: heavy
    commands: ['"\$EMU" ctl --root "\$FX" phase 0.9 1.5 > "\$OUT/p2.json"']
  - name: medium
    commands: ['"\$EMU" ctl --root "\$FX" phase 0.5 1 > "\$OUT/p3.json"']
EOF
JOB=$(J submit --machine 1 --scenario "$T_DIR/three.yml")
rcfg "$T_DIR/r1.yml" 1 "$(echo "$T1 + 2" | bc)"
runner_in "$E1" r1 "$T_DIR/r1.yml"
R1=$RPID
until_true 30 state_is "$JOB" FINISHED
t_check "three steps: the job FINISHED" -- state_is "$JOB" FINISHED
t_check "phases stored in order: [BASELINE], light, heavy, medium" -- test \
        "$(sql "SELECT phase FROM phase_stats p JOIN runs r ON r.id = p.run_id WHERE r.job_id = $JOB ORDER BY phase_order" | tr '\n' ' ')" = \
        "[BASELINE] light heavy medium "
sql "SELECT p.phase, p.energy_uj, p.domains_json, p.duration_us, p.avg_power_w FROM phase_stats p JOIN runs r ON r.id = p.run_id WHERE r.job_id = $JOB ORDER BY phase_order" >"$T_DIR/phases.txt"
t_check "each phase's stored energy equals the emulator's ground truth within 0.5% (total and per domain)" -- \
        "$PY" - "$T_DIR" <<'PYEOF'
import json, sys
d = sys.argv[1]
rows = {}
for line in open(d + "/phases.txt"):
    name, uj, dj, dur, avg = line.rstrip("\n").split("|")
    rows[name] = (int(uj), json.loads(dj), int(dur), float(avg))
bad = []
for name, f in (("light", "p1"), ("heavy", "p2"), ("medium", "p3")):
    truth = json.load(open(f"{d}/{f}.json"))["energy_uj"]
    want = sum(truth[k] for k in ("package-0", "package-1", "dram-0", "dram-1"))
    uj, doms, dur, avg = rows[name]
    if abs(uj - want) > 0.005 * want:
        bad.append(f"{name}: {uj} uJ, truth {want} uJ")
    for k, v in doms.items():
        if abs(v - truth[k]) > 0.005 * max(truth[k], 1000):
            bad.append(f"{name}/{k}: {v} uJ, truth {truth[k]} uJ")
    print(f"# {name}: {uj / 1e6:.4f} J vs truth {want / 1e6:.4f} J")
if abs(rows["[BASELINE]"][0]) > 1000:
    bad.append("the frozen baseline used energy")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
t_check "the run: energy = the flow's phases, the timeline stored, system checks recorded" -- test \
        "$(sql "SELECT r.energy_uj = (SELECT SUM(energy_uj) FROM phase_stats WHERE run_id = r.id AND phase <> '[BASELINE]'), (SELECT COUNT(*) FROM measurement_values WHERE run_id = r.id) > 20, r.system_checks_json LIKE '%governor%' FROM runs r WHERE r.job_id = $JOB")" = "1|1|1"
t_check "joule jobs show --json reads the stored run" -- jtest "$(J jobs show "$JOB" --json)" \
        '[p["name"] for p in j["run"]["phases"]] == ["[BASELINE]", "light", "heavy", "medium"] and j["state"] == "FINISHED"'
t_check "the machines row holds the temperature read through libsensors" -- bash -c \
        "[ \"\$(printf '%.0f' \"\$1\")\" = \"\$(printf '%.0f' '$T1')\" ]" _ "$(sql "SELECT current_temperature_c FROM machines WHERE id = 1")"
runner_stop $R1
t_ok $? "the runner stops with exit 0"

# --- a node that cools over time: cooldown, then the job ---
emu_start e2 intel2s --start-temp 70 --ambient 25 --tau 3
E2=$FX
rcfg "$T_DIR/r2.yml" 2 40 "temperature_max_tries: 100"
scen() { printf 'name: %s\nflow:\n  - name: work\n    commands: ["true"]\n' "$2" >"$1"; }
scen "$T_DIR/t.yml" tiny
JOB=$(J submit --machine 2 --scenario "$T_DIR/t.yml")
runner_in "$E2" r2 "$T_DIR/r2.yml"
R2=$RPID
until_true 30 state_is "$JOB" FINISHED
t_check "cooling node: the job FINISHED once the package was at 40 °C or below" -- state_is "$JOB" FINISHED
t_check "runner_status: cooldown (once, not per check), then job_start, job_end" -- bash -c "[[ \"\$1\" == 'cooldown job_start job_end '* ]]" _ "$(statuses 2)"
t_check "the job started at or below the base temperature" -- bash -c "[ \"\$(printf '%.0f' \"\$1\")\" -le 40 ]" _ "$(temp_of "$E2")"
runner_stop $R2 >/dev/null

# --- a node that is too cold: warm-up, job_error after the tries; warm again, the next job runs ---
emu_start e3 intel2s --start-temp 10 --ambient 5 --tau 3
E3=$FX
rcfg "$T_DIR/r3.yml" 3 40 "temperature_max_tries: 2"
JOB=$(J submit --machine 3 --scenario "$T_DIR/t.yml")
runner_in "$E3" r3 "$T_DIR/r3.yml"
R3=$RPID
until_true 20 state_is "$JOB" FAILED
t_check "too cold: warmup, then job_error" -- bash -c "[[ \"\$1\" == 'warmup job_error '* ]]" _ "$(statuses 3)"
t_check "the job FAILED saying why" -- bash -c "[[ \"\$1\" == 'the machine did not reach its base temperature after 2 tries'*'below the base temperature 40.0 °C' ]]" _ \
        "$(sql "SELECT message FROM bench_jobs WHERE id = $JOB")"
ctl ambient 25 >/dev/null
ctl set-temp 34 >/dev/null
JOB=$(J submit --machine 3 --scenario "$T_DIR/t.yml")
until_true 20 state_is "$JOB" FINISHED
t_check "warm again: the next job FINISHED" -- state_is "$JOB" FINISHED
runner_stop $R3 >/dev/null

# --- the control workload: drift on the emulator trips the check, stops intake, mails the admin ---
emu_start e4 intel2s --wrap-uj 50000000
E4=$FX
ctl freeze >/dev/null
T4=$(temp_of "$E4")
echo 0.5 >"$T_DIR/load"
cat >"$T_DIR/control.yml" <<EOF
name: control workload
flow:
  - name: fixed load
    commands: ['"$JOULE_EMU" ctl --root "$E4" phase \$(cat "$T_DIR/load") 1 >/dev/null']
EOF
if "$PY" -c 'import aiosmtpd' 2>/dev/null; then
        SINK_PORT=$(free_port)
        sink_start "$T_DIR/mail"
        MAIL_OK=1
else
        SINK_PORT=9
        MAIL_OK=0
fi
EXTRA_CFG=$(printf 'smtp:\n  server: "smtp://127.0.0.1:%s"\n  starttls: false\n  sender: "joule@cluster.example.org"\n  timeout: 5\nadmin:\n  notification_email: "ops@example.org"' "$SINK_PORT") \
        rcfg "$T_DIR/r4.yml" 4 "$(echo "$T4 + 2" | bc)" "control_workload: \"$T_DIR/control.yml\"" \
        "time_between_control_workload_validations: 0" "control_comparison_window: 3"
runner_in "$E4" r4 "$T_DIR/r4.yml"
R4=$RPID
controls() { sql "SELECT COUNT(*) FROM runs WHERE machine_id = 4 AND kind = 'control'"; }
# (the frozen node does not cool between phases: each control run starts from the same temperature)
for i in 1 2 3; do
        ctl set-temp "$T4" >/dev/null
        J machines revalidate --id 4 >/dev/null
        until_true 20 test "$(controls)" = "$i"
done
t_check "three control runs on request (joule machines revalidate), all good" -- test \
        "$(sql "SELECT COUNT(*) FROM runs WHERE machine_id = 4 AND kind = 'control' AND error IS NULL")|$(sql "SELECT needs_validation FROM machines WHERE id = 4")" = "3|0"
t_check "runner_status: measurement_control_start, measurement_control_end" -- bash -c "[[ \"\$1\" == *'measurement_control_start measurement_control_end'* ]]" _ "$(statuses 4)"
echo 0.8 >"$T_DIR/load"
ctl set-temp "$T4" >/dev/null
J machines revalidate --id 4 >/dev/null
until_true 20 test "$(controls)" = 4
until_true 5 test "$(sql "SELECT status FROM machines WHERE id = 4")" = measurement_control_error
t_check "drifted energy: the machine is in measurement_control_error" -- test \
        "$(sql "SELECT status FROM machines WHERE id = 4")" = measurement_control_error
t_check "the control run is stored with the deviation (energy, relative standard deviation)" -- bash -c "[[ \"\$1\" == *\"phase 'fixed load': energy \"*'relative standard deviation'* ]]" _ \
        "$(sql "SELECT error FROM runs WHERE machine_id = 4 AND kind = 'control' ORDER BY id DESC LIMIT 1")"
JOB=$(J submit --machine 4 --scenario "$T_DIR/t.yml")
sleep 2
t_check "no job is taken while the error stands" -- state_is "$JOB" WAITING
if [ "$MAIL_OK" = 1 ]; then
        until_true 10 test -s "$T_DIR/mail/1.eml"
        t_check "the admin is mailed: to ops@example.org, the machine and the deviation" -- bash -c \
                "grep -q '^To: ops@example.org' '$T_DIR/mail/1.eml' && grep -q 'machine 4' '$T_DIR/mail/1.eml' && grep -q 'relative standard deviation' '$T_DIR/mail/1.eml'"
else
        t_skip "the admin is mailed" "python3-aiosmtpd is not installed"
fi
echo 0.5 >"$T_DIR/load"
ctl set-temp "$T4" >/dev/null
J machines clear-error --id 4 >/dev/null
until_true 20 state_is "$JOB" FINISHED
t_check "joule machines clear-error: the machine takes jobs again" -- state_is "$JOB" FINISHED
t_check "... and the changelog says who did what" -- test \
        "$(sql "SELECT COUNT(*) FROM changelog WHERE machine_id = 4 AND message LIKE '%cleared%'")" = 1
runner_stop $R4
t_ok $? "the runner stops with exit 0"
t_done
