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
# JOULE_SLURM_NODES=N (N > 1): N nodes jn1..jnN, each slurmd in a network, UTS and mount namespace of its
# own (Debian's slurmd is not built for several slurmd per host), each joined by a veth pair to a bridge in
# the test's namespace (slurmctld at 10.R.0.1, node i at 10.R.0.(i+1): one Ethernet segment, so that nodes
# reach each other without IP forwarding); JOULE_SLURM_NODE is then the list jn1,...,jnN. In every node's
# mount namespace $JOULE_SLURM_DIR/node is that node's own $JOULE_SLURM_DIR/nodes/NAME (its spool, log,
# and a joule.yml the test may write there for the plugin's config=$JOULE_SLURM_DIR/node/joule.yml); with
# one node, $JOULE_SLURM_DIR/node is a link to nodes/NAME.
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
mkdir -p "$dir/state" "$dir/out"
chmod 1777 "$dir/out"
nnodes=${JOULE_SLURM_NODES:-1}
host=$(hostname -s)
if [ "$nnodes" -gt 1 ]; then
        net=10.$((100 + RANDOM % 150))
        nodes=()
        for i in $(seq "$nnodes"); do nodes+=("jn$i"); done
        mkdir -p "$dir/node"
        ctld_addr=$net.0.1
else
        nodes=("$host")
        ln -s "nodes/$host" "$dir/node"
        ctld_addr=127.0.0.1
fi
for n in "${nodes[@]}"; do mkdir -p "$dir/nodes/$n/spool"; done
node=$(IFS=,; echo "${nodes[*]}")
free_port() {
        /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
ncpus=$(nproc)
cat >"$dir/slurm.conf" <<EOF
ClusterName=jouletest
SlurmctldHost=$host($ctld_addr)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$JOULE_MUNGE_SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/node/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/node/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/node/slurmd.log
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
PartitionName=debug Nodes=$node Default=YES State=UP MaxTime=INFINITE OverSubscribe=NO
EOF
if [ "$nnodes" -gt 1 ]; then
        for i in $(seq "$nnodes"); do
                echo "NodeName=jn$i NodeHostname=jn$i NodeAddr=$net.0.$((i + 1)) CPUs=$ncpus RealMemory=1000 State=UNKNOWN"
        done >>"$dir/slurm.conf"
else
        echo "NodeName=$host NodeAddr=127.0.0.1 CPUs=$ncpus RealMemory=1000 State=UNKNOWN" >>"$dir/slurm.conf"
fi
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
        for f in "$dir"/node/slurmd.pid "$dir"/nodes/*/slurmd.pid "$dir"/slurmctld.pid; do
                [ -f "$f" ] || continue
                p=$(cat "$f")
                kill "$p" 2>/dev/null
                for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$p" 2>/dev/null
        done
        for i in $(seq "$nnodes"); do ip link del "js$$a$i" 2>/dev/null; done
        [ "$nnodes" -gt 1 ] && ip link del "js$$br" 2>/dev/null
        [ -n "${JOULE_SLURM_KEEP:-}" ] || rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

/usr/sbin/slurmctld -i -f "$dir/slurm.conf" || { cat "$dir/slurmctld.log" >&2; exit 1; }
if [ "$nnodes" -gt 1 ]; then
        ip link add name "js$$br" type bridge && ip addr add "$net.0.1/24" dev "js$$br" && ip link set "js$$br" up ||
                { echo "# with-slurm.sh: no bridge for the nodes" >&2; exit 1; }
        for i in $(seq "$nnodes"); do
                n=jn$i
                # the node's namespaces: it waits for its end of the veth pair, then becomes the node
                unshare -n -u -m --propagation private bash -c '
                        for _ in $(seq 100); do [ -e "$1/nodes/$2/go" ] && break; sleep 0.05; done
                        hostname "$2" && ip link set lo up && ip addr add "$3/24" dev "$4" && ip link set "$4" up &&
                                mount --bind "$1/nodes/$2" "$1/node" || exit 1
                        exec /usr/sbin/slurmd -f "$1/slurm.conf" -N "$2" -D' _ "$dir" "$n" "$net.0.$((i + 1))" "js$$b$i" \
                        </dev/null >"$dir/nodes/$n/stdout" 2>&1 &
                pid=$!
                echo $pid >"$dir/nodes/$n/slurmd.pid"
                # its network namespace exists once unshare(2) is done (bounded wait)
                for _ in $(seq 100); do
                        [ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
                        sleep 0.02
                done
                ip link add "js$$a$i" type veth peer name "js$$b$i" &&
                        ip link set "js$$b$i" netns "$pid" &&
                        ip link set "js$$a$i" master "js$$br" && ip link set "js$$a$i" up &&
                        touch "$dir/nodes/$n/go" || { echo "# with-slurm.sh: no veth pair for $n" >&2; exit 1; }
        done
else
        /usr/sbin/slurmd -f "$dir/slurm.conf" -N "$node" || { cat "$dir/node/slurmd.log" >&2; exit 1; }
fi
up=
for _ in $(seq 100); do
        if [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -c -E '^(idle|mixed|allocated)')" -ge "$nnodes" ]; then
                up=1
                break
        fi
        sleep 0.1
done
if [ -z "$up" ]; then
        echo "# with-slurm.sh: the node did not come up in 10 s" >&2
        sed 's/^/# slurmctld: /' "$dir/slurmctld.log" | tail -20 >&2
        cat "$dir"/nodes/*/slurmd.log "$dir"/nodes/*/stdout 2>/dev/null | sed 's/^/# slurmd: /' | tail -20 >&2
        exit 1
fi
"$@"
