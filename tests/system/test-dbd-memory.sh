#!/bin/bash
# test-dbd-memory.sh - joule-dbd's cache stays within dbd.max_memory_mb under backpressure (docs/dbd.md):
# with dbd.max_memory_mb 32 and SQLite locked by another writer until the cache is full, 10 simulated nodes
# (test-dbd-peer) send 200,000 records (about twice what fits); the dbd stops reading at the limit ("cache
# at N MiB" with N <= 32), its peak RSS (VmHWM) stays within the setting plus the documented fixed overhead
# (12 MiB; not checked in a sanitizer build, whose allocator keeps freed memory in quarantine), and once the
# lock is gone every record is stored once. Run under tests/with-munge.sh. Environment: JOULE_DBD, PEER.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cluster.sh"

if [ "$(id -u)" -ne 0 ]; then
        echo "1..0 # SKIP needs root (munged as its user)"
        exit 0
fi
LIMIT_MB=32
OVERHEAD_MB=12
NODES=10
PER=20000
cl_setup
cl_munge_start || { echo "1..0 # SKIP munged does not start"; exit 0; }
URL=$(cl_db_url sqlite)
PORT=$(cl_port)
CL_BATCH_RECORDS=5000 cl_dbd_config "$CL_DIR/dbd.yml" "$URL" "$PORT" "  max_memory_mb: $LIMIT_MB"
LOG=$CL_DIR/dbd.log
q() { cl_sql "$URL" "$1"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$CL_DBD_PID/status"; }

# another writer holds SQLite's lock (until $CL_DIR/unlock appears, 60 s at most): the dbd's writer retries
# while the nodes keep sending
(echo "BEGIN IMMEDIATE;"; echo "CREATE TABLE lockt (x); INSERT INTO lockt VALUES (1);"
 for _ in $(seq 600); do [ -f "$CL_DIR/unlock" ] && break; sleep 0.1; done
 echo "ROLLBACK;") | sqlite3 "$URL" &
lock=$!
sleep 0.3
cl_dbd_start "$CL_DIR/dbd.yml" "$LOG"
t_ok $? "joule-dbd starts (dbd.max_memory_mb $LIMIT_MB)"
t_diag "RSS at start: $(awk '/^VmRSS:/ {print $2}' "/proc/$CL_DBD_PID/status") kB"
pids=()
for i in $(seq $NODES); do
        "$PEER" "127.0.0.1:$PORT" "m$i" -n $PER -t 120 >/dev/null 2>"$CL_DIR/m$i.err" &
        pids+=($!)
done
for _ in $(seq 500); do grep -q "cache at" "$LOG" && break; sleep 0.1; done
t_check "the dbd stops reading when the cache is full" -- grep -q "cache at .* MiB (dbd.max_memory_mb $LIMIT_MB)" "$LOG"
sleep 1
hwm_locked=$(hwm_kb)
touch "$CL_DIR/unlock"
wait $lock
ok=0
for p in "${pids[@]}"; do wait "$p" || ok=1; done
t_ok $ok "every node's records are acknowledged once the lock is gone"
hwm=$(hwm_kb)
t_diag "VmHWM $hwm_locked kB while the database was locked, $hwm kB in all (limit $LIMIT_MB MiB + $OVERHEAD_MB MiB)"
t_diag "$(grep "cache at" "$LOG" | head -3)"
over=$(grep -o "cache at [0-9]* MiB" "$LOG" | awk -v l=$LIMIT_MB '$3 > l' | head -1)
t_check "the cache never held more than $LIMIT_MB MiB ($over)" -- test -z "$over"
if grep -q __asan_init "$JOULE_DBD"; then
        t_skip "peak RSS within $LIMIT_MB + $OVERHEAD_MB MiB" "a sanitizer build (ASan keeps freed memory)"
else
        t_check "peak RSS within $LIMIT_MB + $OVERHEAD_MB MiB" -- test "$hwm" -le $(((LIMIT_MB + OVERHEAD_MB) * 1024))
fi
cl_dbd_stop
t_ok $? "joule-dbd exits 0 on SIGTERM"
t_check "every record stored once" -- test \
        "$(q "SELECT COUNT(*), COUNT(DISTINCT node || '/' || seq) FROM periodic_metrics")" = \
        "$((NODES * PER))|$((NODES * PER))"
if ! t_done; then
        sed 's/^/# dbd: /' "$LOG" | tail -40
        exit 1
fi
