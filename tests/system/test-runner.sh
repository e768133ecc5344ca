#!/bin/bash
# test-runner.sh - joule-runner and cron mode (`joule jobs run`) against a real database: SQLite, or
# $JOULE_TEST_DATABASE_URL under tests/with-postgres.sh. Two runners for two machines run only their own jobs;
# two runners of the same machine (separate lock directories: only the atomic claim keeps them apart) race
# over 50 jobs and run each exactly once, the second starting while the first measures and leaving its job
# alone; stale jobs failed only when their recorded claimer is provably gone; a job's output tail; status
# rows only on change; the machines row; SIGINT during a job (FAILED "stopped by SIGINT", exit 0); kill -9
# during a job and a restart (the stale job FAILED, the next one runs); cron mode and its lock against a
# runner; a repository job (git clone --branch, joule.yml) and one without joule.yml; a job's e-mail and
# reminders of a control-workload error through a real SMTP sink; bad input (an unknown machine id, a
# malformed scenario stored in a job, a job for a machine that does not exist). On PostgreSQL also: NOTIFY
# wakes an idle runner at once, the database stopped at start and in the middle of a job (the runner
# retries, reconnects, and stores the run: nothing lost), and kill -9 while it is stopped with a finished run
# in the spool (stored once after a restart). TAP.
# Environment: JOULE, JOULE_RUNNER, SMTP_SINK.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-queue-lib.sh"
q_setup jr
: "${JOULE_RUNNER:?JOULE_RUNNER is not set}"
T_DIR=$(cd "$T_DIR" && pwd)

# rcfg FILE MACHINE [YAML LINES for the runner section...]: a runner configuration with short sleeps
rcfg() {
        local f=$1 m=$2
        shift 2
        {
                printf 'database:\n  url: "%s"\n' "$URL"
                printf 'machine:\n  id: %s\n' "$m"
                printf 'runner:\n  baseline: 0\n  sleep_time_no_job: 0.3\n  sleep_time_after_job: 0\n'
                for l in "$@"; do printf '  %s\n' "$l"; done
                [ -n "${EXTRA_CFG:-}" ] && printf '%s\n' "$EXTRA_CFG"
        } >"$f"
}

# runner_start NAME CFG: start joule-runner in the background (its own lock directory unless LOCKDIR is
# set); sets RPID. Output in $T_DIR/NAME.log.
runner_start() {
        RUNTIME_DIRECTORY=${LOCKDIR:-$T_DIR/rt-$1} "$JOULE_RUNNER" -c "$2" >"$T_DIR/$1.log" 2>&1 &
        RPID=$!
        T_PIDS+=("$RPID")
}

# runner_stop PID: SIGINT, bounded wait; prints the exit status
runner_stop() {
        kill -INT "$1" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        wait "$1"
}

# until_true SECONDS CMD...: bounded wait until CMD succeeds
until_true() {
        local n=$(($1 * 10))
        shift
        for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
        return 1
}
state_is() { [ "$(sql "SELECT state FROM bench_jobs WHERE id = $1")" = "$2" ]; }
no_waiting() { [ "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE state IN ('WAITING', 'RUNNING')")" = 0 ]; }

scen() { # scen FILE NAME CMD: a one-step scenario
        printf 'name: %s\nflow:\n  - name: work\n    commands: [%s]\n' "$2" "$3" >"$1"
}

t_check "joule db init ($BACKEND)" -- J db init
J machines add --id 1 --description "bench-01" >/dev/null
J machines add --id 2 --description "bench-02" >/dev/null

# --- two runners, two machines: each runs only its own jobs ---
for m in 1 2; do
        for i in 1 2 3; do
                scen "$T_DIR/m$m-$i.yml" "m$m-$i" "\"echo $m-$i >> $T_DIR/own.txt\""
                J submit --machine $m --scenario "$T_DIR/m$m-$i.yml" >>"$T_DIR/ids-$m"
        done
done
rcfg "$T_DIR/r1.yml" 1
rcfg "$T_DIR/r2.yml" 2
runner_start a1 "$T_DIR/r1.yml"
A1=$RPID
runner_start a2 "$T_DIR/r2.yml"
A2=$RPID
until_true 30 no_waiting
t_check "two machines: all six jobs FINISHED" -- test \
        "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE state = 'FINISHED'")" = 6
