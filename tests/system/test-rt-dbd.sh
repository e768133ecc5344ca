#!/bin/bash
# test-rt-dbd.sh - the runtime's records through jouled, its spool and joule-dbd into PostgreSQL (run under
# tests/with-munge.sh; PostgreSQL and joule-dbd started here by lib-cluster.sh): an application signature, a
# loop and two policy decisions sent by tests/system/test-rt-client (src/runtime/report.c) for a job step on
# an emulated node, with joule-dbd killed -9 and jouled killed -9 and restarted between them; each record is
# stored exactly once and `joule acct -l`, `joule acct -r` and `joule events` read them from PostgreSQL.
# TAP. Environment: JOULE, JOULED, JOULE_DBD, JOULE_EMU, NS_RUN, RT_CLIENT.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cluster.sh"
t_setup
t_need_joule
: "${JOULED:?}" "${JOULE_DBD:?}" "${RT_CLIENT:?}"
cl_setup
cl_munge_start || { echo "1..0 # SKIP munged does not start"; exit 0; }
cl_pg_start || { echo "1..0 # SKIP no PostgreSQL server (apt-get install postgresql)"; exit 0; }
URL=$(cl_db_url postgres)
PORT=$(cl_port)
cl_dbd_config "$CL_DIR/dbd.yml" "$URL" "$PORT"
"$JOULE" -c "$CL_DIR/dbd.yml" db init >/dev/null
cl_dbd_start "$CL_DIR/dbd.yml"
t_ok $? "joule-dbd starts on PostgreSQL"

emu_start n intel2s
CFG=$CL_DIR/rtn.yml
cl_node_config "$CFG" rtn "$PORT" "  socket: $CL_DIR/rtn.sock
  state_dir: $CL_DIR/rtn.state
  sample_ms: 100
  period: 1"
export JOULE_SOCKET=$CL_DIR/rtn.sock
jd_start() {
        rm -f "$JOULE_SOCKET"
        "$NS_RUN" "$FX" -- "$JOULED" -c "$CFG" </dev/null >>"$CL_DIR/jouled.log" 2>&1 &
        JD_PID=$!
        T_PIDS+=($JD_PID)
        for _ in $(seq 100); do [ -S "$JOULE_SOCKET" ] && return 0; sleep 0.05; done
        return 1
}
jd_start
t_ok $? "jouled starts with node.dbd"
J() { "$JOULE" -c "$CFG" "$@"; }
J job begin --job 700 --cpus 2-3 >/dev/null
t_ok $? "job 700 begins"
export JOULE_JOB_ID=700 JOULE_STEP_ID=0
t_check "the application's signature" -- "$RT_CLIENT" app dbdapp t7
cl_dbd_kill9
t_check "with joule-dbd killed -9: a loop's signature (into the spool)" -- "$RT_CLIENT" loop 7:2:1 50
kill -9 "$JD_PID"
jd_start
t_ok $? "jouled killed -9 and started again"
t_check "a policy decision after the restart" -- "$RT_CLIENT" event policy 0.05 "min_energy selected"
cl_dbd_start "$CL_DIR/dbd.yml"
t_ok $? "joule-dbd starts again"
t_check "another decision" -- "$RT_CLIENT" event frequency 1800000 "2 CPUs to 1800 MHz"
J job end --job 700 >/dev/null
unset JOULE_JOB_ID JOULE_STEP_ID
A() { "$JOULE" -c "$CFG" "$@" --url "$URL"; }
for _ in $(seq 100); do [ "$(A events --json --job 700 | grep -c '"kind"')" = 2 ] && break; sleep 0.1; done
OUT=$(A acct -l --json --job 700)
t_check "acct -l on PostgreSQL: the application's row" -- jtest "$OUT" \
        "len(j) == 1 and j[0]['node'] == 'rtn' and j[0]['app_name'] == 'dbdapp' and j[0]['energy_j'] == 2500.25 and j[0]['tag'] == 't7' and j[0]['policy_th'] == 0.05"
OUT=$(A acct -r --json --job 700)
t_check "acct -r on PostgreSQL: the loop sent while joule-dbd was down, once" -- jtest "$OUT" \
        "len(j) == 1 and j[0]['loop'] == '7:2:1' and j[0]['iterations'] == 50 and j[0]['gbs'] == 10.25"
OUT=$(A events --json --job 700)
t_check "events on PostgreSQL: both decisions, once each, in order" -- jtest "$OUT" \
        "[(e['kind'], e['value'], e['message']) for e in j] == [('policy', 0.05, 'min_energy selected'), ('frequency', 1800000, '2 CPUs to 1800 MHz')]"
t_check "the step is accounted on PostgreSQL too" -- sh -c "'$JOULE' -c '$CFG' acct --json --job 700 --url '$URL' | grep -q rtn"
kill -TERM "$JD_PID"
cl_dbd_stop
t_ok $? "joule-dbd stops cleanly"
t_done
