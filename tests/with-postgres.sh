#!/bin/bash
# with-postgres.sh - run a command against a throwaway PostgreSQL server: initdb in a temporary
# directory, the server on 127.0.0.1 on a free port (and a unix socket in that directory only), one empty
# database, then COMMAND with $JOULE_TEST_DATABASE_URL (and PGHOST/PGPORT/PGUSER/PGDATABASE) set. The
# server is stopped and the directory removed however COMMAND ends; exits with COMMAND's status.
#
#   tests/with-postgres.sh COMMAND [ARGS...]
#
# As root the server runs as the user postgres (it refuses root). The server runs with fsync off: it
# holds test data only. $PGBIN picks the server's bin directory (default: the newest installed). Without
# a server installed it prints a TAP skip line and exits 0.
set -euo pipefail

if [ $# -eq 0 ]; then
        echo "usage: $0 COMMAND [ARGS...]" >&2
        exit 2
fi

if [ -z "${PGBIN:-}" ]; then
        PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
        echo "1..0 # SKIP no PostgreSQL server installed (apt-get install postgresql)"
        exit 0
fi

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
        as_pg=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/joule-pg-XXXXXX)
chmod 755 "$dir"
[ ${#as_pg[@]} -gt 0 ] && chown postgres: "$dir"

started=0
cleanup() {
        if [ "$started" -eq 1 ]; then
                "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
                        "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        fi
        rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
        echo "with-postgres: $*" >&2
        [ -f "$dir/log" ] && sed 's/^/with-postgres: server: /' "$dir/log" >&2
        exit 1
}

"${as_pg[@]}" "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; fail "initdb failed"; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for try in 1 2 3 4 5; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_busy "$port" && continue
        if "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
                -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
                start >/dev/null 2>&1; then
                started=1
                break
        fi
done
[ "$started" -eq 1 ] || fail "the server did not start"

"${as_pg[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres joule_test || fail "createdb failed"

export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=joule_test
export JOULE_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/joule_test"

set +e
${JOULE_TEST_WRAPPER:-} "$@"
status=$?
set -e
exit "$status"
