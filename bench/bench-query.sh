#!/bin/bash
# bench-query.sh [BUILD_DIR] - how joule report's and joule status's queries and the ingest scale with the
# store's size, on SQLite (a file in a temporary directory, WAL) and on PostgreSQL (tests/with-postgres.sh:
# a throwaway server on loopback with fsync=off; needs root or the postgres user). One store per backend
# grows through SIZES (records in all); bench/bench-query prints a Markdown table per backend.
#
#   SIZES="100000 1000000" NODES=100 REPEAT=5 bench/bench-query.sh build-rel
set -eu
build=${1:-build-rel}
here=$(cd "$(dirname "$0")" && pwd)
BENCH=$(cd "$build" && pwd)/bench/bench-query
SIZES=${SIZES:-100000 1000000}
export NODES=${NODES:-100} REPEAT=${REPEAT:-5}
dir=$(mktemp -d /tmp/bench-query.XXXXXX)
trap 'rm -rf "$dir"' EXIT

commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "Run of \`bench/bench-query.sh\` on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) CPUs, commit $commit," \
        "SIZES=\"$SIZES\", NODES=$NODES, REPEAT=$REPEAT; load average $(cut -d' ' -f1-3 /proc/loadavg) at the start."
echo
# shellcheck disable=SC2086
"$BENCH" "$dir/joule.db" $SIZES
echo
# shellcheck disable=SC2086
"$here/../tests/with-postgres.sh" sh -c 'exec "$0" "$JOULE_TEST_DATABASE_URL" "$@"' "$BENCH" $SIZES
echo
echo "Load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