t_check "each runner ran only its machine's jobs (runs.machine_id, the runners' logs)" -- bash -c "
        for id in \$(cat '$T_DIR/ids-1'); do grep -q \"job \$id FINISHED\" '$T_DIR/a1.log' || exit 1; ! grep -q \"job \$id FINISHED\" '$T_DIR/a2.log' || exit 1; done
        for id in \$(cat '$T_DIR/ids-2'); do grep -q \"job \$id FINISHED\" '$T_DIR/a2.log' || exit 1; ! grep -q \"job \$id FINISHED\" '$T_DIR/a1.log' || exit 1; done"
t_check "each job has one run, on its own machine" -- test \
        "$(sql "SELECT COUNT(*) FROM runs r JOIN bench_jobs j ON j.id = r.job_id WHERE r.machine_id = j.machine_id")|$(sql "SELECT COUNT(*) FROM runs")" = "6|6"
t_check "every command ran once" -- test "$(sort "$T_DIR/own.txt" | tr '\n' ' ')" = "1-1 1-2 1-3 2-1 2-2 2-3 "
t_check "runner_status: only changes (job_start, job_end per job, then one job_no)" -- test \
        "$(sql "SELECT status FROM runner_status WHERE machine_id = 1 ORDER BY id" | tr '\n' ' ')" = \
        "job_start job_end job_start job_end job_start job_end job_no "
t_check "runner_status rows carry the job ids" -- test \
        "$(sql "SELECT COUNT(DISTINCT job_id) FROM runner_status WHERE machine_id = 2 AND status = 'job_start'")" = 3
t_check "the machines row: a configuration snapshot (JSON)" -- "$PY" -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if c["machine"]["id"] == 1 and c["runner"]["sleep_time_no_job"] == 0.3 else 1)' \
        "$(sql "SELECT config_json FROM machines WHERE id = 1")"
t_check "... status and count" -- test "$(sql "SELECT status, jobs_processed FROM machines WHERE id = 1")" = "job_no|3"
sleep 1
t_check "idle: no further status rows while nothing changes" -- test \
        "$(sql "SELECT COUNT(*) FROM runner_status WHERE machine_id = 1")" = 7
runner_stop $A2
t_ok $? "SIGINT on an idle runner: exit 0"

# --- two runners of the same machine race over 50 jobs: each job runs exactly once ---
# The second one starts while the first measures, with its own lock directory: the job the first one holds
# is RUNNING, but its claimer (this host, this boot, a live joule-runner) is not gone, so the second leaves
# it alone (docs/cluster.md, "Stale jobs").
runner_stop $A1 >/dev/null
runner_start a1 "$T_DIR/r1.yml"
A1=$RPID
until_true 10 grep -q "ready: waiting for jobs" "$T_DIR/a1.log"
scen "$T_DIR/race-0.yml" race-0 '"sleep 2"'
R0=$(J submit --machine 1 --scenario "$T_DIR/race-0.yml")
until_true 10 state_is "$R0" RUNNING
runner_start a1b "$T_DIR/r1.yml"
A1B=$RPID
until_true 10 grep -q "ready: waiting for jobs" "$T_DIR/a1b.log"
t_check "race: a runner started beside a measuring one leaves its RUNNING job alone" -- bash -c \
        "[ \"\$1\" = RUNNING ] && grep -q 'job $R0 is RUNNING and left to its runner: claimed by pid $A1 on this host' '$T_DIR/a1b.log'" _ \
        "$(sql "SELECT state FROM bench_jobs WHERE id = $R0")"
t_check "race: the job records its claimer (host, boot id, pid)" -- test \
        "$(sql "SELECT claim_host, claim_boot_id, claim_pid FROM bench_jobs WHERE id = $R0")" = \
        "$(hostname)|$(cat /proc/sys/kernel/random/boot_id)|$A1"
for i in $(seq 50); do
        scen "$T_DIR/race-$i.yml" "race-$i" "\"echo $i >> $T_DIR/race.txt\""
        J submit --machine 1 --scenario "$T_DIR/race-$i.yml" >/dev/null
done
until_true 90 no_waiting
t_check "race: the first runner's job survives and FINISHED" -- test \
        "$(sql "SELECT state, message FROM bench_jobs WHERE id = $R0")" = "FINISHED|finished"
