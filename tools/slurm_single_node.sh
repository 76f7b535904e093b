#!/usr/bin/env bash
# A real single-node SLURM cluster for tests and CI: Debian's slurm-wlm and munge, run as root without systemd,
# with every file (config, keys, state, spool, logs, pid files) under one temporary folder.
#
#   bash tools/slurm_single_node.sh start    # install slurm-wlm + munge when missing, configure, start, smoke-test
#   eval "$(bash tools/slurm_single_node.sh env)"   # SLURM_CONF for sbatch/squeue/scancel and the suite
#   bash tools/slurm_single_node.sh status   # daemons, their pids, sinfo and squeue
#   bash tools/slurm_single_node.sh stop     # cancel the jobs, stop exactly the daemons this script started
#
# Settings (environment):
#   SLURM_CI_DIR        the folder (default /tmp/slurm-ci); every start wipes its state, spool and logs
#   SLURM_CI_PORT_BASE  slurmctld port; slurmd uses the next one (default 6817)
#   SLURM_CI_CPUS       CPUs of the node (default: nproc)
#
# Only processes recorded in $SLURM_CI_DIR/pids are ever signalled, and only after /proc/PID/comm names the daemon
# we expect. Decisions, timings and the error messages this guards against: docs/cluster.md and the notes there.
set -euo pipefail

DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
PORT=${SLURM_CI_PORT_BASE:-6817}
HOST=$(hostname -s)
CONF=$DIR/etc/slurm.conf
PIDS=$DIR/pids
MUNGE_SOCKET=$DIR/munge-run/munge.socket.2
DAEMONS=(munged slurmctld slurmd)

log() { echo "slurm_single_node: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The pid recorded for daemon $1 when that process is alive and is that daemon; empty otherwise.
live_pid() {
    local name=$1 pid comm
    [[ -s $PIDS/$name.pid ]] || return 0
    pid=$(<"$PIDS/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [[ $comm == "$name" ]] && echo "$pid"
    return 0
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "slurm-wlm and munge are not installed and installing them needs root"
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
    fi
}

write_config() {
    local mem_kb real_mb cpus
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    real_mb=$((mem_kb * 9 / 10 / 1024))  # RealMemory above the real memory drains the node
    cpus=${SLURM_CI_CPUS:-$(nproc)}
    cat >"$CONF" <<EOF
# Written by tools/slurm_single_node.sh; wiped by the next start.
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job is held (default 120 s, then up to a minute more to be scheduled)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=10
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    [[ -n $(live_pid munged) ]] && return 0
    mkdir -p "$DIR/munge-key" "$DIR/munge-run" "$DIR/munge-lib"
    chmod 0700 "$DIR/munge-key" "$DIR/munge-lib"
    chmod 0755 "$DIR/munge-run"  # munged refuses a socket folder that others cannot traverse
    if [[ ! -s $DIR/munge-key/munge.key ]]; then
        head -c 1024 /dev/urandom >"$DIR/munge-key/munge.key"
        chmod 0400 "$DIR/munge-key/munge.key"
    fi
    munged --key-file="$DIR/munge-key/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/munge-run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge-lib/munged.seed"
    # munged daemonizes: its own pid file is the only reliable record of the daemon's pid
    for _ in $(seq 50); do
        [[ -s $DIR/munge-run/munged.pid ]] && break
        sleep 0.1
    done
    cp "$DIR/munge-run/munged.pid" "$PIDS/munged.pid"
    [[ -n $(live_pid munged) ]] || die "munged did not start; see $DIR/log/munged.log"
}

start_daemon() {  # name, command...
    local name=$1
    shift
    [[ -n $(live_pid "$name") ]] && return 0
    SLURM_CONF=$CONF "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
}

wait_idle() {
    local state
    for _ in $(seq 150); do
        state=$(SLURM_CONF=$CONF sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
        case $state in idle* | mixed* | allocated*) return 0 ;; esac
        for name in slurmctld slurmd; do
            [[ -n $(live_pid "$name") ]] || die "$name exited; see $DIR/log/$name.log and $DIR/log/$name.out"
        done
        sleep 0.2
    done
    die "node $HOST is not idle after 30 s (state: ${state:-none}); see $DIR/log/"
}

cmd_start() {
    if [[ -n $(live_pid slurmctld) && -n $(live_pid slurmd) && -n $(live_pid munged) ]]; then
        log "already running (SLURM_CONF=$CONF)"
        return 0
    fi
    install_packages
    [[ $(id -u) == 0 ]] || die "the single-node cluster runs its daemons as root (SlurmUser=root)"
    cmd_stop quiet
    local t0=$SECONDS
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/etc"
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$PIDS"
    write_config
    start_munge
    start_daemon slurmctld slurmctld -D -c -i -f "$CONF"
    start_daemon slurmd slurmd -D -N "$HOST" -f "$CONF"
    wait_idle
    SLURM_CONF=$CONF timeout 60 srun -N1 -n1 -t 1 true || die "smoke test 'srun true' failed; see $DIR/log/"
    log "cluster ready in $((SECONDS - t0)) s: node $HOST, partition debug, SLURM_CONF=$CONF"
}

stop_pid() {  # name: SIGTERM, wait up to 10 s, then SIGKILL; only the recorded, verified pid
    local name=$1 pid
    pid=$(live_pid "$name")
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            [[ -n $(live_pid "$name") ]] || break
            sleep 0.1
        done
        if [[ -n $(live_pid "$name") ]]; then
            log "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$PIDS/$name.pid"
}

cmd_stop() {
    local quiet=${1:-}
    if [[ -n $(live_pid slurmctld) ]]; then
        # cancel this cluster's jobs first, so that slurmd reaps their slurmstepd children before it stops
        local jobs
        jobs=$(SLURM_CONF=$CONF timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ -n ${jobs// /} ]]; then
            # shellcheck disable=SC2086
            SLURM_CONF=$CONF timeout 10 scancel $jobs 2>/dev/null || true
            for _ in $(seq 50); do
                [[ -z $(SLURM_CONF=$CONF timeout 5 squeue -h -t all -o %T 2>/dev/null | grep -v -E 'COMPLETED|CANCELLED|FAILED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE' || true) ]] && break
                sleep 0.2
            done
        fi
    fi
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid munged
    [[ -n $quiet ]] || log "stopped"
}

cmd_status() {
    local rc=0 pid
    for name in "${DAEMONS[@]}"; do
        pid=$(live_pid "$name")
        if [[ -n $pid ]]; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=3; fi
    done
    if [[ $rc == 0 ]]; then
        SLURM_CONF=$CONF sinfo
        SLURM_CONF=$CONF squeue
    fi
    return $rc
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
