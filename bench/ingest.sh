#!/bin/bash
# ingest.sh [BUILD_DIR] - joule-dbd ingest into SQLite and into PostgreSQL from simulated nodes, beside the
# raw limits measured in the same run (a bare prepared-INSERT loop in one transaction; the store's bulk
# path, COPY on PostgreSQL). Starts its own munged and PostgreSQL (tests/system/lib-cluster.sh; the
# server runs with fsync=off, like the test server), one joule-dbd per backend, and prints a Markdown table:
# rates, and for SQLite (in process, so that a process's CPU time is all of it) the CPU time per record of
# the raw prepared INSERT loop and of joule-dbd (utime + stime of the whole daemon, its event loop and its
# writer, from the first byte to the last ACK), and their ratio, which a loaded machine disturbs far less
# than the rates. Needs root (munged and PostgreSQL run as their users).
#
#   CONNS=100 RECORDS=200000 BATCH=5000 [BACKENDS="sqlite postgres"] [REPEAT=1] bench/ingest.sh build
set -u
build=${1:-build}
CONNS=${CONNS:-100}
RECORDS=${RECORDS:-200000}
BATCH=${BATCH:-5000}
BATCH_MS=${BATCH_MS:-200}
BACKENDS=${BACKENDS:-sqlite postgres}
REPEAT=${REPEAT:-1} # rounds of raw then dbd, each on fresh tables; with more than one, a row with the best of each
here=$(cd "$(dirname "$0")" && pwd)
JOULE_DBD=$(cd "$build" && pwd)/src/dbd/joule-dbd
BENCH=$(cd "$build" && pwd)/bench/bench-ingest
t_cleanup() { :; }
. "$here/../tests/system/lib-cluster.sh"
cl_setup
cl_munge_start || { echo "munged does not start" >&2; exit 1; }
case " $BACKENDS " in *" postgres "*) cl_pg_start || { echo "PostgreSQL does not start" >&2; exit 1; } ;; esac

field() { awk -v k="$1" '$1 == k {print $2}'; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "| backend | raw prepared INSERT (rows/s) | raw bulk / COPY (rows/s) | joule-dbd (records/s) | dbd / best raw | CPU µs/record: raw prepared, dbd, raw / dbd |"
echo "|---|---|---|---|---|---|"
for backend in $BACKENDS; do
        top_raw=0 top_dbd=0
        for round in $(seq "$REPEAT"); do
                url=$(cl_db_url "$backend")
                [ "$backend" = sqlite ] && url=$CL_DIR/raw-$round.db
                [ "$backend" = postgres ] && cl_sql "$url" "TRUNCATE periodic_metrics" >/dev/null 2>&1 # from round 2
                rawout=$("$BENCH" raw "$url" "$RECORDS") || { echo "raw $backend failed" >&2; exit 1; }
                prepared=$(field prepared <<<"$rawout")
                bulk=$(field bulk <<<"$rawout")
                raw_cpu=$(field prepared_cpu_us <<<"$rawout")
                url=$(cl_db_url "$backend")
                [ "$backend" = sqlite ] && url=$CL_DIR/dbd-$round.db
                [ "$backend" = postgres ] && cl_sql "$url" "TRUNCATE periodic_metrics" >/dev/null
                port=$(cl_port)
                CL_BATCH_RECORDS=$BATCH CL_BATCH_MS=$BATCH_MS cl_dbd_config "$CL_DIR/dbd-$backend.yml" "$url" \
                        "$port" "  max_memory_mb: 512"
                cl_dbd_start "$CL_DIR/dbd-$backend.yml" "$CL_DIR/dbd-$backend.log" ||
                        { cat "$CL_DIR/dbd-$backend.log" >&2; exit 1; }
                sleep 0.5 # migrations on a fresh database
                t0=$(cpu_ticks "$CL_DBD_PID")
                out=$("$BENCH" dbd "127.0.0.1:$port" "$CONNS" "$RECORDS" "$JOULE_MUNGE_SOCKET") ||
                        { cat "$CL_DIR/dbd-$backend.log" >&2; exit 1; }
                t1=$(cpu_ticks "$CL_DBD_PID")
                cl_dbd_stop
                rate=$(field dbd <<<"$out")
                stored=$(cl_sql "$url" "SELECT COUNT(*) FROM periodic_metrics WHERE node LIKE 'sim-%'")
                best=$((prepared > bulk ? prepared : bulk))
                top_raw=$((best > top_raw ? best : top_raw))
                top_dbd=$((rate > top_dbd ? rate : top_dbd))
                cpu=–
                [ "$backend" = sqlite ] && cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$RECORDS" -v r="$raw_cpu" \
                        'BEGIN {d = t * 1e6 / hz / n; printf "%.2f, %.2f, %.2f", r, d, r / d}')
                printf '| %s | %s | %s | %s (%s stored) | %s | %s |\n' "$backend" "$prepared" "$bulk" "$rate" \
                        "$stored" "$(awk -v a="$rate" -v b="$best" 'BEGIN {printf "%.2f", a / b}')" "$cpu"
        done
        # the best of each over the rounds: the runs that the rest of the machine disturbed least
        [ "$REPEAT" -gt 1 ] && printf '| %s, best of %s | %s | | %s | %s | |\n' "$backend" "$REPEAT" "$top_raw" \
                "$top_dbd" "$(awk -v a="$top_dbd" -v b="$top_raw" 'BEGIN {printf "%.2f", a / b}')"
done
echo
echo "$CONNS connections, $RECORDS records, dbd.batch_records $BATCH, dbd.batch_ms $BATCH_MS; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
