# test-api-lib.sh - helpers for the tests of the user API and the CLI verbs against a real jouled on an
# emulated node (sourced after lib.sh; not a test itself). Environment: JOULED (the daemon).

# jouled_start NAME [extra YAML lines for node:]: writes $T_DIR/NAME.yml (socket, state, SQLite database in
# $T_DIR, sampling every 100 ms, records every second) and starts jouled on the fixture $FX in its
# namespace; waits (bounded) for the socket. Sets JD_CFG, JD_SOCK, JD_PID, JD_DB.
jouled_start() {
        local name=$1
        shift
        JD_CFG=$T_DIR/$name.yml
        JD_SOCK=$T_DIR/$name.sock
        JD_DB=$T_DIR/$name.db
        {
                printf 'database:\n  url: %s\nnode:\n  name: %s\n  socket: %s\n' "$JD_DB" "$name" "$JD_SOCK"
                printf '  sample_ms: 100\n  period: 1\n  state_dir: %s\n' "$T_DIR/$name.state"
                local l
                for l in "$@"; do printf '  %s\n' "$l"; done
        } >"$JD_CFG"
        [ -f "$JD_DB" ] || "$JOULE" -c "$JD_CFG" db init >/dev/null || return 1
        "$NS_RUN" "$FX" -- "$JOULED" -c "$JD_CFG" </dev/null >>"$T_DIR/$name.log" 2>&1 & # exec chain: $! is jouled
        JD_PID=$!
        T_PIDS+=($JD_PID)
        for _ in $(seq 100); do
                [ -S "$JD_SOCK" ] && return 0
                kill -0 "$JD_PID" 2>/dev/null || break
                sleep 0.05
        done
        sed 's/^/# jouled: /' "$T_DIR/$name.log"
        return 1
}

# jouled_stop [SIGNAL]: stop the jouled of jouled_start (bounded wait).
jouled_stop() {
        kill -"${1:-TERM}" "$JD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$JD_PID" 2>/dev/null || return 0; sleep 0.1; done
        kill -9 "$JD_PID" 2>/dev/null
        return 1
}

# near A B REL: |A - B| <= REL * |B|
near() { "$PY" -c 'import sys; a, b, r = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= r * abs(b) else 1)' "$@"; }
