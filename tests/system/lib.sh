# lib.sh - shared helpers for the system tests (bash, TAP output). Source it, then call t_setup.
# Environment: JOULE (the joule binary), JOULE_EMU (joule-emu), NS_RUN (tests/ns-run.sh); the meson test
# definitions set them. Every wait is bounded; everything started is stopped by the EXIT trap.

PY=/usr/bin/python3 # Debian's: the first python3 on PATH may be another interpreter
T_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${NS_RUN:=$T_LIBDIR/../ns-run.sh}"
T_N=0
T_FAILED=0
T_PIDS=()

t_ok() { # t_ok COND_EXIT_STATUS DESCRIPTION (a description on several lines is joined: one TAP line)
        local st=$1
        shift
        set -- "$(printf '%s' "$*" | tr '\n' ' ')"
        T_N=$((T_N + 1))
        if [ "$st" -eq 0 ]; then
                echo "ok $T_N - $*"
        else
                echo "not ok $T_N - $*"
                T_FAILED=$((T_FAILED + 1))
        fi
}

t_check() { # t_check DESCRIPTION -- CMD...: ok when CMD succeeds; its output goes to the TAP diagnostics
        local desc=$1
        shift
        [ "$1" = "--" ] && shift
        local out st
        out=$("$@" 2>&1)
        st=$?
        t_ok $st "$desc"
        if [ $st -ne 0 ] && [ -n "$out" ]; then
                printf '%s\n' "$out" | head -40 | sed 's/^/#   /'
        fi
        return $st
}

t_skip() { # t_skip DESCRIPTION REASON
        T_N=$((T_N + 1))
        echo "ok $T_N - $1 # SKIP $2"
}

t_diag() { printf '%s\n' "$*" | sed 's/^/# /'; }

t_done() {
        echo "1..$T_N"
        [ "$T_FAILED" -eq 0 ]
}

t_cleanup() {
        local p
        for p in "${T_PIDS[@]}"; do
                kill "$p" 2>/dev/null
        done
        for p in "${T_PIDS[@]}"; do
                # bounded wait: at most 2 s per process
                for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$p" 2>/dev/null
        done
        [ -n "${T_DIR:-}" ] && [ -d "$T_DIR" ] && rm -rf "$T_DIR"
}

t_setup() {
        if [ "$(id -u)" -ne 0 ]; then
                echo "1..0 # SKIP needs root (mount namespaces at the real sysfs paths)"
                exit 0
        fi
        : "${JOULE_EMU:?JOULE_EMU is not set}"
        : "${NS_RUN:?NS_RUN is not set}"
        # short path: the control socket lives in it (unix socket paths are limited to 108 bytes)
        T_DIR=$(mktemp -d /tmp/jst.XXXXXX)
        trap t_cleanup EXIT
        trap 'exit 130' INT TERM
}

t_need_joule() {
        if [ -z "${JOULE:-}" ] || [ ! -x "$JOULE" ]; then
                echo "1..0 # SKIP the joule CLI is not built"
                exit 0
        fi
}

# emu_start NAME MODEL [create options...]: creates $T_DIR/NAME and serves it; sets FX to its root.
emu_start() {
        local name=$1 model=$2
        shift 2
        FX=$T_DIR/$name
        "$JOULE_EMU" create --node "$model" --root "$FX" "$@" || return 1
        "$JOULE_EMU" serve --root "$FX" --tick-ms "${EMU_TICK_MS:-10}" 2>>"$T_DIR/$name.log" &
        T_PIDS+=($!)
        "$JOULE_EMU" ctl --root "$FX" --wait 5 ping >/dev/null
}

ctl() { "$JOULE_EMU" ctl --root "$FX" "$@"; }

# jget JSON EXPR: evaluate a Python expression over the parsed JSON `j`; prints the result.
jget() {
        "$PY" -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# jtest JSON EXPR: exit 0 when the Python expression over `j` is true; prints the JSON on failure.
jtest() {
        "$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
try:
    ok = bool(eval(sys.argv[2]))
except Exception as e:
    ok = False
    print("exception:", repr(e))
if not ok:
    print("false:", sys.argv[2])
    print(json.dumps(j, indent=1)[:3000])
sys.exit(0 if ok else 1)' "$1" "$2"
}

# in_ns FX CMD...: run CMD with the fixture FX at the real kernel paths.
in_ns() {
        local fx=$1
        shift
        "$NS_RUN" "$fx" -- "$@"
}

# free_port: a TCP port on 127.0.0.1 that nobody listens on now.
free_port() {
        "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