t_check "race: 51 jobs FINISHED" -- test \
        "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE name LIKE 'race-%' AND state = 'FINISHED'")" = 51
t_check "race: every job's command ran exactly once" -- test "$(sort -n "$T_DIR/race.txt" | tr '\n' ' ')" = "$(seq 50 | tr '\n' ' ')"
t_check "race: one run per job" -- test \
        "$(sql "SELECT COUNT(*) FROM runs r JOIN bench_jobs j ON j.id = r.job_id WHERE j.name LIKE 'race-%'")" = 51
t_diag "race: jobs not FINISHED: $(sql "SELECT id || ' ' || state || ' ' || COALESCE(message, '') FROM bench_jobs WHERE name LIKE 'race-%' AND state <> 'FINISHED'" | tr '\n' ';')"
t_diag "race: runner A ran $(grep -c 'FINISHED: finished' "$T_DIR/a1.log") jobs, runner B $(grep -c 'FINISHED: finished' "$T_DIR/a1b.log")"
runner_stop $A1B
t_ok $? "race: the second runner stops with exit 0"

# --- cron mode: joule jobs run processes the queue once and exits; the lock keeps it from a busy runner ---
scen "$T_DIR/slow.yml" slow '"sleep 2"'
runner_stop $A1 >/dev/null
rcfg "$T_DIR/c1.yml" 1
J submit --machine 1 --scenario "$T_DIR/m1-1.yml" >/dev/null
J submit --machine 1 --scenario "$T_DIR/m1-2.yml" >/dev/null
OUT=$(RUNTIME_DIRECTORY=$T_DIR/rt-cron "$JOULE" -c "$T_DIR/c1.yml" jobs run 2>"$T_DIR/cron.err")
t_ok $? "jobs run exits 0"
t_check "jobs run: two jobs processed, none left" -- bash -c "[ '$OUT' = '2 jobs processed' ] && [ \"\$1\" = 0 ]" _ \
        "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE state = 'WAITING'")"
LOCKDIR=$T_DIR/rt-shared runner_start a1c "$T_DIR/r1.yml"
A1C=$RPID
SLOW=$(J submit --machine 1 --scenario "$T_DIR/slow.yml")
until_true 10 state_is "$SLOW" RUNNING
J submit --machine 1 --scenario "$T_DIR/m1-3.yml" >/dev/null
OUT=$(RUNTIME_DIRECTORY=$T_DIR/rt-shared "$JOULE" -c "$T_DIR/c1.yml" jobs run 2>>"$T_DIR/cron.err")
t_check "jobs run while the runner measures: exits 0 and takes nothing (the machine's lock)" -- \
        test "$?|$OUT|$(sql "SELECT state FROM bench_jobs WHERE id = $SLOW")" = "0|0 jobs processed|RUNNING"
until_true 20 no_waiting
t_check "the runner then runs the rest" -- test "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE state = 'FINISHED'")" = 61

# --- SIGINT during a job: FAILED with the reason, exit 0 ---
scen "$T_DIR/long.yml" long '"sleep 317"'
LONG=$(J submit --machine 1 --scenario "$T_DIR/long.yml")
until_true 10 pgrep -f "sleep 317"
SECONDS=0
runner_stop $A1C
t_ok $? "SIGINT during a job: joule-runner exits 0"
t_check "... within a few seconds" -- test $SECONDS -lt 8
t_check "the job is FAILED 'stopped by SIGINT'" -- bash -c "[[ \"\$1\" == 'FAILED|stopped by SIGINT'* ]]" _ \
        "$(sql "SELECT state, message FROM bench_jobs WHERE id = $LONG")"
t_check "the job's command is gone" -- bash -c "! pgrep -f 'sleep 31[7]'"
t_check "the cut-short run is stored with the reason" -- bash -c "[[ \"\$1\" == 'stopped by SIGINT'* ]]" _ \
        "$(sql "SELECT error FROM runs WHERE job_id = $LONG")"

