#!/bin/bash
# test-mail.sh - e-mail of the measurement cluster end to end: messages queued by the mail library (job
# finished with its energy per phase, job failed with the reason, control workload deviation to the admin)
# and sent by `joule jobs email` to a real SMTP server on loopback (tests/system/smtp-sink.py, Debian's
# python3-aiosmtpd), parsed back with Python's email package: recipient, subject, headers, energy summary.
# With the server down the mail stays queued (tries, next_try_us and last_error advance, with the backoff)
# and goes out once it is back; a refused recipient does not hold up the others; AUTH; STARTTLS is never
# silently skipped; two senders at once send each mail once. On SQLite, or on $JOULE_TEST_DATABASE_URL
# under tests/with-postgres.sh. TAP. Environment: JOULE, MAIL_QUEUE (test-mail-queue), SMTP_SINK.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-queue-lib.sh"
q_setup jm
: "${MAIL_QUEUE:?MAIL_QUEUE is not set}"
: "${SMTP_SINK:?SMTP_SINK is not set}"
if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
        echo "1..0 # SKIP Debian's python3-aiosmtpd is not installed"
        exit 0
fi

SINK_PORT=$(free_port)
MAILDIR=$T_DIR/mail
# smtp_config [EXTRA YAML LINES...]: the config with the sink as the server, plain text on loopback, fast
# retries (smtp.retry_base: the first backoff, doubled per failure)
smtp_config() {
        {
                printf 'database:\n  url: "%s"\n' "$URL"
                printf 'smtp:\n  server: "smtp://127.0.0.1:%s"\n  starttls: false\n  sender: "joule@cluster.example.org"\n' "$SINK_PORT"
                printf '  retry_base: 1\n  retry_max: 60\n  timeout: 5\n'
                for l in "$@"; do printf '  %s\n' "$l"; done
        } >"$CFG"
}
smtp_config
MQ() { "$MAIL_QUEUE" "$1" "$URL" "${@:2}"; }
mails() { ls "$MAILDIR"/*.eml 2>/dev/null | wc -l; }
# wait_mails N: bounded wait until the sink holds N messages
wait_mails() { for _ in $(seq 50); do [ "$(mails)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
# check_eml N PYTHON-EXPR: the N-th stored message parsed as `m` (email.message), its body `b`, envelope `e`
check_eml() {
        "$PY" - "$MAILDIR/$1.eml" "$MAILDIR/$1.json" "$2" <<'PYEOF'
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
e = json.load(open(sys.argv[2]))
b = m.get_content()
ok = eval(sys.argv[3])
if not ok:
    print("false:", sys.argv[3]); print(e); print(m.as_string()[:3000])
sys.exit(0 if ok else 1)
PYEOF
}

t_check "joule db init ($BACKEND)" -- J db init
J machines add --id 3 --description "bench-03 (Ryzen)" >/dev/null
cat >"$T_DIR/s.yml" <<'EOF'
name: build
flow:
  - name: compile
    commands: ["true"]
EOF
JOB=$(J submit --machine 3 --scenario "$T_DIR/s.yml" --email alice@example.org --name "Messung ä")
fake_run "$JOB" >/dev/null

# --- job finished ---
MID=$(MQ finished "$JOB")
t_ok $? "queue 'job finished' for job $JOB"
t_check "it is queued: tries 0, due now, addressed to the job's e-mail" -- test \
        "$(sql "SELECT state, tries, to_addr, job_id FROM emails WHERE id = $MID")" = "queued|0|alice@example.org|$JOB"
sink_start "$MAILDIR"
t_ok $? "start the SMTP sink"
OUT=$(J jobs email)
t_ok $? "joule jobs email exits 0"
t_check "... and counts one sent" -- test "$OUT" = "1 sent, 0 failed, 0 deferred"
t_check "the message arrives" -- wait_mails 1
t_check "envelope: from the sender, to the job's address" -- check_eml 1 \
        'e["mail_from"] == "joule@cluster.example.org" and e["rcpt_tos"] == ["alice@example.org"]'
t_check "headers: To, From, Date, Message-ID, MIME text/plain utf-8" -- check_eml 1 \
        'm["To"] == "alice@example.org" and m["From"] == "joule@cluster.example.org" and m["Date"].datetime is not None and m["Message-ID"].startswith("<joule.") and m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"'
t_check "subject: the job, its (UTF-8) name, the machine and the flow's energy" -- check_eml 1 \
        "m['Subject'] == '[joule] job $JOB (Messung ä) on machine 3 (bench-03 (Ryzen)) finished: 287.500 J'"
t_check "body: the energy summary per phase (energy J, avg/max power W, duration s, max °C)" -- check_eml 1 \
        'any(l.split() == ["compile", "250.000", "25.000", "31.250", "10.000", "61.0"] for l in b.splitlines()) and any(l.split() == ["[BASELINE]", "12.500", "2.500", "3.000", "5.000", "40.5"] for l in b.splitlines()) and any(l.split() == ["test", "37.500", "15.000", "18.000", "2.500", "55.0"] for l in b.splitlines())'
t_check "body: the flow's total (287.5 J over 12.5 s = 23 W)" -- check_eml 1 \
        'any(l.split() == ["total", "(flow)", "287.500", "23.000", "12.500"] for l in b.splitlines())'
t_check "the mail is marked sent: tries 1, sent_us set" -- test \
        "$(sql "SELECT state, tries, CASE WHEN sent_us IS NULL THEN 0 ELSE 1 END FROM emails WHERE id = $MID")" = "sent|1|1"
OUT=$(J jobs email)
t_check "a second pass sends nothing again" -- test "$OUT|$(mails)" = "0 sent, 0 failed, 0 deferred|1"

# --- job failed, control deviation ---
JOB2=$(J submit --machine 3 --scenario "$T_DIR/s.yml" --email bob@example.org --name build)
sql "UPDATE bench_jobs SET state = 'FAILED', message = 'step ''compile'': command ''make'' exited with status 2' WHERE id = $JOB2" >/dev/null
t_check "queue 'job failed' with the job's message as the reason" -- MQ failed "$JOB2" ""
t_check "queue 'control workload deviated' to the admin" -- MQ deviation admin@example.org 3 \
        "energy_j of the control workload: 131.2 J against a window mean of 120.0 J (threshold 5%)"
J jobs email >/dev/null
t_check "both arrive" -- wait_mails 3
t_check "job failed: to the job's address, the reason in subject and body" -- check_eml 2 \
        "e['rcpt_tos'] == ['bob@example.org'] and m['Subject'] == \"[joule] job $JOB2 (build) on machine 3 (bench-03 (Ryzen)) failed: step 'compile': command 'make' exited with status 2\" and \"Reason: step 'compile': command 'make' exited with status 2\" in b"
t_check "deviation: to admin.notification_email, machine, metric and the stop of job intake" -- check_eml 3 \
        "e['rcpt_tos'] == ['admin@example.org'] and 'machine 3 (bench-03 (Ryzen))' in m['Subject'] and 'control workload deviated' in m['Subject'] and '131.2 J against a window mean of 120.0 J' in b and 'takes no jobs' in b"
MQ finished 424242 >/dev/null 2>&1
t_check "queue for a job that does not exist: refused (exit 4)" -- test $? -eq 4
JOB3=$(J submit --machine 3 --scenario "$T_DIR/s.yml")
MQ finished "$JOB3" >/dev/null
t_check "a job without an e-mail address: nothing queued (exit 3)" -- test $? -eq 3
t_check "a deviation mail to a bad admin address is refused" -- sh -c '! "$@" 2>/dev/null' _ "$MAIL_QUEUE" deviation "$URL" "not-an-address" 3 x

# --- the sink down: the mail stays queued and backs off; sent once the sink returns ---
sink_stop
MID=$(MQ raw carol@example.org "while the server is down" "energy: 1 J")
J jobs email >"$T_DIR/out" 2>"$T_DIR/err"
RC=$?
t_check "sink down: jobs email exits 1 and counts one failed" -- test "$RC|$(cat "$T_DIR/out")" = "1|0 sent, 1 failed, 0 deferred"
t_check "... and says why on stderr" -- grep -qiE "connect|refused" "$T_DIR/err"
ROW=$(sql "SELECT state, tries, last_error FROM emails WHERE id = $MID")
t_check "the mail stays queued, tries 1, last_error names the cause" -- sh -c \
        'case "$1" in "queued|1|smtp://127.0.0.1:"*"onnect"*) exit 0;; esac; echo "$1"; exit 1' _ "$ROW"
NEXT1=$(sql "SELECT next_try_us FROM emails WHERE id = $MID")
NOW=$("$PY" -c 'import time; print(int(time.time() * 1e6))')
t_check "next_try_us is about retry_base (1 s) ahead" -- test $((NEXT1 - NOW)) -gt 500000 -a $((NEXT1 - NOW)) -le 1000000
J jobs email >"$T_DIR/out" 2>/dev/null
t_check "before next_try_us the mail is not tried again" -- test \
        "$(cat "$T_DIR/out")|$(sql "SELECT tries FROM emails WHERE id = $MID")" = "0 sent, 0 failed, 0 deferred|1"
sleep 1.1
J jobs email >/dev/null 2>&1
NEXT2=$(sql "SELECT next_try_us FROM emails WHERE id = $MID")
NOW=$("$PY" -c 'import time; print(int(time.time() * 1e6))')
t_check "after it, tried again: tries 2, the backoff doubled (about 2 s)" -- test \
        "$(sql "SELECT state, tries FROM emails WHERE id = $MID")" = "queued|2" -a $((NEXT2 - NOW)) -gt 1500000 -a \
        $((NEXT2 - NOW)) -le 2000000
sink_start "$MAILDIR"
t_ok $? "the sink comes back"
sleep 2.1
OUT=$(J jobs email)
t_check "once due again the mail goes out" -- test "$OUT" = "1 sent, 0 failed, 0 deferred"
t_check "it arrives, once" -- sh -c 'wait_n() { for _ in $(seq 50); do [ "$(ls "$1"/*.eml | wc -l)" -ge 4 ] && return 0; sleep 0.1; done; return 1; }; wait_n "$1" && [ "$(grep -l "while the server is down" "$1"/*.eml | wc -l)" -eq 1 ]' _ "$MAILDIR"
t_check "marked sent after 3 tries, last_error kept as history" -- test \
        "$(sql "SELECT state, tries, CASE WHEN last_error IS NULL THEN 0 ELSE 1 END FROM emails WHERE id = $MID")" = "sent|3|1"

# --- a refused recipient does not hold up the others ---
sink_stop
sink_start "$MAILDIR.rej" --reject-rcpt "reject" || t_diag "the sink did not start"
R1=$(MQ raw reject-me@example.org "refused" "x")
R2=$(MQ raw dave@example.org "accepted" "y")
J jobs email >"$T_DIR/out" 2>/dev/null
t_check "a 550 for one recipient: that one failed, the next one still sent" -- test "$(cat "$T_DIR/out")" = "1 sent, 1 failed, 0 deferred"
t_check "... last_error holds the server's reply code" -- sh -c 'case "$1" in *550*) exit 0;; esac; echo "$1"; exit 1' _ \
        "$(sql "SELECT last_error FROM emails WHERE id = $R1")"
t_check "... the other is sent" -- test "$(sql "SELECT state FROM emails WHERE id = $R2")" = sent
sql "DELETE FROM emails WHERE id = $R1" >/dev/null

# --- AUTH ---
sink_stop
sink_start "$MAILDIR.auth" --auth "joule:test-only-secret" || t_diag "the sink did not start"
smtp_config 'user: "joule"' 'password: "test-only-secret"'
MQ raw erin@example.org "with auth" "z" >/dev/null
OUT=$(J jobs email)
t_check "AUTH with smtp.user and smtp.password: sent" -- test "$OUT" = "1 sent, 0 failed, 0 deferred"
t_check "... the sink saw an authenticated client" -- "$PY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["authenticated"] else 1)' "$MAILDIR.auth/1.json"
smtp_config 'user: "joule"' 'password: "wrong"'
A2=$(MQ raw frank@example.org "bad auth" "z")
J jobs email >/dev/null 2>&1
t_check "a wrong password: the mail stays queued, last_error says the login failed" -- sh -c \
        'case "$1" in "queued|"*[Ll]ogin*) exit 0;; esac; echo "$1"; exit 1' _ "$(sql "SELECT state, last_error FROM emails WHERE id = $A2")"
sql "DELETE FROM emails WHERE id = $A2" >/dev/null

# --- TLS: STARTTLS is required unless switched off; never a clear-text password to another host ---
smtp_config 'starttls: true'
sed -i '/starttls: false/d' "$CFG"
S1=$(MQ raw grace@example.org "needs tls" "z")
J jobs email >/dev/null 2>&1
t_check "smtp.starttls (the default) against a server without STARTTLS: not sent in clear text" -- sh -c \
        'case "$1" in "queued|"*SSL*|"queued|"*TLS*) exit 0;; esac; echo "$1"; exit 1' _ "$(sql "SELECT state, last_error FROM emails WHERE id = $S1")"
sql "DELETE FROM emails WHERE id = $S1" >/dev/null
printf 'database:\n  url: "%s"\nsmtp:\n  server: "smtp://mail.example.org:25"\n  starttls: false\n  user: "u"\n  password: "p"\n' "$URL" >"$CFG"
MQ raw heidi@example.org "x" "y" >/dev/null
J jobs email >/dev/null 2>"$T_DIR/err"
RC=$?
t_check "a password in clear text to a non-loopback server is refused before connecting" -- sh -c \
        '[ "$1" -eq 1 ] && grep -q "clear text" "$2"' _ "$RC" "$T_DIR/err"
printf 'database:\n  url: "%s"\n' "$URL" >"$CFG"
J jobs email >/dev/null 2>"$T_DIR/err"
RC=$?
t_check "no smtp.server: jobs email fails and says so; the mail stays queued" -- test \
        "$RC|$(grep -c "no SMTP server" "$T_DIR/err")|$(sql "SELECT COUNT(*) FROM emails WHERE state = 'queued'")" = "1|1|1"
sql "DELETE FROM emails WHERE state = 'queued'" >/dev/null
OUT=$(J jobs email --max 0 2>&1)
RC=$?
t_check "jobs email --max 0 is refused" -- sh -c '[ "$1" -eq 2 ] && case "$2" in *"--max"*) exit 0;; esac; exit 1' _ "$RC" "$OUT"

# --- two senders at once: each mail exactly once ---
sink_stop
sink_start "$MAILDIR.race" || t_diag "the sink did not start"
smtp_config
for i in $(seq 20); do MQ raw "user$i@example.org" "race $i" "body $i" >/dev/null; done
J jobs email >"$T_DIR/race1" 2>&1 &
P1=$!
J jobs email >"$T_DIR/race2" 2>&1 &
P2=$!
wait $P1 $P2
for _ in $(seq 50); do [ "$(ls "$MAILDIR.race"/*.eml 2>/dev/null | wc -l)" -ge 20 ] && break; sleep 0.1; done
sleep 0.3
t_check "two jobs email at once: 20 messages arrive, each once" -- "$PY" - "$MAILDIR.race" <<'PYEOF'
import email, glob, sys
subs = sorted(email.message_from_binary_file(open(f, "rb"))["Subject"] for f in glob.glob(sys.argv[1] + "/*.eml"))
ok = subs == sorted("race %d" % i for i in range(1, 21))
print(subs) if not ok else None
sys.exit(0 if ok else 1)
PYEOF
t_check "... and all 20 are marked sent with one try" -- test \
        "$(sql "SELECT COUNT(*) FROM emails WHERE subject LIKE 'race %' AND state = 'sent' AND tries = 1")" = 20

t_done
