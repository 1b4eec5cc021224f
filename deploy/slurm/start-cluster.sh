#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine if none answers. Idempotent.
#
#   bash deploy/slurm/start-cluster.sh     # exit 0 when `sinfo` shows this node idle (or busy) at the end
#
# What it does:
#   1. installs Debian's slurmctld, slurmd, slurm-client and munge if they are missing;
#   2. writes /etc/slurm/slurm.conf for one node named after this host (unless $HAET_SLURM_KEEP_CONF=1
#      and one exists), with CPUs=$HAET_SLURM_CPUS (default 2), RealMemory below the machine's and
#      MaxArraySize=$HAET_SLURM_MAX_ARRAY_SIZE (default 5); reconfigures running daemons when it changed;
#   3. starts munged, slurmctld -D and slurmd -D in the background (logs in $HAET_SLURM_LOGS,
#      default /var/log/haet-slurm), unless they already run;
#   4. waits up to $HAET_SLURM_TIMEOUT seconds (default 60) for the node to be idle.
#
# Facts verified on the CI VM (Debian bookworm, Slurm 22.05, no systemd, root):
#   - munged needs /run/munge owned by munge and runs as munge: `runuser -u munge -- munged`.
#   - proctrack/linuxproc and task/none need no cgroup set-up; select/cons_tres schedules CPUs.
#   - There is no slurmdbd here, so accounting storage is off and `sacct` answers nothing useful:
#     the harness never depends on it (it reads squeue, `scontrol show job`, and the state files the
#     batch script writes next to the results).
# Exit codes: 0 the node answers; 1 could not install or start it (reason and log tails printed).
set -euo pipefail

LOGS=${HAET_SLURM_LOGS:-/var/log/haet-slurm}
TIMEOUT=${HAET_SLURM_TIMEOUT:-60}
CPUS=${HAET_SLURM_CPUS:-2}
CONF=/etc/slurm/slurm.conf

say() { echo "[start-cluster] $*" >&2; }

node_state() { timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n1; }

node_ready() {
    case "$(node_state)" in
        idle|mixed|allocated|completing) return 0 ;;
        *) return 1 ;;
    esac
}

# --- slurm.conf --------------------------------------------------------------------------------
HOST=$(hostname -s)
total_mb=$(free -m | awk '/^Mem:/ {print $2}')
REAL_MB=$(( total_mb * 8 / 10 ))  # below the machine's, or slurmd marks the node invalid
# MaxArraySize is small on purpose: the tests' plans of a few runs are split into several arrays,
# as a plan of thousands is on a real cluster (MaxArraySize 1001 by default).
MAX_ARRAY=${HAET_SLURM_MAX_ARRAY_SIZE:-5}
desired_conf() {
    cat <<CONFEOF
# Written by deploy/slurm/start-cluster.sh: a single-node cluster for the tests.
ClusterName=haet
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MaxArraySize=$MAX_ARRAY
MinJobAge=600
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFEOF
}
conf_current() { [ "${HAET_SLURM_KEEP_CONF:-0}" = 1 ] && [ -s "$CONF" ] || [ "$(desired_conf)" = "$(cat "$CONF" 2>/dev/null)" ]; }

if command -v sinfo >/dev/null 2>&1 && conf_current && node_ready; then
    say "cluster already answers (node $(node_state))"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    say "no cluster answers and not root: cannot start Slurm here"
    exit 1
fi

installed() {
    local tool
    for tool in slurmctld slurmd sbatch squeue scontrol; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
    [ -x /usr/sbin/munged ]
}

if ! installed; then
    say "installing Debian's slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || { say "apt-get update failed"; exit 1; }
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || { say "apt-get install failed"; exit 1; }
fi

mkdir -p "$LOGS" /var/spool/slurmctld /var/spool/slurmd /etc/slurm

# --- munge -------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R munge: /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! pgrep -u munge -x munged >/dev/null 2>&1; then
    say "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || { say "munged did not start"; tail -n 20 /var/log/munge/munged.log >&2 || true; exit 1; }
fi

CONF_CHANGED=0
if ! conf_current; then
    mkdir -p "$(dirname "$CONF")"
    desired_conf > "$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    CONF_CHANGED=1
fi

# --- daemons -----------------------------------------------------------------------------------
if ! pgrep -x slurmctld >/dev/null 2>&1; then
    say "starting slurmctld (log $LOGS/slurmctld.log)"
    nohup slurmctld -D >>"$LOGS/slurmctld.stdout" 2>&1 </dev/null &
fi
if ! pgrep -x slurmd >/dev/null 2>&1; then
    say "starting slurmd (log $LOGS/slurmd.log)"
    nohup slurmd -D >>"$LOGS/slurmd.stdout" 2>&1 </dev/null &
fi
if [ "$CONF_CHANGED" = 1 ]; then
    say "slurm.conf changed: reconfiguring the running daemons"
    sleep 1
    scontrol reconfigure >/dev/null 2>&1 || say "scontrol reconfigure failed (the daemons may be starting)"
fi

waited=0
while [ "$waited" -lt "$TIMEOUT" ]; do
    state=$(node_state || true)
    case "$state" in
        idle|mixed|allocated|completing)
            say "node $HOST is $state after ${waited}s"; exit 0 ;;
        down*|drain*|fail*)
            # A node that was down before (e.g. a killed slurmd) comes back once its slurmd answers.
            scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
    waited=$((waited + 1))
done
say "the node did not become idle within ${TIMEOUT}s (state: ${state:-none}); last log lines:"
tail -n 15 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" "$LOGS/slurmctld.stdout" "$LOGS/slurmd.stdout" >&2 2>/dev/null || true
exit 1
