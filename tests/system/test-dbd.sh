#!/bin/bash
# test-dbd.sh sqlite|postgres - joule-dbd with node reporters (test-reporter-feed) on loopback, a real munged
# (run under tests/with-munge.sh) and a real database: records arrive exactly once; a reporter started
# before the dbd spools and replays; kill -9 of the dbd mid-stream and a restart lose and duplicate
# nothing; the database unavailable for seconds (PostgreSQL stopped; SQLite locked) loses nothing; bad
# input of every kind is refused with a logged reason naming the peer while good clients are served and
# what was accepted is kept; SIGHUP reloads; SIGTERM stores everything and exits 0; steps, jobs, nodes and
# the energy aggregations hold the exact sums. Environment: JOULE_DBD, FEED (test-reporter-feed).
set -u
backend=${1:-sqlite}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cluster.sh"

if [ "$(id -u)" -ne 0 ]; then
        echo "1..0 # SKIP needs root (munged, PostgreSQL as its user)"
        exit 0
fi
cl_setup
cl_munge_start || { echo "1..0 # SKIP munged does not start"; exit 0; }
if [ "$backend" = postgres ]; then
        cl_pg_start || { echo "1..0 # SKIP no PostgreSQL server (apt-get install postgresql)"; exit 0; }
fi
URL=$(cl_db_url "$backend")
PORT=$(cl_port)
cl_dbd_config "$CL_DIR/dbd.yml" "$URL" "$PORT"
LOG=$CL_DIR/dbd.log
q() { cl_sql "$URL" "$1"; }
expect_energy() { echo $(($1 * 1000000 + $1 * ($1 + 1) / 2)); } # sum of 1000000 + s, s = 1..N
node() { # NAME [YAML-LINES under node:]
        cl_node_config "$CL_DIR/$1.yml" "$1" "$PORT" "${2:-}"
        echo "$CL_DIR/$1.yml"
}
check_node() { # NAME N DESCRIPTION: N records, seq 1..N once each, exact energy
        local got
        got=$(q "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq), SUM(energy_uj) FROM periodic_metrics
                 WHERE node = '$1'")
        local want="$2|$2|1|$2|$(expect_energy "$2")"
        [ "${3:-}" = "job" ] && want="$2|$2|2|$(($2 + 1))|$(expect_energy "$2")"
        [ "$got" = "$want" ] || { echo "node $1: got $got, want $want"; return 1; }
}

cl_dbd_start "$CL_DIR/dbd.yml" "$LOG"
t_ok $? "joule-dbd starts on $backend and listens"

# 1. exactly once, with a job step around the records
N1=300
c1=$(node n1 "  partition: p1
  island: i1")
t_check "reporter n1: $N1 records and a job step acknowledged" -- "$FEED" -c "$c1" -n $N1 --job 4242
t_check "n1: every record stored once with the exact energy" -- check_node n1 $N1 job
t_check "n1: the step's energy, times, average power and complete flag" -- test \
        "$(q "SELECT energy_uj, end_us - start_us, user_name, complete, CAST(ROUND(avg_power_w * 1000) AS INTEGER) FROM steps
              WHERE job_id = 4242 AND step_id = 0 AND node = 'n1'")" = \
        "$(expect_energy $N1)|$((N1 * 1000000))|alice|1|$(((($(expect_energy $N1)) * 1000 + N1 * 500000) / (N1 * 1000000)))"
t_check "n1: the jobs row sums the step over its nodes" -- test \
        "$(q "SELECT nodes, node_count, energy_uj, complete FROM jobs WHERE job_id = 4242")" = "n1|1|$(expect_energy $N1)|1"
t_check "n1: records carry the job id and per-domain energies" -- test \
        "$(q "SELECT COUNT(*) FROM periodic_metrics WHERE node = 'n1' AND job_id = 4242 AND step_id = 0
              AND domains_json LIKE '{\"package-0\":%,\"dram-0\":%}'")" = "$N1"

# 2. any start order: the reporter first, the dbd later
cl_dbd_stop
t_ok $? "joule-dbd stops on SIGTERM with exit status 0"
N2=200
c2=$(node n2)
"$FEED" -c "$c2" -n $N2 --wait-ms 30000 2>"$CL_DIR/n2.err" &
f2=$!
sleep 1.5
t_check "n2 spools while no dbd is up" -- test "$(stat -c %s "$CL_DIR/spool-n2/records.spool")" -gt 8000
t_check "n2 waits for the dbd" -- kill -0 $f2
cl_dbd_start "$CL_DIR/dbd.yml" "$LOG"
t_ok $? "joule-dbd starts after the reporter"
wait $f2
t_ok $? "n2: the spool is replayed and acknowledged"
t_check "n2: every record once" -- check_node n2 $N2

# 3. kill -9 of the dbd mid-stream, then a restart
N3=3000
c3=$(node n3 "  partition: p1")
"$FEED" -c "$c3" -n $N3 --rate 4000 --wait-ms 60000 2>"$CL_DIR/n3.err" &
f3=$!
sleep 0.4
cl_dbd_kill9
t_diag "killed joule-dbd with -9 at $(q "SELECT COUNT(*) FROM periodic_metrics WHERE node = 'n3'") of $N3 records"
sleep 0.5
cl_dbd_start "$CL_DIR/dbd.yml" "$LOG"
t_ok $? "joule-dbd restarts after kill -9"
wait $f3
t_ok $? "n3: reporter finished across the kill"
t_check "n3: no record missing, none duplicated" -- check_node n3 $N3

# 4. the database unavailable for a few seconds
N4=1500
c4=$(node n4)
"$FEED" -c "$c4" -n $N4 --rate 1000 --wait-ms 60000 2>"$CL_DIR/n4.err" &
f4=$!
sleep 0.3
if [ "$backend" = postgres ]; then
        cl_pg_stop
        t_diag "PostgreSQL stopped"
        sleep 3
        cl_pg_start
        t_ok $? "PostgreSQL starts again"
else
        # a writer holding SQLite's lock longer than the store's busy timeout (5 s)
        (echo "BEGIN IMMEDIATE;"; echo "INSERT INTO events (time_us, kind) VALUES (0, 'test-lock');"; sleep 6.5
         echo "ROLLBACK;") | sqlite3 "$URL" &
        wait $!
fi
wait $f4
t_ok $? "n4: reporter finished across the database outage"
t_check "n4: nothing lost, nothing duplicated" -- check_node n4 $N4
t_check "the dbd logged the outage and the recovery" -- grep -q "database reachable again" "$LOG"

# 5. bad input on the port; the daemon keeps serving, what was accepted stays
ce=$(node evil1)
declare -A reason=(
        [random]="not a joule frame"
        [wrong-version]="wrong protocol version"
        [oversized]="oversized frame"
        [truncated]="truncated frame"
        [no-cred]="without a MUNGE credential"
        [forged-cred]="MUNGE credential rejected"
        [cred-other-node]="does not name node"
        [before-hello]="RECORD frame before HELLO"
        [second-hello]="a second HELLO"
        [other-node]="RECORD of node 'intruder'"
)
for mode in random wrong-version oversized truncated no-cred forged-cred cred-other-node before-hello second-hello \
        other-node; do
        t_check "bad input ($mode): the dbd drops the connection" -- "$FEED" -c "$ce" --evil "$mode"
        t_check "bad input ($mode): logged with the peer and the reason" -- \
                grep -q "peer 127.0.0.1:[0-9]*.*${reason[$mode]}.*connection dropped" "$LOG"
done
t_check "joule-dbd is still running" -- kill -0 "$CL_DBD_PID"
c5=$(node n5)
t_check "a good reporter is served after the bad input" -- "$FEED" -c "$c5" -n 50
t_check "n5: every record once" -- check_node n5 50
for _ in $(seq 50); do
        [ "$(q "SELECT COUNT(*) FROM periodic_metrics WHERE node = 'evil1'")" = 5 ] && break
        sleep 0.1
done
t_check "the 5 records accepted before a bad frame are kept" -- test \
        "$(q "SELECT COUNT(*) FROM periodic_metrics WHERE node = 'evil1'")" = 5

# 6. SIGHUP reloads the batch settings
sed -i 's/batch_records: .*/batch_records: 77/' "$CL_DIR/dbd.yml"
kill -HUP "$CL_DBD_PID"
for _ in $(seq 30); do grep -q "reloaded: batch_records 77" "$LOG" && break; sleep 0.1; done
t_check "SIGHUP reloads dbd.batch_records" -- grep -q "reloaded: batch_records 77" "$LOG"
t_check "n1 again after the reload: nothing new, nothing duplicated" -- "$FEED" -c "$c1" -n $N1 --job 4242
t_check "n1: still every record once" -- check_node n1 $N1 job

# 7. SIGTERM: exit 0 with everything stored; nodes and aggregations
cl_dbd_stop
t_ok $? "joule-dbd exits 0 on SIGTERM"
total=$(q "SELECT SUM(energy_uj) FROM periodic_metrics")
t_check "cluster aggregations sum to the records' energy ($total µJ)" -- test \
        "$(q "SELECT SUM(energy_uj) FROM periodic_aggregations WHERE scope = 'cluster'")" = "$total"
p1=$(q "SELECT SUM(energy_uj) FROM periodic_metrics WHERE node IN ('n1', 'n3')")
t_check "partition p1 aggregations sum to n1 and n3 ($p1 µJ)" -- test \
        "$(q "SELECT SUM(energy_uj) FROM periodic_aggregations WHERE scope = 'partition' AND scope_key = 'p1'")" = "$p1"
t_check "island i1 aggregations hold n1 only" -- test \
        "$(q "SELECT SUM(energy_uj) FROM periodic_aggregations WHERE scope = 'island' AND scope_key = 'i1'")" = \
        "$(q "SELECT SUM(energy_uj) FROM periodic_metrics WHERE node = 'n1'")"
t_check "node aggregations sum to each node's records" -- test \
        "$(q "SELECT COUNT(*) FROM (SELECT node, SUM(energy_uj) AS e FROM periodic_metrics GROUP BY node) r
              LEFT JOIN (SELECT scope_key, SUM(energy_uj) AS e FROM periodic_aggregations WHERE scope = 'node'
              GROUP BY scope_key) a ON a.scope_key = r.node WHERE a.e IS NULL OR a.e <> r.e")" = 0
t_check "n1's node windows cover exactly the time of its records" -- test \
        "$(q "SELECT SUM(covered_us) FROM periodic_aggregations WHERE scope = 'node' AND scope_key = 'n1'")" = \
        "$(q "SELECT SUM(end_us - start_us) FROM periodic_metrics WHERE node = 'n1'")"
gap=$(q "SELECT SUM(gap_us) FROM periodic_metrics")
t_check "cluster aggregations sum the records' time with estimated energy ($gap µs)" -- test \
        "$(q "SELECT SUM(gap_us) FROM periodic_aggregations WHERE scope = 'cluster'")" = "$gap" -a "$gap" -gt 0
t_check "n1's node windows hold its records' gap_us" -- test \
        "$(q "SELECT SUM(gap_us) FROM periodic_aggregations WHERE scope = 'node' AND scope_key = 'n1'")" = \
        "$(q "SELECT SUM(gap_us) FROM periodic_metrics WHERE node = 'n1'")"
t_check "every window says how long its records cover it (no more than the window)" -- test \
        "$(q "SELECT COUNT(*) FROM periodic_aggregations WHERE covered_us IS NULL OR covered_us > end_us - start_us
              OR covered_us < 0")" = 0
t_check "a window's node count and power: the first minute of n1..n5" -- test \
        "$(q "SELECT node_count, records FROM periodic_aggregations WHERE scope = 'cluster' ORDER BY start_us LIMIT 1")" = \
        "6|$((4 * 60 + 50 + 5))"
t_check "every node heard from is in nodes, disconnected, with last_seen and last_seq" -- test \
        "$(q "SELECT COUNT(*) FROM nodes WHERE last_seen_us IS NOT NULL AND status = 'disconnected'
              AND name IN ('n1', 'n2', 'n3', 'n4', 'n5', 'evil1')")" = 6
t_check "last_seq of every disconnected node is its newest stored seq (n1: its job's end, seq $((N1 + 2)))" -- test \
        "$(q "SELECT name, last_seq FROM nodes WHERE name IN ('n1', 'n2', 'n3', 'n4', 'n5', 'evil1') ORDER BY name")" = \
        "$(printf 'evil1|5\nn1|%s\nn2|%s\nn3|%s\nn4|%s\nn5|50' $((N1 + 2)) $N2 $N3 $N4)"
t_check "n1's partition and island come from its HELLO" -- test \
        "$(q "SELECT partition_name, island FROM nodes WHERE name = 'n1'")" = "p1|i1"
if ! t_done; then
        sed 's/^/# dbd: /' "$LOG" | tail -60
        exit 1
fi
