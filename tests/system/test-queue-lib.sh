# test-queue-lib.sh - what test-queue.sh and test-mail.sh share (sourced after lib.sh): a fresh database (a
# temporary SQLite file, or $JOULE_TEST_DATABASE_URL when tests/with-postgres.sh runs the test), a config
# file pointing at it, `J` to run joule with it, `sql` to run SQL on it directly (Python's sqlite3 module or
# psql), and `fake_run` to store a finished run with known phases as a runner would.
# Environment: JOULE.

q_setup() { # q_setup PREFIX: T_DIR, URL, CFG
        t_need_joule
        T_DIR=$(mktemp -d "/tmp/$1.XXXXXX")
        trap t_cleanup EXIT
        trap 'exit 130' INT TERM
        URL=${JOULE_TEST_DATABASE_URL:-$T_DIR/joule.db}
        CFG=$T_DIR/joule.yml
        export STATE_DIRECTORY=$T_DIR/state # the runner's spool (results not yet stored), not /var/lib/joule
        printf 'database:\n  url: "%s"\n' "$URL" >"$CFG"
        case $URL in
        postgres*) BACKEND=postgresql ;;
        *) BACKEND=sqlite ;;
        esac
}

J() { "$JOULE" -c "$CFG" "$@"; }

# sql STATEMENT: run it; rows come out with columns separated by '|'
sql() {
        if [ "$BACKEND" = postgresql ]; then
                psql "$URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"
        else
                "$PY" - "$URL" "$1" <<'PYEOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
for row in c.execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
c.commit()
PYEOF
        fi
}

# fake_run JOB_ID: the job FINISHED with a run of three phases, as a runner stores one:
#   [BASELINE] 5 s 12.5 J (2.5 W avg, 3 W max, 40.5 °C), compile 10 s 250 J (25 W, 31.25 W, 61 °C),
#   test 2.5 s 37.5 J (15 W, 18 W, 55 °C)
fake_run() {
        local job=$1 t=1767225600000000 # 2026-01-01T00:00:00Z
        sql "UPDATE bench_jobs SET state = 'FINISHED', started_us = $t, finished_us = $((t + 20000000)),
             message = 'finished' WHERE id = $job" &&
                sql "INSERT INTO runs (job_id, machine_id, kind, start_us, end_us, sampling_rate_ms, energy_uj)
                     SELECT id, machine_id, 'job', $t, $((t + 17500000)), 99, 300000000 FROM bench_jobs WHERE id = $job" &&
                sql "INSERT INTO phase_stats (run_id, phase, phase_order, start_us, end_us, duration_us, energy_uj,
                        avg_power_w, max_power_w, avg_temp_c, max_temp_c, cpu_utilization)
                     SELECT r.id, p.phase, p.ord, p.s, p.e, p.e - p.s, p.uj, p.aw, p.mw, p.at, p.mt, p.cu
                     FROM (SELECT MAX(id) AS id FROM runs WHERE job_id = $job) r,
                     (SELECT '[BASELINE]' AS phase, 0 AS ord, $t AS s, $((t + 5000000)) AS e, 12500000 AS uj,
                             2.5 AS aw, 3.0 AS mw, 40.0 AS at, 40.5 AS mt, 0.01 AS cu
                      UNION ALL SELECT 'compile', 1, $((t + 5000000)), $((t + 15000000)), 250000000, 25.0, 31.25,
                             58.0, 61.0, 0.95
                      UNION ALL SELECT 'test', 2, $((t + 15000000)), $((t + 17500000)), 37500000, 15.0, 18.0, 54.0,
                             55.0, 0.5) p"
}

# sink_start DIR [ARGS...]: a real SMTP server (tests/system/smtp-sink.py) on a free loopback port; SINK_PORT,
# SINK_PID. Waits (bounded) until it listens.
sink_start() {
        local dir=$1
        shift
        : "${SINK_PORT:=$(free_port)}"
        "$PY" "$SMTP_SINK" --port "$SINK_PORT" --dir "$dir" "$@" >"$T_DIR/sink.out" 2>>"$T_DIR/sink.log" &
        SINK_PID=$!
        T_PIDS+=("$SINK_PID")
        for _ in $(seq 100); do
                grep -q ready "$T_DIR/sink.out" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

sink_stop() {
        [ -n "${SINK_PID:-}" ] || return 0
        kill "$SINK_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SINK_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SINK_PID" 2>/dev/null
        wait "$SINK_PID" 2>/dev/null
        SINK_PID=
}
