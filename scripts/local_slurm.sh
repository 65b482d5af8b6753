#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, with accounting (MariaDB +
# slurmdbd) as real clusters have it, for tests/test_slurm.py and CI.
#
#   sudo scripts/local_slurm.sh up       # install what is missing, start, wait for the node
#   sudo scripts/local_slurm.sh status   # the daemons this script started, the node's state
#   sudo scripts/local_slurm.sh down     # stop exactly the daemons `up` started
#
# Needs root and Debian/Ubuntu packages (apt-get): slurmctld slurmd
# slurm-client slurmdbd munge mariadb-server. Works without systemd: each
# daemon is started by hand, its pid file kept in $STATE, and `down` stops
# those pids only. A daemon already running when `up` starts (munged, MariaDB)
# is used and left running. Cores and memory of the node are read from the
# machine. Configuration: /etc/slurm/{slurm,slurmdbd}.conf, written only when
# absent or written by this script before (marker line), removed by `down`.
set -euo pipefail

STATE="${LOCAL_SLURM_STATE:-/var/tmp/mocap-refine-slurm}"
CLUSTER="mocaprefine"
MARKER="# written by mocap-refine scripts/local_slurm.sh"
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
HOST="$(hostname -s)"

log() { echo "local_slurm: $*" >&2; }
die() { log "$*"; exit 1; }

# A pid is alive when its process exists and is not a zombie.
alive() {
    local pid="$1" stat
    stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
    [[ -n "$stat" && "$stat" != Z* ]]
}

pid_of() { [[ -s "$1" ]] && cat "$1" || true; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds="$1" what="$2"; shift 2
    local end=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || die "$what did not come up within ${seconds}s (logs in $STATE)"
        sleep 0.5
    done
}

started() { echo "$1 $2" >> "$STATE/started"; }  # name pidfile

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

write_conf() {  # write_conf PATH MODE: content on stdin; refuses a file someone else wrote
    local path="$1" mode="$2"
    if [[ -e "$path" ]] && ! grep -qF "$MARKER" "$path"; then
        die "$path exists and was not written by this script: not touching a real SLURM set-up"
    fi
    mkdir -p "$(dirname "$path")"
    { echo "$MARKER"; cat; } > "$path"
    chmod "$mode" "$path"
    echo "$path" >> "$STATE/conf_files"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running: using it"
        return
    fi
    mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    # Pid files of the daemons that drop root go where their user may write.
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/mocap-refine-munged.pid --force
    wait_for 20 munged test -s /run/munge/mocap-refine-munged.pid
    started munged /run/munge/mocap-refine-munged.pid
    wait_for 20 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
    if mariadb -e 'select 1' >/dev/null 2>&1; then
        log "MariaDB already running: using it"
        return
    fi
    mkdir -p /run/mysqld /var/log/mysql
    chown mysql:mysql /run/mysqld /var/log/mysql
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log" 2>&1
    fi
    # Background process; its own pid file. Unix socket only.
    nohup mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mocap-refine-mariadb.pid --skip-networking >"$STATE/mariadb.log" 2>&1 &
    wait_for 60 MariaDB test -s /run/mysqld/mocap-refine-mariadb.pid
    started mariadb /run/mysqld/mocap-refine-mariadb.pid
    wait_for 60 MariaDB mariadb -e 'select 1'
}

write_slurm_confs() {
    local cpus mem_mb
    cpus="$(nproc)"
    # About 85 % of the machine's memory for jobs.
    mem_mb="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)"
    mkdir -p "$STATE/ctld" "$STATE/slurmd"
    write_conf /etc/slurm/slurmdbd.conf 600 <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
    write_conf /etc/slurm/slurm.conf 644 <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem_mb / cpus))
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start_slurm() {
    /usr/sbin/slurmdbd
    wait_for 30 slurmdbd test -s "$STATE/slurmdbd.pid"
    started slurmdbd "$STATE/slurmdbd.pid"
    # The cluster must be known to the database before slurmctld starts
    # (this also creates account root and root's association).
    wait_for 60 "slurmdbd (sacctmgr)" sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    /usr/sbin/slurmctld
    wait_for 30 slurmctld test -s "$STATE/slurmctld.pid"
    started slurmctld "$STATE/slurmctld.pid"
    /usr/sbin/slurmd
    wait_for 30 slurmd test -s "$STATE/slurmd.pid"
    started slurmd "$STATE/slurmd.pid"
    wait_for 60 "node $HOST (idle)" bash -c "sinfo -h -n '$HOST' -o %T | grep -qx idle"
}

cmd_up() {
    [[ $EUID -eq 0 ]] || die "needs root (apt-get, daemons, /etc/slurm)"
    if [[ -s "$STATE/started" ]]; then
        # Started by an earlier `up`: use it when every daemon is alive and
        # the node answers, otherwise stop what is left and start afresh.
        local name pidfile all_alive=1
        while read -r name pidfile; do
            alive "$(pid_of "$pidfile")" || all_alive=0
        done < "$STATE/started"
        if ((all_alive)) && sinfo -h -n "$HOST" -o %T 2>/dev/null | grep -qx idle; then
            log "already up (started earlier, see $STATE/started): using it"
            return 0
        fi
        log "an earlier bring-up is partly down: stopping what is left and starting again"
        cmd_down
    fi
    mkdir -p "$STATE"
    : > "$STATE/started"
    : > "$STATE/conf_files"
    getent hosts "$HOST" >/dev/null || die "host name $HOST does not resolve: add it to /etc/hosts"
    install_missing
    start_munge
    start_mariadb
    write_slurm_confs
    start_slurm
    log "up: node $HOST $(sinfo -h -n "$HOST" -o '%c CPUs, %m MB, %T'); cluster $CLUSTER with accounting"
}

stop_pid() {  # stop_pid NAME PIDFILE
    local name="$1" pidfile="$2" pid
    pid="$(pid_of "$pidfile")"
    if [[ -z "$pid" ]] || ! alive "$pid"; then
        log "$name: not running"
        return
    fi
    kill "$pid"
    for _ in $(seq 1 60); do
        alive "$pid" || { log "$name ($pid) stopped"; return; }
        sleep 0.5
    done
    log "$name ($pid) did not stop on SIGTERM: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

cmd_down() {
    [[ -s "$STATE/started" ]] || { log "nothing started by this script ($STATE/started missing)"; return 0; }
    # Reverse order of starting.
    tac "$STATE/started" | while read -r name pidfile; do
        stop_pid "$name" "$pidfile"
    done
    if [[ -s "$STATE/conf_files" ]]; then
        while read -r path; do
            if [[ -e "$path" ]] && grep -qF "$MARKER" "$path"; then rm -f "$path"; fi
        done < "$STATE/conf_files"
    fi
    rm -f "$STATE/started" "$STATE/conf_files"
}

cmd_status() {
    [[ -s "$STATE/started" ]] || { echo "down"; return 1; }
    local ok=0
    while read -r name pidfile; do
        pid="$(pid_of "$pidfile")"
        if [[ -n "$pid" ]] && alive "$pid"; then echo "$name $pid running"; else echo "$name not running"; ok=1; fi
    done < "$STATE/started"
    sinfo -h -o "%N %c CPUs %m MB %T" || ok=1
    return "$ok"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
