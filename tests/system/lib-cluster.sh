# lib-cluster.sh - start and stop the cluster side of joule for system tests (bash): munged, a throwaway
# PostgreSQL that can be stopped and started again mid-test on the same port, joule-dbd (started, killed
# with -9, restarted, stopped with SIGTERM), node configurations, and database queries for checks. Source it
# after lib.sh (t_ok, t_check, t_diag), call cl_setup, and everything started is stopped by cl_cleanup (the
# EXIT trap). Environment: JOULE_DBD (the joule-dbd binary). Every wait is bounded.
#
#   cl_setup                      temp dir $CL_DIR, EXIT trap
#   cl_munge_start                munged on a private socket unless $JOULE_MUNGE_SOCKET is set already
#   cl_pg_start / cl_pg_stop      a PostgreSQL server on 127.0.0.1:$CL_PG_PORT (initdb and createdb on first start)
#   cl_db_url sqlite|postgres     the database.url for the backend ($CL_DIR/joule.db or the server above)
#   cl_port                       a free TCP port on 127.0.0.1
#   cl_dbd_config FILE URL PORT [YAML-LINES]   a joule-dbd configuration
#   cl_node_config FILE NAME DBD_PORT [YAML-LINES]   a node configuration (spool in $CL_DIR/spool-NAME)
#   cl_dbd_start CONFIG [LOG]     start joule-dbd in the background ($CL_DBD_PID), wait until it listens
#   cl_dbd_kill9 / cl_dbd_stop    kill -9 / SIGTERM and wait (cl_dbd_stop returns joule-dbd's exit status)
#   cl_sql URL SQL                one query; rows on stdout, fields separated by '|'

CL_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CL_DIR=
CL_DBD_PID=
CL_DBD_LOG=
CL_PG_PORT=
CL_PG_STARTED=0
CL_MUNGE_PID_FILE=
CL_PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

cl_cleanup() {
        if [ -n "$CL_DBD_PID" ] && kill -0 "$CL_DBD_PID" 2>/dev/null; then
                kill -9 "$CL_DBD_PID" 2>/dev/null
                wait "$CL_DBD_PID" 2>/dev/null
        fi
        if [ "$CL_PG_STARTED" = 1 ]; then
                runuser -u postgres -- "$CL_PGBIN/pg_ctl" -D "$CL_DIR/pg/data" -m immediate -w stop >/dev/null 2>&1
        fi
        if [ -n "$CL_MUNGE_PID_FILE" ] && [ -f "$CL_MUNGE_PID_FILE" ]; then
                kill "$(cat "$CL_MUNGE_PID_FILE")" 2>/dev/null
        fi
        [ -n "$CL_DIR" ] && rm -rf "$CL_DIR"
        if declare -F t_cleanup >/dev/null; then t_cleanup; fi
}

cl_setup() {
        CL_DIR=$(mktemp -d /tmp/joule-cluster.XXXXXX)
        chmod 755 "$CL_DIR"
        trap cl_cleanup EXIT
}

cl_munge_start() {
        [ -n "${JOULE_MUNGE_SOCKET:-}" ] && return 0
        mkdir -p "$CL_DIR/munge" && chown munge: "$CL_DIR/munge"
        CL_MUNGE_PID_FILE=$CL_DIR/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged --socket="$CL_DIR/munge/munge.sock" --pid-file="$CL_MUNGE_PID_FILE" \
                --log-file="$CL_DIR/munge/munged.log" --seed-file="$CL_DIR/munge/munged.seed" \
                --key-file=/etc/munge/munge.key || return 1
        for _ in $(seq 50); do [ -S "$CL_DIR/munge/munge.sock" ] && break; sleep 0.1; done
        export JOULE_MUNGE_SOCKET=$CL_DIR/munge/munge.sock
}

cl_port() {
        local p
        for _ in $(seq 50); do
                p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-)
                (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
        done
        return 1
}

