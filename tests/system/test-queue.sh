#!/bin/bash
# test-queue.sh - the measurement cluster's job queue through the real joule CLI: `joule machines add |
# list` (duplicate ids and descriptions refused), `joule submit` (the id alone on stdout, an unknown machine,
# malformed scenarios and bad options refused with words), `joule jobs list | show | cancel` (filters, the
# JSON contract, a stored run's phases, cancel only while WAITING), and on PostgreSQL the NOTIFY that wakes
# an idle runner. On SQLite (a temporary file), or on $JOULE_TEST_DATABASE_URL when tests/with-postgres.sh
# runs it. TAP. Environment: JOULE, NOTIFY_LISTEN (test-notify).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-queue-lib.sh"
q_setup jq

# bad RC PATTERN -- ARGS...: joule ARGS exits RC and says PATTERN on stderr, nothing on stdout
bad() {
        local desc=$1 want=$2 pat=$3
        shift 4
        local out err rc
        out=$(J "$@" 2>"$T_DIR/err")
        rc=$?
        err=$(cat "$T_DIR/err")
        if [ "$rc" -eq "$want" ] && [ -z "$out" ] && grep -qiE -- "$pat" <<<"$err"; then
                t_ok 0 "$desc"
        else
                t_ok 1 "$desc"
                t_diag "rc $rc (want $want), stdout '$out', stderr: $err"
        fi
}

t_check "joule db init ($BACKEND)" -- J db init

# --- machines ---
t_check "machines add 1" -- J machines add --id 1 --description "bench-01 (Xeon)"
t_check "machines add 2" -- J machines add --id 2 --description "bench-02 (EPYC)"
bad "machines add: a duplicate id is refused, naming the machine" 1 "machine 1 already exists.*bench-01" -- \
        machines add --id 1 --description "another"
bad "machines add: a duplicate description is refused, naming its machine" 1 \
        "description 'bench-02 \(EPYC\)' is already used by machine 2" -- machines add --id 3 --description "bench-02 (EPYC)"
bad "machines add: a non-numeric id" 2 "not a positive integer" -- machines add --id abc --description x
bad "machines add: id 0" 2 "not a positive integer" -- machines add --id 0 --description x
bad "machines add: a negative id" 2 "not a positive integer" -- machines add --id -4 --description x
bad "machines add: no description" 2 "required" -- machines add --id 5
bad "machines add: an empty description" 2 "printable" -- machines add --id 5 --description ""
bad "machines add: a control character in the description" 2 "printable" -- machines add --id 5 \
        --description "$(printf 'a\nb')"
bad "machines: an unknown command" 2 "unknown command" -- machines remove
OUT=$(J machines list --json)
t_check "machines list --json: the two machines, nothing from the refused adds" -- jtest "$OUT" \
        '[(m["id"], m["description"]) for m in j] == [(1, "bench-01 (Xeon)"), (2, "bench-02 (EPYC)")]'
t_check "machines list --json: every key" -- jtest "$OUT" \
        'all(set(m) >= {"id", "description", "status", "temperature_c", "jobs_processed", "jobs_waiting", "needs_validation", "updated"} for m in j) and j[0]["jobs_waiting"] == 0'
OUT=$(J machines list)
t_check "machines list: a table with both" -- sh -c 'printf "%s\n" "$1" | grep -q "^ *1  bench-01" && printf "%s\n" "$1" | grep -q "^ *2  bench-02"' _ "$OUT"
t_check "the changelog records the additions" -- test "$(sql "SELECT COUNT(*) FROM changelog WHERE message LIKE 'machine added:%'")" = 2

# --- submit ---
cat >"$T_DIR/s.yml" <<'EOF'
name: build and test
environment: {CC: gcc}
setup: [true]
flow:
  - name: compile
    commands: [sleep 0.1]
    timeout_s: 60
  - name: test
    commands: ["true"]
teardown: [true]
EOF
J submit --machine 1 --scenario "$T_DIR/s.yml" --email user@example.org --name "build and test" >"$T_DIR/out" 2>"$T_DIR/err"
t_ok $? "submit --scenario exits 0"
t_check "submit prints the new job's id alone on stdout" -- grep -qxE '[0-9]+' "$T_DIR/out"
t_check "... one line, nothing else" -- test "$(wc -l <"$T_DIR/out")" -eq 1 -a ! -s "$T_DIR/err"
J1=$(cat "$T_DIR/out")
t_check "the job is WAITING for machine 1 with its name and address" -- test \
        "$(sql "SELECT state, machine_id, name, email FROM bench_jobs WHERE id = $J1")" = "WAITING|1|build and test|user@example.org"
