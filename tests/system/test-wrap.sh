#!/bin/bash
# test-wrap.sh - counters that wrap fast lose no energy (issue 7): emulated 2-socket nodes whose RAPL
# counters wrap at 60 J (max_energy_range_uj 60000000), at 1x to 5x the model's power, read through a jouled
# with the default node.sample_ms (1000 ms: several wraps per sample at 5x). The node's power through the
# user API, `joule report` (jouled's periodic records) and `joule acct` (a job step) must each be within 1%
# of the emulator's ground truth; and `joule measure` at its default interval too. TAP. Environment: JOULE,
# JOULED, JOULE_EMU, API_PROBE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test-api-lib.sh"
t_setup
t_need_joule
: "${JOULED:?}" "${API_PROBE:?}"
chmod 755 "$T_DIR"

LOAD=0.2
for K in 1 2 3 4 5; do
        emu_start "n$K" intel2s --wrap-uj 60000000 --power-scale "$K"
        ctl load "$LOAD" >/dev/null
        # jouled with the default sampling (no node.sample_ms); records every 2 s
        NAME=wrap$K
        JD_CFG=$T_DIR/$NAME.yml
        JD_SOCK=$T_DIR/$NAME.sock
        JD_DB=$T_DIR/$NAME.db
        printf 'database:\n  url: %s\nnode:\n  name: %s\n  socket: %s\n  period: 2\n  state_dir: %s\n' \
                "$JD_DB" "$NAME" "$JD_SOCK" "$T_DIR/$NAME.state" >"$JD_CFG"
        "$JOULE" -c "$JD_CFG" db init >/dev/null
        "$NS_RUN" "$FX" -- "$JOULED" -c "$JD_CFG" </dev/null >>"$T_DIR/$NAME.log" 2>&1 &
        JD_PID=$!
        T_PIDS+=($JD_PID)
        for _ in $(seq 100); do [ -S "$JD_SOCK" ] && break; sleep 0.05; done
        t_check "${K}x: jouled starts with the default node.sample_ms" -- test -S "$JD_SOCK"
        J() { "$JOULE" -c "$JD_CFG" "$@"; }
        TRUTH=$(ctl truth)
        W=$(jget "$TRUTH" 'j["power_w"]["node"]')
        PKG_W=$(jget "$TRUTH" 'j["power_w"]["package-0"]')
        t_diag "${K}x: node $W W, package-0 $PKG_W W: package counters wrap every $(jget "$TRUTH" "round(60 / $PKG_W, 3)") s, psys every $(jget "$TRUTH" "round(60 / $W, 3)") s"

        # the user API: energy and time around a 3 s window
        sleep 1.2
        OUT=$(JOULE_SOCKET=$JD_SOCK "$API_PROBE" window 3)
        API_W=$("$PY" -c 'import sys; e, t = map(float, sys.argv[1].split()); print(e / t)' "$OUT")
        t_check "${K}x: the API's node power ($API_W W) is the node's ($W W) within 1%" -- near "$API_W" "$W" 0.01

        # joule acct: a job step of 3 s
        J job begin --job "7$K" --step 0 >/dev/null
        sleep 3
        J job end --job "7$K" --step 0 >/dev/null
        OUT=$(J acct --json --job "7$K")
        t_check "${K}x: joule acct's step power is the node's within 1%" -- jtest "$OUT" \
                "len(j) == 1 and abs(j[0]['avg_power_w'] - $W) <= 0.01 * $W"

        # joule report: jouled's periodic records so far
        OUT=$(J report --by node --json --from -1h)
        t_check "${K}x: joule report's node power is the node's within 1%" -- jtest "$OUT" \
                "[r['key'] for r in j['rows']] == ['$NAME'] and abs(j['rows'][0]['avg_power_w'] - $W) <= 0.01 * $W"
        # gaps (reads too late to unwrap for certain) are reported, not hidden; on a busy machine a few
        # are normal and cost nothing at steady power (at 5x psys wraps every 0.12 s: one stall of jouled's
        # reader that long is a gap). Reads on the 1 s sampling alone would make nearly all the time a gap;
        # the bound (a quarter) tells the wrap schedule from that with room for a loaded CI machine.
        t_check "${K}x: joule report says how much time had its energy estimated ($(jget "$OUT" 'j["rows"][0].get("gap_s")') s)" -- \
                jtest "$OUT" "0 <= j['rows'][0]['gap_s'] < 0.25 * (j['rows'][0]['energy_j'] / j['rows'][0]['avg_power_w'])"

        # joule measure at its default interval (100 ms): every domain within 1% of the truth
        T0=$(ctl truth)
        OUT=$(in_ns "$FX" "$JOULE" measure --json -- sleep 2)
        T1=$(ctl truth)
        t_check "${K}x: joule measure: every package and psys within 1% of the truth" -- "$PY" -c '
