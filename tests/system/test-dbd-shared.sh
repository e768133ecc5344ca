#!/bin/bash
# test-dbd-shared.sh - two joule-dbd on two ports sharing one PostgreSQL (a real server on loopback, a real
# munged; run under tests/with-munge.sh), with node reporters (test-reporter-feed) split between them: a job
# whose steps run on nodes of both dbds, and one node that switches dbd mid-run (its reporter killed with -9
# and restarted against the other dbd, as a jouled moved to another service node). Afterwards every record
# is stored exactly once with the exact energy, steps and jobs are right (the multi-node job sums its
# nodes' steps written by different dbds), nodes rows are right, and the energy aggregations that both dbds
# computed equal the sum of the records (cluster and per partition: nothing counted twice or missed).
# Environment: JOULE_DBD, FEED (test-reporter-feed).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cluster.sh"

if [ "$(id -u)" -ne 0 ]; then
        echo "1..0 # SKIP needs root (munged, PostgreSQL as its user)"
        exit 0
fi
cl_setup
cl_munge_start || { echo "1..0 # SKIP munged does not start"; exit 0; }
cl_pg_start || { echo "1..0 # SKIP no PostgreSQL server (apt-get install postgresql)"; exit 0; }
URL=$(cl_db_url postgres)
PA=$(cl_port)
PB=$(cl_port)
[ "$PA" != "$PB" ] || PB=$(cl_port)
CL_AGG_PERIOD=60 cl_dbd_config "$CL_DIR/dbd-a.yml" "$URL" "$PA"
CL_AGG_PERIOD=60 cl_dbd_config "$CL_DIR/dbd-b.yml" "$URL" "$PB"
q() { cl_sql "$URL" "$1"; }
expect_energy() { echo $(($1 * 1000000 + $1 * ($1 + 1) / 2)); } # sum of 1000000 + s, s = 1..N
node() { # NAME DBD_PORT PARTITION
        cl_node_config "$CL_DIR/$1.yml" "$1" "$2" "  partition: $3"
        echo "$CL_DIR/$1.yml"
}
check_node() { # NAME N: N records, seq 2..N+1 (seq 1 and N+2 are the job's begin and end), exact energy
        local got want
        got=$(q "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq), SUM(energy_uj) FROM periodic_metrics
                 WHERE node = '$1'")
        want="$2|$2|2|$(($2 + 1))|$(expect_energy "$2")"
        [ "$got" = "$want" ] || { echo "node $1: got $got, want $want"; return 1; }
}

cl_dbd_start "$CL_DIR/dbd-a.yml" "$CL_DIR/dbd-a.log"
t_ok $? "joule-dbd A starts on port $PA"
DA=$CL_DBD_PID
T_PIDS+=("$DA")
cl_dbd_start "$CL_DIR/dbd-b.yml" "$CL_DIR/dbd-b.log"
t_ok $? "joule-dbd B starts on port $PB, same database"
DB=$CL_DBD_PID
T_PIDS+=("$DB")

# nodes a1, a2 (partition pa) report to A; b1, b2 (partition pb) to B; s1 (partition pa) starts on A and
# moves to B. Job 5000 runs on a1 and b1 (one step, two nodes, two dbds); every other node has its own job.
N=1500
NS=3000
pids=()
for spec in "a1 $PA pa 5000" "a2 $PA pa 5002" "b1 $PB pb 5000" "b2 $PB pb 5003"; do
        set -- $spec
        "$FEED" -c "$(node "$1" "$2" "$3")" -n $N --job "$4" --rate 1500 --wait-ms 60000 2>"$CL_DIR/$1.err" &
        pids+=($!)
done
cs=$(node s1 "$PA" pa)
"$FEED" -c "$cs" -n $NS --job 5100 --rate 1500 --wait-ms 60000 2>"$CL_DIR/s1.err" &
fs=$!
sleep 1
AT_MOVE=$(q "SELECT COUNT(*) FROM periodic_metrics WHERE node = 's1'")
kill -9 $fs
wait $fs 2>/dev/null
cs=$(node s1 "$PB" pa)
"$FEED" -c "$cs" -n $NS --job 5100 --rate 1500 --wait-ms 60000 2>>"$CL_DIR/s1.err"
t_ok $? "s1: moved from A to B after $AT_MOVE records stored; the rest acknowledged by B"
ok=0
for p in "${pids[@]}"; do wait "$p" || ok=1; done
t_ok $ok "a1, a2, b1, b2: every record acknowledged"

# both dbds stop (SIGTERM: store everything, recompute their aggregation windows), one after the other
CL_DBD_PID=$DA
cl_dbd_stop
t_ok $? "joule-dbd A stops with exit status 0"
CL_DBD_PID=$DB
cl_dbd_stop
t_ok $? "joule-dbd B stops with exit status 0"
RA=$(sed -n 's/.*stopped: \([0-9]*\) records received.*/\1/p' "$CL_DIR/dbd-a.log")
RB=$(sed -n 's/.*stopped: \([0-9]*\) records received.*/\1/p' "$CL_DIR/dbd-b.log")
t_check "s1's records went to both dbds (A received $RA, B $RB; their own nodes sent $((2 * N)) each)" -- \
        test "${RA:-0}" -gt $((2 * N)) -a "${RB:-0}" -gt $((2 * N))

for n in a1 a2 b1 b2; do
        t_check "$n: every record stored once with the exact energy" -- check_node $n $N
done
t_check "s1: every record stored once across the move, none duplicated" -- check_node s1 $NS
t_check "no (node, seq) twice anywhere" -- \
        test "$(q "SELECT COUNT(*) - COUNT(DISTINCT node || ':' || seq) FROM periodic_metrics")" = 0

E=$(expect_energy $N)
ES=$(expect_energy $NS)
t_check "job 5000: one jobs row over a1 and b1 (written by two dbds), energies summed, complete" -- test \
        "$(q "SELECT nodes, node_count, energy_uj, complete, user_name FROM jobs WHERE job_id = 5000 AND step_id = 0")" = \
        "a1,b1|2|$((2 * E))|1|alice"
t_check "job 5000: a step row per node" -- test \
        "$(q "SELECT string_agg(node || '=' || energy_uj || '/' || complete, ',' ORDER BY node) FROM steps WHERE job_id = 5000")" = \
        "a1=$E/1,b1=$E/1"
t_check "job 5100 of s1: begun through A, ended through B, complete with its energy" -- test \
        "$(q "SELECT nodes, node_count, energy_uj, complete FROM jobs WHERE job_id = 5100")" = "s1|1|$ES|1"
t_check "jobs 5002 and 5003: one node each" -- test \
        "$(q "SELECT string_agg(nodes || '=' || energy_uj, ',' ORDER BY job_id) FROM jobs WHERE job_id IN (5002, 5003)")" = \
        "a2=$E,b2=$E"
# last_seq is refreshed at most every 10 s per node (docs/dbd.md): here it need only be one that was sent
t_check "five nodes rows: partition, a sequence number that was sent, disconnected" -- test \
        "$(q "SELECT string_agg(name || ':' || partition_name || ':' || (last_seq BETWEEN 1 AND $((NS + 2))) || ':' || status, ','
              ORDER BY name) FROM nodes")" = \
        "a1:pa:true:disconnected,a2:pa:true:disconnected,b1:pb:true:disconnected,b2:pb:true:disconnected,s1:pa:true:disconnected"

TOTAL=$(q "SELECT SUM(energy_uj) FROM periodic_metrics")
t_check "the records hold exactly what the reporters sent ($TOTAL µJ)" -- test "$TOTAL" = $((4 * E + ES))
t_check "cluster aggregations, computed by both dbds, sum to the records' energy" -- test \
        "$(q "SELECT SUM(energy_uj) || '|' || SUM(records) FROM periodic_aggregations WHERE scope = 'cluster'")" = \
        "$TOTAL|$((4 * N + NS))"
t_check "each cluster window equals the sum of the records in it" -- test \
        "$(q "SELECT COUNT(*) FROM periodic_aggregations a WHERE a.scope = 'cluster' AND a.energy_uj <>
              (SELECT SUM(m.energy_uj) FROM periodic_metrics m WHERE m.start_us >= a.start_us AND m.start_us < a.end_us)")" = 0
t_check "partition pa sums a1, a2 and s1; pb sums b1 and b2" -- test \
        "$(q "SELECT string_agg(scope_key || '=' || e, ',' ORDER BY scope_key) FROM (SELECT scope_key, SUM(energy_uj) AS e
              FROM periodic_aggregations WHERE scope = 'partition' GROUP BY scope_key) x")" = \
        "pa=$((2 * E + ES)),pb=$((2 * E))"
t_check "no window stored twice" -- test \
        "$(q "SELECT COUNT(*) - COUNT(DISTINCT scope || scope_key || start_us) FROM periodic_aggregations")" = 0
if [ "$T_FAILED" -gt 0 ]; then
        for f in dbd-a.log dbd-b.log s1.err; do
                t_diag "$f:"
                tail -15 "$CL_DIR/$f" | sed 's/^/#   /'
        done
fi
t_done
