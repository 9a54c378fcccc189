#!/usr/bin/env bash
# A real one-node Slurm cluster and an sshd on 127.0.0.1, for the cluster tests.
#
#   tests/cluster/testbed.sh install      apt-get the packages (slurm-wlm, munge, openssh-server)
#   tests/cluster/testbed.sh start DIR    start munged (if not running), slurmctld, slurmd, sshd;
#                                         everything they write lives in DIR; DIR/testbed.env
#                                         says the port, key and known_hosts
#   tests/cluster/testbed.sh stop DIR     stop what `start` started, by the PIDs it recorded
#
# Loopback only. Slurm uses its own ports (16817/16818) and config (DIR/slurm.conf, passed to
# SSH sessions as SLURM_CONF), so a real Slurm on the machine is not touched.
set -euo pipefail

need=(slurmctld slurmd munged sshd sbatch ssh-keygen)

install() {
    local missing=()
    for b in "${need[@]}"; do
        command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    echo "testbed: installing slurm-wlm munge openssh-server (missing: ${missing[*]})" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge openssh-server >/dev/null
}

wait_for() { # wait_for SECONDS COMMAND...
    local t=$1; shift
    for _ in $(seq $((t * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

free_port() {
    for p in $(seq 2222 2299); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo "testbed: no free port in 2222-2299" >&2
    return 1
}

start() {
    local dir; dir=$(realpath -m "$1")
    mkdir -p "$dir"/{state,spool,log}
    export PATH="$PATH:/usr/sbin"
    local host; host=$(hostname)
    local cpus; cpus=$(nproc)

    # munge: one per machine; start it only when its socket is absent
    if [ ! -S /run/munge/munge.socket.2 ]; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
        [ -f /etc/munge/munge.key ] || /usr/sbin/mungekey -c
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        runuser -u munge -- /usr/sbin/munged
        wait_for 10 test -S /run/munge/munge.socket.2
        cat /run/munge/munged.pid > "$dir/munged.pid"
    fi

    cat > "$dir/slurm.conf" <<EOF
ClusterName=autoresearch-test
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    /usr/sbin/slurmctld -f "$SLURM_CONF"
    wait_for 15 scontrol ping
    /usr/sbin/slurmd -f "$SLURM_CONF"
    wait_for 20 sh -c "sinfo --noheader --format=%t | grep -q idle"

    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519" -C testbed-host <<<y >/dev/null
    ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519" -C testbed-user <<<y >/dev/null
    cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
    local port; port=$(free_port)
    cat > "$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile $dir/sshd.pid
Subsystem sftp internal-sftp
SetEnv SLURM_CONF=$dir/slurm.conf
EOF
    mkdir -p /run/sshd
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/log/sshd.log"
    wait_for 10 test -s "$dir/sshd.pid"
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" > "$dir/known_hosts"
    : > "$dir/ssh_config"
    cat > "$dir/testbed.env" <<EOF
SSH_PORT=$port
SSH_USER=$(id -un)
SSH_KEY=$dir/id_ed25519
KNOWN_HOSTS=$dir/known_hosts
SSH_CONFIG=$dir/ssh_config
SLURM_CONF=$dir/slurm.conf
EOF
    echo "testbed up in $dir (sshd on 127.0.0.1:$port)"
}

stop() {
    local dir; dir=$(realpath -m "$1")
    for name in sshd slurmd slurmctld munged; do
        local f="$dir/$name.pid"
        if [ -s "$f" ]; then
            local pid; pid=$(cat "$f")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$f"
        fi
    done
}

case "${1:-}" in
    install) install ;;
    start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; install; start "$2" ;;
    stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
    *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
