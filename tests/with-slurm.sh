#!/bin/bash
# with-slurm.sh -- CMD [ARGS...]
# Starts a one-node Slurm cluster on loopback (Debian's slurmctld and slurmd 22.05) with a real munged
# (tests/with-munge.sh) in a temp dir: free ports, state, spool, logs and a job completion log there, the
# extern step on (PrologFlags=Contain), and plugstack.conf loading $SPANK_JOULE (with $SPANK_JOULE_ARGS).
# Exports SLURM_CONF, JOULE_SLURM_DIR (the temp dir), JOULE_SLURM_NODE (the node's name),
# JOULE_SLURM_PLUGSTACK (the plugstack.conf: steps read it when they start, so a test may rewrite it) and
# JOULE_SLURM_JOBCOMP (the job completion log); runs CMD; stops slurmd and slurmctld however CMD ends, and
# exits with CMD's status. Without Slurm installed, or not as root, CMD runs with JOULE_SLURM_SKIP set to
# the reason (a TAP test then skips).
set -uo pipefail
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${JOULE_MUNGE_SOCKET:-}" ] && [ "$(id -u)" -eq 0 ] && [ -x /usr/sbin/munged ]; then
        exec "$here/with-munge.sh" -- "$0" -- "$@"
fi
if [ "$(id -u)" -ne 0 ]; then
        JOULE_SLURM_SKIP="needs root (slurmd runs jobs as their users)" exec "$@"
fi
for p in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/srun; do
        [ -x "$p" ] || JOULE_SLURM_SKIP="Slurm is not installed ($p; tools/install-deps.sh installs it)" exec "$@"
done
: "${JOULE_MUNGE_SOCKET:?}"

dir=$(mktemp -d /tmp/jslurm.XXXXXX)
chmod 0755 "$dir"
mkdir -p "$dir/state" "$dir/spool" "$dir/out"
chmod 1777 "$dir/out"
node=$(hostname -s)
free_port() {
        /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
ncpus=$(nproc)
cat >"$dir/slurm.conf" <<EOF
ClusterName=jouletest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$JOULE_MUNGE_SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
PrologFlags=Contain
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
KillWait=2
MinJobAge=2
InactiveLimit=0
PlugStackConfig=$dir/plugstack.conf
NodeName=$node NodeAddr=127.0.0.1 CPUs=$ncpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES State=UP MaxTime=INFINITE OverSubscribe=NO
EOF
if [ -n "${SPANK_JOULE:-}" ]; then
        echo "optional $SPANK_JOULE ${SPANK_JOULE_ARGS:-}" >"$dir/plugstack.conf"
else
        : >"$dir/plugstack.conf"
fi
chmod 0644 "$dir/slurm.conf" "$dir/plugstack.conf"
export SLURM_CONF=$dir/slurm.conf JOULE_SLURM_DIR=$dir JOULE_SLURM_NODE=$node
export JOULE_SLURM_PLUGSTACK=$dir/plugstack.conf JOULE_SLURM_JOBCOMP=$dir/jobcomp.log

stop() {
        local f p jobs
        # jobs a failed test left running: cancelled through this cluster's own slurmctld (bounded wait)
        jobs=$(squeue -h -o %i 2>/dev/null)
        if [ -n "$jobs" ]; then
                scancel $jobs 2>/dev/null
                for _ in $(seq 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
        fi
        # a slurmstepd of this cluster that outlived its job (killed tests): known by its SLURM_CONF
        for p in $(pgrep -x slurmstepd); do
                { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf" &&
                        kill -9 "$p"
        done
        for f in slurmd slurmctld; do
                [ -f "$dir/$f.pid" ] || continue
                p=$(cat "$dir/$f.pid")
                kill "$p" 2>/dev/null
                for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$p" 2>/dev/null
        done
        [ -n "${JOULE_SLURM_KEEP:-}" ] || rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

/usr/sbin/slurmctld -i -f "$dir/slurm.conf" || { cat "$dir/slurmctld.log" >&2; exit 1; }
/usr/sbin/slurmd -f "$dir/slurm.conf" -N "$node" || { cat "$dir/slurmd.log" >&2; exit 1; }
up=
for _ in $(seq 100); do
        if sinfo -h -N -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
                up=1
                break
        fi
        sleep 0.1
done
if [ -z "$up" ]; then
        echo "# with-slurm.sh: the node did not come up in 10 s" >&2
        sed 's/^/# slurmctld: /' "$dir/slurmctld.log" | tail -20 >&2
        sed 's/^/# slurmd: /' "$dir/slurmd.log" | tail -20 >&2
        exit 1
fi
"$@"