t_check "the scenario is stored byte for byte" -- test "$(sql "SELECT scenario FROM bench_jobs WHERE id = $J1")" = "$(cat "$T_DIR/s.yml")"
J2=$(J submit --machine 2 --repo https://git.example.org/group/proj.git --branch feature/x --name nightly)
t_check "submit --repo --branch --name: an id" -- grep -qxE '[0-9]+' <<<"$J2"
t_check "the repository job holds URL, branch and name, no scenario" -- test \
        "$(sql "SELECT repo_url, branch, name, COALESCE(scenario, 'none') FROM bench_jobs WHERE id = $J2")" = \
        "https://git.example.org/group/proj.git|feature/x|nightly|none"
J3=$(J submit --machine 1 --repo https://git.example.org/group/other.git)
t_check "submit --repo: the name defaults to the repository's" -- test "$(sql "SELECT name FROM bench_jobs WHERE id = $J3")" = other
t_check "ids increase" -- test "$J1" -lt "$J2" -a "$J2" -lt "$J3"

N_BEFORE=$(sql "SELECT COUNT(*) FROM bench_jobs")
bad "submit for a machine that does not exist fails clearly" 1 "machine 9 does not exist" -- \
        submit --machine 9 --scenario "$T_DIR/s.yml"
bad "submit: a machine id that is no number" 2 "not a positive integer" -- submit --machine x1 --scenario "$T_DIR/s.yml"
bad "submit: no --machine" 2 "--machine is required" -- submit --scenario "$T_DIR/s.yml"
bad "submit: both --scenario and --repo" 2 "exactly one" -- submit --machine 1 --scenario "$T_DIR/s.yml" --repo https://x/y
bad "submit: neither --scenario nor --repo" 2 "exactly one" -- submit --machine 1
bad "submit: --branch without --repo" 2 "goes with --repo" -- submit --machine 1 --scenario "$T_DIR/s.yml" --branch main
bad "submit: a branch that is an option in disguise" 2 "not a valid branch" -- submit --machine 1 --repo https://x/y --branch=-x
bad "submit: a branch with '..'" 2 "not a valid branch" -- submit --machine 1 --repo https://x/y --branch a..b
bad "submit: a repository URL with a space" 2 "not a repository URL" -- submit --machine 1 --repo "https://x/a b"
bad "submit: a bad e-mail address" 2 "not an e-mail address" -- submit --machine 1 --scenario "$T_DIR/s.yml" --email nobody
bad "submit: a scenario file that does not exist" 1 "cannot open the scenario.*No such file" -- \
        submit --machine 1 --scenario "$T_DIR/none.yml"
printf 'name: x\nflow: [\n' >"$T_DIR/broken.yml"
bad "submit: a scenario that is not YAML, with file and line" 1 "broken.yml:[0-9]+" -- submit --machine 1 --scenario "$T_DIR/broken.yml"
printf 'name: x\nflow:\n  - name: a\n    commands: [true]\n    colour: red\n' >"$T_DIR/unknown.yml"
bad "submit: a scenario with an unknown key, named" 1 "unknown.yml:5.*colour" -- submit --machine 1 --scenario "$T_DIR/unknown.yml"
printf 'name: x\n' >"$T_DIR/noflow.yml"
bad "submit: a scenario without a flow" 1 "noflow.yml.*flow" -- submit --machine 1 --scenario "$T_DIR/noflow.yml"
: >"$T_DIR/empty.yml"
bad "submit: an empty scenario file" 1 "empty" -- submit --machine 1 --scenario "$T_DIR/empty.yml"
head -c 2000000 /dev/zero | tr '\0' 'x' >"$T_DIR/huge.yml"
bad "submit: a scenario file above 1 MiB" 1 "larger than" -- submit --machine 1 --scenario "$T_DIR/huge.yml"
t_check "no refused submission left a job behind" -- test "$(sql "SELECT COUNT(*) FROM bench_jobs")" = "$N_BEFORE"

# --- jobs list ---
OUT=$(J jobs list --json)
t_check "jobs list --json: the three jobs, oldest first" -- jtest "$OUT" "[r['id'] for r in j] == [$J1, $J2, $J3]"
t_check "jobs list --json: every key, ISO 8601 times, null where unset" -- jtest "$OUT" \
        'all(set(r) >= {"id", "machine_id", "state", "name", "created", "started", "finished", "message", "email", "repo_url", "branch"} for r in j) and j[0]["created"].endswith("Z") and j[0]["started"] is None'
OUT=$(J jobs list --machine 1 --json)
t_check "jobs list --machine 1: only its jobs" -- jtest "$OUT" "[r['id'] for r in j] == [$J1, $J3]"
OUT=$(J jobs list --machine 2 --state waiting --json)
t_check "jobs list --machine 2 --state waiting (any case)" -- jtest "$OUT" "[r['id'] for r in j] == [$J2]"
OUT=$(J jobs list --limit 2 --json)
t_check "jobs list --limit 2: the newest two, oldest first" -- jtest "$OUT" "[r['id'] for r in j] == [$J2, $J3]"
OUT=$(J jobs list --state FINISHED --json)
t_check "jobs list --state FINISHED: none yet" -- jtest "$OUT" 'j == []'
OUT=$(J jobs list)
t_check "jobs list: a table row per job" -- test "$(printf '%s\n' "$OUT" | grep -cE '^ *[0-9]+ +[12] +WAITING')" -eq 3
bad "jobs list: an unknown state" 2 "unknown state 'DONE'" -- jobs list --state DONE
bad "jobs list: a machine that does not exist" 1 "machine 77 does not exist" -- jobs list --machine 77
bad "jobs list: --limit 0" 2 "not a positive integer" -- jobs list --limit 0
bad "jobs: an unknown command" 2 "unknown command 'frobnicate'" -- jobs frobnicate
bad "jobs: no command" 2 "no command" -- jobs

# --- jobs show ---
OUT=$(J jobs show "$J1" --json)
t_check "jobs show --json: the contract's keys; run null before any run" -- jtest "$OUT" \
        "j['id'] == $J1 and j['machine_id'] == 1 and j['state'] == 'WAITING' and j['message'] is None and j['run'] is None"
t_check "jobs show --json: name, e-mail and the scenario's text" -- jtest "$OUT" \
        "j['name'] == 'build and test' and j['email'] == 'user@example.org' and j['scenario'].startswith('name: build and test')"
t_check "fake a finished run of job $J1 (3 phases) as a runner stores it" -- fake_run "$J1"
OUT=$(J jobs show "$J1" --json)
t_check "jobs show --json: FINISHED with the run's phases in order" -- jtest "$OUT" \
        "j['state'] == 'FINISHED' and j['message'] == 'finished' and [p['name'] for p in j['run']['phases']] == ['[BASELINE]', 'compile', 'test']"
t_check "jobs show --json: each phase's duration, energy, power and temperature (DESIGN.md's shape)" -- jtest "$OUT" \
        "[(p['duration_s'], p['energy_j'], p['power_w']['avg'], p['power_w']['max'], p['temperature_c']['max']) for p in j['run']['phases']] == [(5.0, 12.5, 2.5, 3.0, 40.5), (10.0, 250.0, 25.0, 31.25, 61.0), (2.5, 37.5, 15.0, 18.0, 55.0)]"
t_check "jobs show --json: the run's total and times" -- jtest "$OUT" \
        "j['run']['energy_j'] == 300.0 and j['run']['start'] == '2026-01-01T00:00:00.000Z' and j['started'] == '2026-01-01T00:00:00.000Z'"
OUT=$(J jobs show "$J1")
t_check "jobs show: the phase table" -- sh -c 'printf "%s\n" "$1" | grep -qE "^ +compile +250\.000 +25\.000 +31\.250 +10\.000 +61\.0$" && printf "%s\n" "$1" | grep -q "^state: *FINISHED"' _ "$OUT"
bad "jobs show: a job that does not exist" 1 "job 999999 does not exist" -- jobs show 999999
bad "jobs show: a job id that is no number" 2 "not a positive integer" -- jobs show 12abc
bad "jobs show: no id" 2 "give one job id" -- jobs show

# --- jobs cancel ---
OUT=$(J jobs cancel "$J3")
t_ok $? "jobs cancel of a WAITING job exits 0"
ROW=$(sql "SELECT state, CASE WHEN finished_us IS NULL THEN 0 ELSE 1 END FROM bench_jobs WHERE id = $J3")
t_check "... says so and the job is CANCELLED with a finish time" -- test "$OUT|$ROW" = "job $J3 cancelled|CANCELLED|1"
bad "jobs cancel again: refused, naming the state" 1 "job $J3 is CANCELLED already" -- jobs cancel "$J3"
sql "UPDATE bench_jobs SET state = 'RUNNING', started_us = 1 WHERE id = $J2" >/dev/null
bad "jobs cancel of a RUNNING job is refused, naming the state" 1 "job $J2 is RUNNING: only a WAITING job" -- jobs cancel "$J2"
t_check "... and the job is still RUNNING" -- test "$(sql "SELECT state FROM bench_jobs WHERE id = $J2")" = RUNNING
bad "jobs cancel of a FINISHED job is refused" 1 "job $J1 is FINISHED already" -- jobs cancel "$J1"
bad "jobs cancel: a job that does not exist" 1 "job 424242 does not exist" -- jobs cancel 424242
bad "jobs cancel: --json is not for cancel" 2 "--json is for list and show" -- jobs cancel "$J1" --json

# cancel racing a claim: 30 jobs, a claimer (the store's atomic claim through SQL) and cancels at once;
# every job ends either RUNNING (claimed) or CANCELLED, never both, never lost
for i in $(seq 30); do J submit --machine 2 --scenario "$T_DIR/s.yml" >>"$T_DIR/race-ids" || break; done
(for id in $(cat "$T_DIR/race-ids"); do J jobs cancel "$id" >/dev/null 2>&1; done) &
CPID=$!
for id in $(sort -r "$T_DIR/race-ids"); do
        sql "UPDATE bench_jobs SET state = 'RUNNING' WHERE id = $id AND state = 'WAITING'" >/dev/null 2>&1
done
wait "$CPID"
IDS=$(paste -sd, "$T_DIR/race-ids")
t_check "cancel racing a claim: each of 30 jobs is RUNNING or CANCELLED, none WAITING" -- test \
        "$(sql "SELECT COUNT(*) FROM bench_jobs WHERE id IN ($IDS) AND state IN ('RUNNING', 'CANCELLED')")" = 30

# --- the database is required, and must hold the schema ---
printf 'database:\n  url: "%s"\n' "$T_DIR/nothing-here.db" >"$T_DIR/none.yml"
OUT=$("$JOULE" -c "$T_DIR/none.yml" jobs list 2>&1)
t_ok $([ $? -eq 1 ] && grep -q "joule db init" <<<"$OUT"; echo $?) "jobs list on a missing database says to run joule db init"

# --- a scenario job's name defaults to the scenario's ---
J5=$(J submit --machine 1 --scenario "$T_DIR/s.yml")
t_check "submit --scenario without --name: the scenario's name" -- test "$(sql "SELECT name FROM bench_jobs WHERE id = $J5")" = "build and test"

# --- NOTIFY wakes an idle runner at once (PostgreSQL) ---
if [ "$BACKEND" = postgresql ]; then
        "$NOTIFY_LISTEN" listen "$URL" joule_jobs 10000 >"$T_DIR/listen.out" 2>"$T_DIR/listen.err" &
        LPID=$!
        T_PIDS+=("$LPID")
        for _ in $(seq 100); do grep -q ready "$T_DIR/listen.out" && break; sleep 0.05; done
        T0=$(date +%s%N)
        J submit --machine 2 --scenario "$T_DIR/s.yml" >/dev/null
        wait "$LPID"
        RC=$?
        T1=$(date +%s%N)
        t_ok $RC "a listener on joule_jobs hears the submission"
        t_check "... with the machine's id as the payload" -- grep -qx "joule_jobs 2" "$T_DIR/listen.out"
        MS=$(((T1 - T0) / 1000000))
        t_ok $([ "$MS" -lt 2000 ]; echo $?) "... at once (${MS} ms from submit to the listener's exit, submit included)"
else
        t_skip "NOTIFY reaches a listener" "SQLite has no notifications (the runner polls)"
fi

t_done
