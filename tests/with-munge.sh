#!/bin/bash
# with-munge.sh -- CMD [ARGS...]
# Starts a real munged (Debian's munge) on a private socket in a temp dir, exports JOULE_MUNGE_SOCKET,
# runs CMD, stops munged, and exits with CMD's status. Uses the machine's /etc/munge/munge.key (created by
# the munge package); runs munged as the munge user. Needs root.
set -euo pipefail
[ "${1:-}" = "--" ] && shift
dir=$(mktemp -d /tmp/joule-munge.XXXXXX)
chown munge: "$dir" 2>/dev/null || true
chmod 0755 "$dir"
cleanup() {
        [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
        rm -rf "$dir"
}
trap cleanup EXIT
runuser -u munge -- /usr/sbin/munged --socket="$dir/munge.sock" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" --key-file=/etc/munge/munge.key
for _ in $(seq 50); do [ -S "$dir/munge.sock" ] && break; sleep 0.1; done
export JOULE_MUNGE_SOCKET="$dir/munge.sock"
set +e
${JOULE_TEST_WRAPPER:-} "$@"
rc=$?
exit $rc
