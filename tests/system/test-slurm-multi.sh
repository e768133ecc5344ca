#!/bin/bash
# test-slurm-multi.sh - spank_joule.so on a two-node Slurm cluster (tests/with-slurm.sh with
# JOULE_SLURM_NODES=2: each slurmd in network, UTS and mount namespaces of its own) with one jouled per node
# on its own emulated node, both writing one SQLite store: a job across both nodes is accounted on each
# (every step: extern, batch, srun steps), and `joule acct` sums each step's energy over its nodes. TAP.
# Environment: JOULE, JOULED, JOULE_EMU, SPANK_JOULE; SLURM_CONF and JOULE_SLURM_* from with-slurm.sh.
. "$(dirname "$0")/lib.sh"
if [ -n "${JOULE_SLURM_SKIP:-}" ]; then
        echo "1..0 # SKIP $JOULE_SLURM_SKIP"
        exit 0
fi
t_setup
t_need_joule
: "${JOULED:?}" "${SPANK_JOULE:?}" "${SLURM_CONF:?run under tests/with-slurm.sh}"
chmod 755 "$T_DIR"
cd "$JOULE_SLURM_DIR/out" || exit 1
DB=$T_DIR/joule.db
for n in jn1 jn2; do
        emu_start "fx-$n" intel2s
        cfg=$T_DIR/$n.yml
        printf 'database:\n  url: %s\nnode:\n  name: %s\n  socket: %s\n  sample_ms: 100\n  period: 1\n  state_dir: %s\n' \
                "$DB" "$n" "$T_DIR/$n.sock" "$T_DIR/$n.state" >"$cfg"
        [ -f "$DB" ] || "$JOULE" -c "$cfg" db init >/dev/null
        "$NS_RUN" "$FX" -- "$JOULED" -c "$cfg" </dev/null >>"$T_DIR/$n.log" 2>&1 &
        T_PIDS+=($!)
        # the plugin's configuration on that node (its mount namespace shows nodes/NAME at node/)
        printf 'node:\n  socket: %s\n' "$T_DIR/$n.sock" >"$JOULE_SLURM_DIR/nodes/$n/joule.yml"
done
for n in jn1 jn2; do
        for _ in $(seq 100); do [ -S "$T_DIR/$n.sock" ] && break; sleep 0.05; done
        t_check "jouled of $n runs" -- test -S "$T_DIR/$n.sock"
done
echo "optional $SPANK_JOULE config=$JOULE_SLURM_DIR/node/joule.yml" >"$JOULE_SLURM_PLUGSTACK"
J() { "$JOULE" -c "$T_DIR/jn1.yml" "$@"; }
acct_wait() { # acct_wait JOB N NODES: until N ended steps of JOB, each on NODES nodes at least (10 s)
        local out
        for _ in $(seq 100); do
                out=$(J acct --json --job "$1" --from -1h 2>/dev/null)
                "$PY" -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if len(j) >= int(sys.argv[2]) and all(r["end"] for r in j) else 1)' "$out" "$2" 2>/dev/null && break
                sleep 0.1
        done
        printf '%s' "$out"
}

srun -N2 -n4 sh -c 'echo SLURM_JOB_ID=$SLURM_JOB_ID; hostname' >"$T_DIR/a.out" 2>"$T_DIR/a.err"
t_ok $? "srun -N2 -n4 across two nodes"
t_check "... tasks ran on jn1 and jn2" -- sh -c "grep -qx jn1 '$T_DIR/a.out' && grep -qx jn2 '$T_DIR/a.out'"
JOB=$(sed -n 's/^SLURM_JOB_ID=//p' "$T_DIR/a.out" | head -1)
sleep 1.2 # the store takes each jouled's rows within a period
OUT=$(acct_wait "$JOB" 2)
t_check "... $JOB.0 and $JOB.extern accounted on both nodes" -- jtest "$OUT" \
        "sorted(r['jobid'] for r in j) == ['$JOB.0', '$JOB.extern'] and all(sorted(r['nodes']) == ['jn1', 'jn2'] and r['end'] for r in j)"
t_check "... each step's energy in joule acct is the sum over its nodes" -- "$PY" - "$OUT" "$DB" "$JOB" <<'EOF'
import json, sqlite3, sys
rows = json.loads(sys.argv[1]); db = sqlite3.connect(sys.argv[2]); job = int(sys.argv[3])
ok = True
for r in rows:
    per = db.execute("SELECT node, energy_uj FROM steps WHERE job_id = ? AND step_id = ?", (job, r["step_id"])).fetchall()
    s = sum(e for _, e in per) / 1e6
    print(r["jobid"], per, s, r["energy_j"])
    ok = ok and len(per) == 2 and all(e > 0 for _, e in per) and abs(s - r["energy_j"]) < 1e-3
sys.exit(0 if ok else 1)
EOF

JOB=$(sbatch --parsable -N2 --joule=on --joule-policy=min_energy -o "$T_DIR/b.out" \
        --wrap "srun -N2 -n2 sh -c 'echo \$(hostname) \$JOULE_POLICY'")
t_ok $? "sbatch -N2 --joule=on --joule-policy=min_energy: job $JOB"
for _ in $(seq 300); do squeue -h -j "$JOB" | grep -q . || break; sleep 0.1; done
t_check "... the step's tasks on both nodes see JOULE_POLICY=min_energy" -- \
        sh -c "grep -qx 'jn1 min_energy' '$T_DIR/b.out' && grep -qx 'jn2 min_energy' '$T_DIR/b.out'"
sleep 1.2
OUT=$(acct_wait "$JOB" 3)
t_check "... $JOB.batch on the first node, $JOB.0 and $JOB.extern on both" -- jtest "$OUT" \
        "sorted((r['jobid'], tuple(sorted(r['nodes']))) for r in j) == [('$JOB.0', ('jn1', 'jn2')), ('$JOB.batch', ('jn1',)), ('$JOB.extern', ('jn1', 'jn2'))]"
t_done
