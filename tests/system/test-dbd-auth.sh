#!/bin/bash
# test-dbd-auth.sh - joule-dbd checks HELLO credentials off its event loop, and closes the old connection of
# a node that says HELLO again (docs/dbd.md). With a real munged (run under tests/with-munge.sh) stopped by
# SIGSTOP while a node's HELLO waits on it (MUNGE's client then waits up to its 10 s timeout), a node
# already served must still have its records stored and ACKed within 3 s; the waiting HELLO is accepted
# once munged runs again. A node whose old connection is still open connects again: the old one is closed
# at once, with the reason in the log, and nothing is stored twice. Environment: JOULE_DBD, PEER
# (test-dbd-peer).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cluster.sh"

if [ "$(id -u)" -ne 0 ]; then
        echo "1..0 # SKIP needs root (munged as its user)"
        exit 0
fi
cl_setup
cl_munge_start || { echo "1..0 # SKIP munged does not start"; exit 0; }
munged_pid=$(cat "${CL_MUNGE_PID_FILE:-$(dirname "$JOULE_MUNGE_SOCKET")/munged.pid}")
URL=$(cl_db_url sqlite)
PORT=$(cl_port)
CL_BATCH_MS=50 cl_dbd_config "$CL_DIR/dbd.yml" "$URL" "$PORT"
LOG=$CL_DIR/dbd.log
q() { cl_sql "$URL" "$1"; }
wait_line() { # FILE REGEX: up to 10 s
        for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
        return 1
}
stored() { q "SELECT COUNT(*), COUNT(DISTINCT seq) FROM periodic_metrics WHERE node = '$1'"; }
munge_cont() { kill -CONT "$munged_pid" 2>/dev/null; }
t_cleanup() { munge_cont; }

cl_dbd_start "$CL_DIR/dbd.yml" "$LOG"
t_ok $? "joule-dbd starts"

# 1. a HELLO waiting on munged does not stall the nodes already served
"$PEER" "127.0.0.1:$PORT" a1 -n 10 -G "$CL_DIR/go-a1" -m 10 -T 3 >"$CL_DIR/a1.out" 2>"$CL_DIR/a1.err" &
a1=$!
wait_line "$CL_DIR/a1.out" "^acked 10$"
t_ok $? "node a1 connected and its first 10 records are acknowledged"
"$PEER" "127.0.0.1:$PORT" b1 -n 5 -g "$CL_DIR/go-b1" -t 30 >"$CL_DIR/b1.out" 2>"$CL_DIR/b1.err" &
b1=$!
wait_line "$CL_DIR/b1.out" "^ready$"
kill -STOP "$munged_pid"
t_diag "munged stopped"
touch "$CL_DIR/go-b1"
sleep 0.5 # b1's HELLO reaches the dbd, whose MUNGE decode now waits on munged
touch "$CL_DIR/go-a1"
wait $a1
t_ok $? "a1's next 10 records are stored and ACKed within 3 s while b1's HELLO waits on a stopped munged"
t_diag "a1: $(tail -1 "$CL_DIR/a1.out") $(cat "$CL_DIR/a1.err")"
munge_cont
t_diag "munged continued"
wait $b1
t_ok $? "b1's HELLO is accepted once munged answers, and its records acknowledged"
t_diag "b1: $(cat "$CL_DIR/b1.err")"
t_check "a1: 20 records once" -- test "$(stored a1)" = "20|20"
t_check "b1: 5 records once" -- test "$(stored b1)" = "5|5"

# 2. a node connects again while its old connection is still open: the old one is closed at once
"$PEER" "127.0.0.1:$PORT" c1 -n 10 -c 10 >"$CL_DIR/c1-old.out" 2>"$CL_DIR/c1-old.err" &
c1=$!
wait_line "$CL_DIR/c1-old.out" "^acked 10$"
t_ok $? "node c1's first connection: 10 records acknowledged"
t_check "c1's second connection: 10 more records acknowledged" -- "$PEER" "127.0.0.1:$PORT" c1 -n 10 -s 11
wait $c1
t_ok $? "c1's old connection is closed by the dbd (within 10 s)"
t_diag "c1's first connection: $(tail -1 "$CL_DIR/c1-old.out") $(cat "$CL_DIR/c1-old.err")"
t_check "the log names the reason" -- grep -q "peer 127.0.0.1:[0-9]* (node c1): the node connected again" "$LOG"
t_check "c1: 20 records once" -- test "$(stored c1)" = "20|20"

cl_dbd_stop
t_ok $? "joule-dbd exits 0 on SIGTERM"
if ! t_done; then
        sed 's/^/# dbd: /' "$LOG" | tail -40
        exit 1
fi