# --- kill -9 during a job, restart: the stale job FAILED, the next one runs ---
LONG2=$(J submit --machine 1 --scenario "$T_DIR/long.yml")
runner_start a1d "$T_DIR/r1.yml"
until_true 10 state_is "$LONG2" RUNNING
kill -9 $RPID
wait $RPID 2>/dev/null
pkill -9 -f "sleep 317"
NEXT=$(J submit --machine 1 --scenario "$T_DIR/m1-1.yml")
runner_start a1e "$T_DIR/r1.yml"
A1E=$RPID
until_true 15 state_is "$NEXT" FINISHED
t_check "after kill -9 and a restart: the stale job FAILED with the reason" -- test \
        "$(sql "SELECT state, message FROM bench_jobs WHERE id = $LONG2")" = "FAILED|runner restarted while the job was running"
t_check "... and the next job FINISHED" -- state_is "$NEXT" FINISHED
runner_stop $A1E >/dev/null

# --- a repository job: git clone --depth 1 --branch B, its joule.yml; one without joule.yml ---
REPO=$T_DIR/repo
git init -q -b main "$REPO" && git -C "$REPO" -c user.name=t -c user.email=t@example.org commit -q --allow-empty -m init
git -C "$REPO" checkout -q -b bench
printf 'name: from git\nflow:\n  - name: build\n    commands: ["test -f marker && echo built > %s/repo.out"]\n' "$T_DIR" >"$REPO/joule.yml"
touch "$REPO/marker"
git -C "$REPO" add joule.yml marker && git -C "$REPO" -c user.name=t -c user.email=t@example.org commit -q -m bench
RJ=$(J submit --machine 2 --repo "$REPO" --branch bench)
RN=$(J submit --machine 2 --repo "$REPO" --branch main)
RB=$(J submit --machine 2 --repo "$REPO" --branch nosuch)
runner_start a2b "$T_DIR/r2.yml"
A2B=$RPID
until_true 20 no_waiting
t_check "repository job: cloned at the branch, joule.yml run in the clone, FINISHED" -- bash -c \
        "[ \"\$1\" = FINISHED ] && grep -q built '$T_DIR/repo.out'" _ "$(sql "SELECT state FROM bench_jobs WHERE id = $RJ")"
t_check "a branch without joule.yml: FAILED, saying so" -- test \
        "$(sql "SELECT state, message FROM bench_jobs WHERE id = $RN")" = "FAILED|the repository has no joule.yml at its root"
t_check "an unknown branch: FAILED with git's words" -- bash -c "[[ \"\$1\" == 'FAILED|git clone of '*' branch nosuch failed: '* ]]" _ \
        "$(sql "SELECT state, message FROM bench_jobs WHERE id = $RB")"

# --- a job's output: its last 64 KiB kept with the job, shown by jobs show (and --json) ---
scen "$T_DIR/out.yml" out '"echo first-line", "seq 1 30000", "printf '"'"'caf\\303\\251 \\377 end\\n'"'"' >&2"'
OJ=$(J submit --machine 2 --scenario "$T_DIR/out.yml")
until_true 20 state_is "$OJ" FINISHED
t_check "job output: the tail is stored, at most 64 KiB, stdout and stderr, valid UTF-8" -- "$PY" -c '
import json, sys
o = json.loads(sys.argv[1])["output"]
b = o.encode()
sys.exit(0 if len(b) <= 65536 and len(b) > 60000 and o.endswith("29999\n30000\ncafé ? end\n") and "first-line" not in o else 1)' \
        "$(J jobs show "$OJ" --json)"
t_check "... and jobs show prints it" -- bash -c "J() { \"\$JOULE\" -c '$CFG' \"\$@\"; }; J jobs show $OJ | grep -A100000 '^output (its last 64 KiB at most):' | tail -1 | grep -q 'end'"
runner_stop $A2B >/dev/null

# --- stale jobs: a runner fails a RUNNING job only when its recorded claimer is provably gone ---
claimed() { # claimed HOST BOOT PID START: a RUNNING job of machine 2 with that claimer; prints its id
        local id
        id=$(J submit --machine 2 --scenario "$T_DIR/m2-1.yml")
        sql "UPDATE bench_jobs SET state = 'RUNNING', started_us = 1, claim_host = '$1', claim_boot_id = '$2', claim_pid = $3, claim_pid_start = $4 WHERE id = $id" >/dev/null
        echo "$id"
}
HOST=$(hostname)
BOOT=$(cat /proc/sys/kernel/random/boot_id)
MY_START=$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20)
S_BOOT=$(claimed "$HOST" 00000000-0000-0000-0000-000000000000 $$ "$MY_START")
S_REUSED=$(claimed "$HOST" "$BOOT" $$ $((MY_START + 1)))
S_OTHER=$(claimed other-host.example.org "$BOOT" 1 1)
S_ALIVE=$(claimed "$HOST" "$BOOT" $$ "$MY_START")
runner_start a2s "$T_DIR/r2.yml"
until_true 10 grep -q "ready: waiting for jobs" "$T_DIR/a2s.log"
runner_stop $RPID >/dev/null
t_check "stale: claimed before this host rebooted (another boot id): FAILED" -- test \
        "$(sql "SELECT state, message FROM bench_jobs WHERE id = $S_BOOT")" = "FAILED|runner restarted while the job was running"
