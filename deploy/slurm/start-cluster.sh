#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine if none answers. Idempotent.
#
#   bash deploy/slurm/start-cluster.sh     # exit 0 when `sinfo` shows this node idle (or busy) at the end
#
# What it does:
#   1. installs Debian's slurmctld, slurmd, slurm-client and munge if they are missing;
#   2. writes /etc/slurm/slurm.conf for one node named after this host (unless $HAET_SLURM_KEEP_CONF=1
#      and one exists), with CPUs=$HAET_SLURM_CPUS (default 2), RealMemory below the machine's and
#      MaxArraySize=$HAET_SLURM_MAX_ARRAY_SIZE (default 5), and a partition `short` (MaxTime 1 minute)
#      no graded run fits; reconfigures running daemons when it changed;
#   3. starts munged, slurmctld -D and slurmd -D in the background (logs in $HAET_SLURM_LOGS,
#      default /var/log/haet-slurm), unless they already run;
#   4. unless $HAET_SLURM_ACCOUNTING=0: accounting as sites run it, so that a per-user job limit is
#      enforced: MariaDB and slurmdbd (Debian's mariadb-server, slurmdbd), the cluster `haet`, and on
#      root's association MaxSubmitJobs=$HAET_SLURM_MAX_SUBMIT (default 8: array tasks count one each,
#      so a grading of more runs goes out in waves), AccountingStorageEnforce=associations,limits;
#   5. waits up to $HAET_SLURM_TIMEOUT seconds (default 60) for the node to be idle.
#
# Facts verified on the CI VM (Debian bookworm, Slurm 22.05, no systemd, root):
#   - munged needs /run/munge owned by munge and runs as munge: `runuser -u munge -- munged`.
#   - proctrack/linuxproc and task/none need no cgroup set-up; select/cons_tres schedules CPUs.
#   - A per-user job limit needs slurmdbd: slurm.conf alone has only MaxJobCount, which is global and
#     counts ended jobs until MinJobAge, and QOS/association limits live in the accounting database.
#     The harness never depends on accounting (it reads squeue and the state files the batch script
#     writes next to the results); with it, sacct and sacctmgr answer, as on most sites.
#   - Switching AccountingStorageType needs a restart of slurmctld, not `scontrol reconfigure`.
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
ACCOUNTING=${HAET_SLURM_ACCOUNTING:-1}
MAX_SUBMIT=${HAET_SLURM_MAX_SUBMIT:-8}
accounting_conf() {
    if [ "$ACCOUNTING" = 1 ]; then
        printf '%s\n' AccountingStorageType=accounting_storage/slurmdbd AccountingStorageHost=localhost \
            AccountingStorageEnforce=associations,limits
    else
        echo AccountingStorageType=accounting_storage/none
    fi
}
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
$(accounting_conf)
JobCompType=jobcomp/none
ReturnToService=2
MaxArraySize=$MAX_ARRAY
MinJobAge=600
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
# A partition no graded run fits in (MaxTime below any run's time limit): a job pends there for ever.
PartitionName=short Nodes=$HOST MaxTime=1 State=UP
CONFEOF
}
conf_current() { [ "${HAET_SLURM_KEEP_CONF:-0}" = 1 ] && [ -s "$CONF" ] || [ "$(desired_conf)" = "$(cat "$CONF" 2>/dev/null)" ]; }

# The running slurmctld's accounting storage: a change of it takes a restart, not a reconfigure.
ctld_current() {
    [ "$(timeout 10 scontrol show config 2>/dev/null | awk '/^AccountingStorageType / {print $3}')" = \
      "$(accounting_conf | head -n1 | cut -d= -f2)" ]
}
limit_current() {
    [ "$ACCOUNTING" != 1 ] || timeout 20 sacctmgr -n -P show assoc where user=root cluster=haet format=MaxSubmit 2>/dev/null | grep -qx "$MAX_SUBMIT"
}

if command -v sinfo >/dev/null 2>&1 && conf_current && ctld_current && limit_current && node_ready; then
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
    [ -x /usr/sbin/munged ] || return 1
    [ "$ACCOUNTING" != 1 ] || { [ -x /usr/sbin/slurmdbd ] && command -v mariadbd >/dev/null 2>&1; }
}

if ! installed; then
    say "installing Debian's slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || { say "apt-get update failed"; exit 1; }
    extra=""; [ "$ACCOUNTING" = 1 ] && extra="slurmdbd mariadb-server"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge $extra >/dev/null \
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

# --- accounting: MariaDB and slurmdbd (sacctmgr reads slurm.conf), before slurmctld asks them -------------------------------
if [ "$ACCOUNTING" = 1 ]; then
    if ! mysqladmin ping >/dev/null 2>&1; then
        say "starting MariaDB"
        mkdir -p /run/mysqld && chown mysql: /run/mysqld
        nohup mysqld_safe --user=mysql >>"$LOGS/mariadb.stdout" 2>&1 </dev/null &
        for _ in $(seq 60); do mysqladmin ping >/dev/null 2>&1 && break; sleep 1; done
        mysqladmin ping >/dev/null 2>&1 || { say "MariaDB did not start"; tail -n 20 "$LOGS/mariadb.stdout" >&2; exit 1; }
    fi
    # root reaches MariaDB through its unix socket; slurmdbd through a local user of its own.
    mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'haet-test-only';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || { say "could not create the database"; exit 1; }
    cat > /etc/slurm/slurmdbd.conf.tmp <<DBDEOF
# Written by deploy/slurm/start-cluster.sh: accounting for the single-node test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=haet-test-only
StorageLoc=slurm_acct_db
DBDEOF
    chmod 600 /etc/slurm/slurmdbd.conf.tmp  # slurmdbd refuses a config others can read
    mv /etc/slurm/slurmdbd.conf.tmp /etc/slurm/slurmdbd.conf
    if ! pgrep -x slurmdbd >/dev/null 2>&1; then
        say "starting slurmdbd (log $LOGS/slurmdbd.log)"
        nohup slurmdbd -D >>"$LOGS/slurmdbd.stdout" 2>&1 </dev/null &
    fi
    for _ in $(seq 60); do timeout 10 sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 1; done
    # Adding the cluster gives root an association (account root), which carries the per-user limit;
    # -i answers sacctmgr's own questions.
    sacctmgr -n show cluster format=Cluster | grep -qw haet || sacctmgr -i add cluster haet >/dev/null
    sacctmgr -i modify user where name=root set MaxSubmitJobs="$MAX_SUBMIT" >/dev/null 2>&1 || true
    limit_current || { say "could not set MaxSubmitJobs=$MAX_SUBMIT for root (sacctmgr show assoc)"; exit 1; }
fi

# --- daemons -----------------------------------------------------------------------------------
if pgrep -x slurmctld >/dev/null 2>&1 && ! ctld_current; then
    say "accounting storage changed: restarting slurmctld (its jobs are kept in StateSaveLocation)"
    kill "$(pgrep -x slurmctld)"
    for _ in $(seq 30); do pgrep -x slurmctld >/dev/null 2>&1 || break; sleep 1; done
    CONF_CHANGED=0  # the new slurmctld reads it
fi
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