import json, sys
m, t0, t1 = (json.loads(a) for a in sys.argv[1:4])
bad = []
for d in m["domains"]:
    if d["name"] in ("package-0", "package-1", "psys"):
        truth = (t1["energy_uj"][d["name"]] - t0["energy_uj"][d["name"]]) / 1e6
        # the window of joule measure lies inside the truth window; compare powers
        tw = t1["t_s"] - t0["t_s"]
        if abs(d["energy_j"] / m["duration_s"] - truth / tw) > 0.01 * truth / tw:
            bad.append((d["name"], d["energy_j"] / m["duration_s"], truth / tw))
        # read on the wrap schedule, not every 100 ms with every interval a gap
        if d["gap_s"] > 0.5 * m["duration_s"]:
            bad.append((d["name"], "gap_s", d["gap_s"]))
print(bad)
sys.exit(1 if bad else 0)' "$OUT" "$T0" "$T1"
        # the runner's executor (`joule run`, sampling every 99 ms): one phase on the frozen emulator, so its
        # window holds exactly the phase's energy
        ctl freeze >/dev/null
        printf 'name: wrap\nenvironment:\n  EMU: %s\n  FX: %s\n  OUT: %s\nflow:\n  - name: run\n    commands: [%s]\n' \
                "$JOULE_EMU" "$FX" "$T_DIR" "'\"\$EMU\" ctl --root \"\$FX\" phase $LOAD 1.5 > \"\$OUT/run$K.json\"'" \
                >"$T_DIR/run$K.yml"
        in_ns "$FX" "$JOULE" run --scenario "$T_DIR/run$K.yml" --json --baseline 0 >"$T_DIR/run$K.out" 2>"$T_DIR/run$K.err"
        t_check "${K}x: joule run: the phase's packages and psys within 1% of the truth" -- "$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
truth = json.load(open(sys.argv[2]))["energy_uj"]
p = [p for p in j["run"]["phases"] if p["name"] == "run"][0]
bad = [(d["name"], d["energy_j"], truth[d["name"]] / 1e6) for d in p["domains"]
       if d["name"] in ("package-0", "package-1", "psys")
       and abs(d["energy_j"] - truth[d["name"]] / 1e6) > 0.01 * truth[d["name"]] / 1e6]
# read on the wrap schedule, not every 99 ms with every interval a gap
bad += [(d["name"], "gap_s", d["gap_s"]) for d in p["domains"] if d["gap_s"] > 0.5 * p["duration_s"]]
print(bad)
sys.exit(1 if bad else 0)' "$T_DIR/run$K.out" "$T_DIR/run$K.json"
        ctl thaw >/dev/null
        grep -q "must be at most a quarter" "$T_DIR/$NAME.log"
        t_ok $((!$?)) "${K}x: jouled does not ask the user to tune node.sample_ms"
        t_diag "$(sed 's/^/jouled: /' "$T_DIR/$NAME.log" | grep -iv "^jouled: *$" | tail -3)"
        jouled_stop TERM
        ctl quit >/dev/null
done

# /metrics counts the time whose energy was estimated: jouled stopped (SIGSTOP) for 3 s, longer than the
# 60 J counters' wrap period, cannot unwrap them for certain when it resumes
emu_start gap intel2s --wrap-uj 60000000
ctl load "$LOAD" >/dev/null
MP=$(free_port)
JD_CFG=$T_DIR/gap.yml
JD_SOCK=$T_DIR/gap.sock
printf 'database:\n  url: %s\nnode:\n  name: gapn\n  socket: %s\n  period: 2\n  state_dir: %s\n  metrics_listen: 127.0.0.1:%s\n' \
        "$T_DIR/gap.db" "$JD_SOCK" "$T_DIR/gap.state" "$MP" >"$JD_CFG"
"$JOULE" -c "$JD_CFG" db init >/dev/null
"$NS_RUN" "$FX" -- "$JOULED" -c "$JD_CFG" </dev/null >>"$T_DIR/gap.log" 2>&1 &
JD_PID=$!
T_PIDS+=($JD_PID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MP/metrics" >/dev/null && break; sleep 0.05; done
gap_s() { curl -sf "http://127.0.0.1:$MP/metrics" | sed -n "s/^joule_energy_gap_seconds_total{node=\"gapn\",domain=\"$1\"} //p"; }
sleep 2
G0=$(gap_s node)
t_check "/metrics has joule_energy_gap_seconds_total for the node ($G0 s before the stop)" -- test -n "$G0"
kill -STOP "$JD_PID"
sleep 3
kill -CONT "$JD_PID"
sleep 1.5
G1=$(gap_s node)
P1=$(gap_s psys)
t_check "/metrics: after 3 s stopped, the node's estimated time grew by at least 2 s ($G0 -> $G1 s; psys $P1 s)" -- \
        "$PY" -c 'import sys; g0, g1, p1 = map(float, sys.argv[1:]); sys.exit(0 if g1 - g0 >= 2 and p1 >= 2 else 1)' \
        "$G0" "$G1" "$P1"
jouled_stop TERM
ctl quit >/dev/null
t_done