t_check "stale: its pid now runs another process (another start time): FAILED" -- state_is "$S_REUSED" FAILED
t_check "not stale: a claimer on another host is not provably gone: left RUNNING, said so" -- bash -c \
        "[ \"\$1\" = RUNNING ] && grep -q 'job $S_OTHER is RUNNING and left to its runner: claimed by pid 1 on host other-host.example.org: another host' '$T_DIR/a2s.log'" _ \
        "$(sql "SELECT state FROM bench_jobs WHERE id = $S_OTHER")"
t_check "not stale: a live claimer on this host and boot: left RUNNING" -- state_is "$S_ALIVE" RUNNING
sql "UPDATE bench_jobs SET state = 'FAILED' WHERE id IN ($S_OTHER, $S_ALIVE)" >/dev/null

# --- bad input ---
BAD=$(J submit --machine 2 --scenario "$T_DIR/m2-1.yml")
sql "UPDATE bench_jobs SET scenario = 'name: x
flow:
  - name: a
    comands: [true]' WHERE id = $BAD" >/dev/null # as if stored by an older joule: the runner checks again
runner_start a2c "$T_DIR/r2.yml"
A2B=$RPID
until_true 10 state_is "$BAD" FAILED
t_check "a malformed scenario in a job: FAILED with the file, line and key" -- bash -c "[[ \"\$1\" == *'scenario: job $BAD:4: flow[0]'*'comands'* ]]" _ \
        "$(sql "SELECT message FROM bench_jobs WHERE id = $BAD")"
runner_stop $A2B >/dev/null
rcfg "$T_DIR/r9.yml" 9
RUNTIME_DIRECTORY=$T_DIR/rt9 timeout 10 "$JOULE_RUNNER" -c "$T_DIR/r9.yml" >"$T_DIR/r9.log" 2>&1
t_ok $(($? == 1 ? 0 : 1)) "an unknown machine id: joule-runner exits 1"
t_check "... saying what to do" -- grep -q "machine 9 (machine.id) does not exist in the database: add it with" "$T_DIR/r9.log"
J submit --machine 9 --scenario "$T_DIR/m1-1.yml" >/dev/null 2>&1
t_ok $(($? == 1 ? 0 : 1)) "a job for a machine that does not exist is refused"
printf 'database:\n  url: "%s"\nmachine:\n  id: 1\nrunner:\n  slep_time_no_job: 3\n' "$URL" >"$T_DIR/bad.yml"
"$JOULE_RUNNER" -c "$T_DIR/bad.yml" >"$T_DIR/bad.log" 2>&1
t_check "a misspelt key: exit 1 naming the file, line and key" -- bash -c "[ $? = 1 ] && grep -q 'bad.yml:6' '$T_DIR/bad.log'"