cl_pg_start() {
        [ -x "$CL_PGBIN/initdb" ] || return 1
        if [ ! -d "$CL_DIR/pg/data" ]; then
                mkdir -p "$CL_DIR/pg" && chown postgres: "$CL_DIR/pg"
                runuser -u postgres -- "$CL_PGBIN/initdb" -D "$CL_DIR/pg/data" -A trust -U postgres -E UTF8 \
                        --locale=C --no-sync >"$CL_DIR/pg/initdb.log" 2>&1 || return 1
                CL_PG_PORT=$(cl_port)
        fi
        runuser -u postgres -- "$CL_PGBIN/pg_ctl" -D "$CL_DIR/pg/data" -l "$CL_DIR/pg/log" -w -t 60 \
                -o "-p $CL_PG_PORT -k $CL_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
                start >/dev/null 2>&1 || return 1
        CL_PG_STARTED=1
        if [ ! -f "$CL_DIR/pg/created" ]; then
                runuser -u postgres -- "$CL_PGBIN/createdb" -h 127.0.0.1 -p "$CL_PG_PORT" -U postgres joule_test ||
                        return 1
                touch "$CL_DIR/pg/created"
        fi
}

cl_pg_stop() {
        runuser -u postgres -- "$CL_PGBIN/pg_ctl" -D "$CL_DIR/pg/data" -m fast -w stop >/dev/null 2>&1
        CL_PG_STARTED=0
}

cl_db_url() {
        case "$1" in
        sqlite) echo "$CL_DIR/joule.db" ;;
        postgres) echo "postgresql://postgres@127.0.0.1:$CL_PG_PORT/joule_test" ;;
        esac
}

cl_dbd_config() { # FILE URL PORT [YAML-LINES]
        cat >"$1" <<EOF
database:
  url: $2
node:
  munge_socket: ${JOULE_MUNGE_SOCKET:-/run/munge/munge.socket.2}
dbd:
  listen: 127.0.0.1:$3
  batch_records: ${CL_BATCH_RECORDS:-500}
  batch_ms: ${CL_BATCH_MS:-200}
  aggregation_period: ${CL_AGG_PERIOD:-60}
${4:-}
EOF
}

cl_node_config() { # FILE NAME DBD_PORT [YAML-LINES under node:]
        cat >"$1" <<EOF
node:
  name: $2
  dbd: 127.0.0.1:$3
  spool: $CL_DIR/spool-$2/records.spool
  munge_socket: ${JOULE_MUNGE_SOCKET:-/run/munge/munge.socket.2}
${4:-}
EOF
}

cl_dbd_start() { # CONFIG [LOG]
        CL_DBD_LOG=${2:-$CL_DIR/dbd.log}
        local before=0
        [ -f "$CL_DBD_LOG" ] && before=$(grep -c "listening on" "$CL_DBD_LOG")
        "$JOULE_DBD" -c "$1" >>"$CL_DBD_LOG" 2>&1 &
        CL_DBD_PID=$!
        for _ in $(seq 100); do
                [ "$(grep -c "listening on" "$CL_DBD_LOG" 2>/dev/null || true)" -gt "$before" ] 2>/dev/null && return 0
                kill -0 "$CL_DBD_PID" 2>/dev/null || return 1
                sleep 0.05
        done
        return 1
}

cl_dbd_kill9() {
        kill -9 "$CL_DBD_PID" 2>/dev/null
        wait "$CL_DBD_PID" 2>/dev/null
        CL_DBD_PID=
}

cl_dbd_stop() {
        local st
        kill -TERM "$CL_DBD_PID" 2>/dev/null
        for _ in $(seq 300); do kill -0 "$CL_DBD_PID" 2>/dev/null || break; sleep 0.1; done
        wait "$CL_DBD_PID" 2>/dev/null
        st=$?
        CL_DBD_PID=
        return $st
}

cl_sql() { # URL SQL
        case "$1" in
        postgresql://*) psql -X -q -A -t -F '|' -d "$1" -c "$2" ;;
        *) sqlite3 -separator '|' "$1" "$2" ;;
        esac
}