# --- e-mail: the runner sends the job's mail through a real SMTP sink ---
if "$PY" -c 'import aiosmtpd' 2>/dev/null; then
        SINK_PORT=$(free_port)
        sink_start "$T_DIR/mail"
        SMTP_CFG=$(printf 'smtp:\n  server: "smtp://127.0.0.1:%s"\n  starttls: false\n  sender: "joule@cluster.example.org"\n  timeout: 5' "$SINK_PORT")
        EXTRA_CFG=$SMTP_CFG rcfg "$T_DIR/rm.yml" 2
        MJ=$(J submit --machine 2 --scenario "$T_DIR/m2-2.yml" --email alice@example.org)
        runner_start a2m "$T_DIR/rm.yml"
        until_true 20 test -s "$T_DIR/mail/1.eml"
        t_check "job mail arrives: to the job's address, 'finished' with the energy" -- grep -q "^Subject: \[joule\] job $MJ (m2-2) on machine 2 (bench-02) finished: " "$T_DIR/mail/1.eml"
        t_check "... and is marked sent" -- test "$(sql "SELECT state FROM emails WHERE job_id = $MJ")" = sent
        runner_stop $RPID >/dev/null

        # a control-workload error that stays set: the admin is reminded every control_error_reminder_s
        reminders() { grep -l '^Subject: \[joule\] reminder: machine 2 (bench-02) still in control error' "$T_DIR"/mail/*.eml 2>/dev/null | wc -l; }
        reminders_ge() { [ "$(reminders)" -ge "$1" ]; }
        sql "INSERT INTO runs (machine_id, kind, start_us, end_us, error) VALUES (2, 'control', 1767225600000000, 1767225610000000, 'phase work: energy deviates')" >/dev/null
        sql "UPDATE machines SET status = 'measurement_control_error', control_error_mailed_us = $(($(date +%s) * 1000000)) WHERE id = 2" >/dev/null
        EXTRA_CFG=$(printf '%s\nadmin:\n  notification_email: "ops@example.org"' "$SMTP_CFG") \
                rcfg "$T_DIR/rr.yml" 2 "control_error_reminder_s: 3"
        runner_start a2r "$T_DIR/rr.yml"
        until_true 10 grep -q "status measurement_control_error" "$T_DIR/a2r.log"
        t_check "control error: no reminder before control_error_reminder_s has passed since the last mail" -- test "$(reminders)" = 0
        until_true 10 reminders_ge 1
        t_check "a reminder arrives once it has passed: to the admin, with the reason and what to do" -- bash -c "
                f=\$(grep -l '^Subject: \[joule\] reminder' '$T_DIR'/mail/*.eml | head -1)
                grep -q '^To: ops@example.org' \"\$f\" && grep -q 'phase work: energy deviates' \"\$f\" && grep -q 'joule machines clear-error --id 2' \"\$f\""
        until_true 10 reminders_ge 2
        t_check "... and again while the error stays" -- test "$(reminders)" -ge 2
        J machines clear-error --id 2 >/dev/null
        N=$(reminders)
        sleep 4
        t_check "once cleared: no more reminders" -- test "$(reminders)" = "$N"
        runner_stop $RPID >/dev/null
        sink_stop
else
        t_skip "job mail through a real SMTP sink" "python3-aiosmtpd is not installed"
fi

# --- PostgreSQL: NOTIFY wakes an idle runner; the database away at start and in the middle of a job ---
if [ "$BACKEND" = postgresql ]; then
        rcfg "$T_DIR/rn.yml" 1
        sed -i 's/sleep_time_no_job: 0.3/sleep_time_no_job: 60/' "$T_DIR/rn.yml"
        runner_start an "$T_DIR/rn.yml"
        AN=$RPID
        until_true 10 grep -q "status job_no" "$T_DIR/an.log"
        sleep 0.5
        T0=$(date +%s%N)
        NJ=$(J submit --machine 1 --scenario "$T_DIR/m1-2.yml")
        until_true 10 state_is "$NJ" FINISHED
        T1=$(date +%s%N)
        t_check "NOTIFY: an idle runner (sleep_time_no_job 60 s) starts a submitted job at once (< 2 s)" -- test $(((T1 - T0) / 1000000)) -lt 2000
        t_diag "submit to FINISHED: $(((T1 - T0) / 1000000)) ms"

        PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
        DATA=$(psql -qAtX -c "SHOW data_directory")
        SOCK=$(dirname "$DATA")
        as_pg=()
        [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
        pg_stop() { "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; }
        pg_start() {
                "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$SOCK/log" -w -t 60 \
                        -o "-p $PGPORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >/dev/null
        }
        # mid-run: the job runs while the server stops; it is stored once the server is back
        scen "$T_DIR/mid.yml" mid '"sleep 3"'
        MID=$(J submit --machine 1 --scenario "$T_DIR/mid.yml")
        until_true 10 state_is "$MID" RUNNING
        pg_stop
        t_ok $? "mid-run: PostgreSQL stopped while the job runs"
        sleep 6
        t_check "the runner is still up while the database is away" -- kill -0 $AN
        pg_start
        t_ok $? "PostgreSQL started again"
        until_true 40 state_is "$MID" FINISHED
        t_check "mid-run outage: the job FINISHED, its run and phases stored once" -- test \
                "$(sql "SELECT j.state, COUNT(DISTINCT r.id), COUNT(p.id) FROM bench_jobs j JOIN runs r ON r.job_id = j.id JOIN phase_stats p ON p.run_id = r.id WHERE j.id = $MID GROUP BY j.state")" = "FINISHED|1|1"
        t_check "the runner logged the outage and the recovery" -- bash -c "grep -q 'unreachable' '$T_DIR/an.log' && grep -q 'answers again' '$T_DIR/an.log'"
        AJ=$(J submit --machine 1 --scenario "$T_DIR/m1-3.yml")
        until_true 10 state_is "$AJ" FINISHED
        t_check "after the outage the runner takes jobs again" -- state_is "$AJ" FINISHED
        runner_stop $AN
t_ok $? "the runner stops with exit 0"

        # kill -9 while the database is away with a finished run not yet stored: the run waits in the spool
        # and is stored, once, when a restarted runner finds the database back
        rcfg "$T_DIR/rs.yml" 1
        runner_start asp "$T_DIR/rs.yml"
        ASP=$RPID
        scen "$T_DIR/sp.yml" sp '"echo spooled-output; sleep 2"'
        SP=$(J submit --machine 1 --scenario "$T_DIR/sp.yml" --email bob@example.org)
        until_true 10 state_is "$SP" RUNNING
        pg_stop
        until_true 20 grep -q "store the run: the database is unreachable" "$T_DIR/asp.log"
        kill -9 $ASP
        wait $ASP 2>/dev/null
        t_check "kill -9 while the database is away: the finished run is in the spool" -- bash -c \
                "ls '$STATE_DIRECTORY'/spool/m1-*.result"
        # a cut copy of it (as a disk could leave one) is refused by the reader, kept aside as .bad, logged
        SPF=$(ls "$STATE_DIRECTORY"/spool/m1-*.result | head -1)
        head -c -9 "$SPF" >"${SPF%-*}-1.result"
        pg_start
        t_check "... the job is still RUNNING" -- state_is "$SP" RUNNING
        runner_start asp2 "$T_DIR/rs.yml"
        ASP2=$RPID
        until_true 20 state_is "$SP" FINISHED
        t_check "restarted with the database back: the spooled run is stored, the job FINISHED once" -- test \
                "$(sql "SELECT j.state, j.message, COUNT(DISTINCT r.id), COUNT(p.id) FROM bench_jobs j JOIN runs r ON r.job_id = j.id JOIN phase_stats p ON p.run_id = r.id WHERE j.id = $SP GROUP BY j.state, j.message")" = "FINISHED|finished|1|1"
        t_check "... with its output and its mail queued once" -- test \
                "$(sql "SELECT output FROM bench_jobs WHERE id = $SP")|$(sql "SELECT COUNT(*) FROM emails WHERE job_id = $SP")" = "spooled-output|1"
        t_check "... the spool is empty" -- bash -c "! ls '$STATE_DIRECTORY'/spool/m1-*.result 2>/dev/null"
        t_check "a cut spool file: kept as .bad and logged, nothing stored from it" -- bash -c \
                "ls '${SPF%-*}-1.result.bad' && grep -q 'cannot be read (Bad message): kept as' '$T_DIR/asp2.log'"
        t_check "... the runner said it stored the spooled result" -- grep -q "storing the spooled result" "$T_DIR/asp2.log"
        runner_stop $ASP2 >/dev/null

        # at start: the server is down when the runner starts; it retries and processes the queue once it is up
        SJ=$(J submit --machine 1 --scenario "$T_DIR/m1-1.yml")
        pg_stop
        runner_start as "$T_DIR/r1.yml"
        AS=$RPID
        sleep 3
        t_check "database down at start: the runner waits (retrying) instead of exiting" -- kill -0 $AS
        pg_start
        until_true 40 state_is "$SJ" FINISHED
        t_check "... and runs the queued job once the server is up" -- state_is "$SJ" FINISHED
        runner_stop $AS
t_ok $? "the runner stops with exit 0"
fi

t_check "no job left RUNNING" -- test "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE state = 'RUNNING'")" = 0
t_done
