#!/usr/bin/env bash
# Start (or keep running) a single-node SLURM cluster on this machine for CI
# integration tests (Snakemake SLURM executor plugin). Idempotent: running it
# again leaves exactly one munged/slurmctld/slurmd running (restarting the
# slurm daemons only if slurm.conf changed). Must run as root.
#
# Environment overrides:
#   SLURM_NODENAME   node name in slurm.conf            (default: localnode)
#   SLURM_PARTITION  default partition                   (default: debug)
#   SLURM_WAIT_S     seconds to wait for an idle node    (default: 60)
#   DMF_SLURM_RUN    pidfile/state dir of these scripts  (default: /run/dmf-slurm)
set -euo pipefail

NODENAME=${SLURM_NODENAME:-localnode}
PARTITION=${SLURM_PARTITION:-debug}
WAIT_S=${SLURM_WAIT_S:-60}
RUN_DIR=${DMF_SLURM_RUN:-/run/dmf-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
MUNGE_KEY=/etc/munge/munge.key
# Pidfiles: $RUN_DIR/<daemon>.pid are ours (what stop.sh uses); the daemons
# write their own into $NATIVE_DIR (munged: /run/munge), which they delete
# early during shutdown, so they are copied once the daemon is up.
NATIVE_DIR=$RUN_DIR/native
MUNGE_PID_NATIVE=/run/munge/munged.pid   # written by munged (as user munge)
MARKER="# managed by ci/slurm/start.sh"

# shellcheck source=ci/slurm/common.sh
. "$(dirname "$0")/common.sh"
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

diagnostics() {
    log "---- diagnostics ----"
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        echo "===== $f (last 60 lines) =====" >&2
        tail -n 60 "$f" >&2 2>/dev/null || echo "(missing)" >&2
    done
    echo "===== sinfo -R / scontrol show node =====" >&2
    sinfo -R >&2 2>&1 || true
    scontrol show node "$NODENAME" >&2 2>&1 || true
    echo "===== processes =====" >&2
    ps -eo pid,stat,comm,args | grep -E 'slurm|munge' | grep -v grep >&2 || true
}

# start_daemon COMM NATIVE_PIDFILE CMD...: run CMD (which daemonizes and
# writes NATIVE_PIDFILE), wait for it, record the PID in $RUN_DIR/COMM.pid.
start_daemon() {
    local comm=$1 native=$2
    shift 2
    rm -f "$native" "$RUN_DIR/$comm.pid"
    log "starting $*"
    "$@" || { diagnostics; die "'$*' failed"; }
    for _ in $(seq 1 100); do
        alive "$native" "$comm" && break
        sleep 0.1
    done
    alive "$native" "$comm" || { diagnostics; die "$comm did not start (no live pid in $native)"; }
    cp "$native" "$RUN_DIR/$comm.pid"
}

# ---------------------------------------------------------------- install
need_pkgs=()
command -v slurmctld >/dev/null 2>&1 || need_pkgs+=(slurmctld)
command -v slurmd    >/dev/null 2>&1 || need_pkgs+=(slurmd)
command -v sinfo     >/dev/null 2>&1 || need_pkgs+=(slurm-client)
command -v munged    >/dev/null 2>&1 || need_pkgs+=(munge)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    # Keep package maintainer scripts from starting services on their own
    # (we start and track the daemons ourselves).
    tmp_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        tmp_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    rc=0
    apt-get install -y --no-install-recommends \
        slurmctld slurmd slurm-client munge >/tmp/dmf-slurm-apt.log 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        # package lists may be missing/stale on a fresh machine
        apt-get update >>/tmp/dmf-slurm-apt.log 2>&1 || true
        apt-get install -y --no-install-recommends \
            slurmctld slurmd slurm-client munge >>/tmp/dmf-slurm-apt.log 2>&1 || rc=$?
        [ "$rc" -eq 0 ] || { [ -n "$tmp_policy" ] && rm -f /usr/sbin/policy-rc.d; tail -n 30 /tmp/dmf-slurm-apt.log >&2; die "apt-get install failed"; }
    fi
    [ -n "$tmp_policy" ] && rm -f /usr/sbin/policy-rc.d
    log "install done"
fi

install -d -m 0755 "$RUN_DIR" "$NATIVE_DIR" "$LOG_DIR" "$CONF_DIR"
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd

# ---------------------------------------------------------------- munge
install -d -m 0700 -o munge -g munge /etc/munge
install -d -m 0711 -o munge -g munge /var/lib/munge
install -d -m 0700 -o munge -g munge /var/log/munge
install -d -m 0755 -o munge -g munge /run/munge
if [ ! -s "$MUNGE_KEY" ]; then
    log "creating munge key"
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

if alive "$RUN_DIR/munged.pid" munged; then
    :
elif munge_ok; then
    log "a munged not started by this script is already serving; reusing it"
else
    # --force: start even if a stale socket/lock from a dead munged remains
    start_daemon munged "$MUNGE_PID_NATIVE" \
        runuser -u munge -- munged --force --pid-file="$MUNGE_PID_NATIVE"
    for _ in $(seq 1 50); do munge_ok && break; sleep 0.1; done
    munge_ok || { diagnostics; die "munged does not answer"; }
fi

# ---------------------------------------------------------------- slurm.conf
# Hardware from slurmd -C, e.g.
#   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
hw=$(slurmd -C | head -n 1)
hwval() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
CPUS=$(hwval CPUs); SOCKETS=$(hwval SocketsPerBoard); BOARDS=$(hwval Boards)
CORES=$(hwval CoresPerSocket); THREADS=$(hwval ThreadsPerCore); MEM=$(hwval RealMemory)
{ [ -n "$CPUS" ] && [ -n "$MEM" ] && [ -n "$CORES" ]; } || die "cannot parse 'slurmd -C': $hw"
SOCKETS=$(( ${SOCKETS:-1} * ${BOARDS:-1} ))
# leave some memory headroom for the OS / the test runner
MEM=$(( MEM - (MEM / 20 > 256 ? MEM / 20 : 256) ))
[ "$MEM" -gt 0 ] || MEM=256

newconf=$(mktemp)
trap 'rm -f "$newconf"' EXIT
cat > "$newconf" <<CONF
$MARKER -- do not edit, regenerated on every run
ClusterName=dmfci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$NATIVE_DIR/slurmctld.pid
SlurmdPidFile=$NATIVE_DIR/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups / no accounting in CI containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
# no mail in CI (silences 'Configured MailProg is invalid')
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# keep finished jobs visible to squeue/scontrol for 5 min (no sacct here)
MinJobAge=300
InactiveLimit=0
KillWait=5
SlurmdTimeout=60
SlurmctldTimeout=60
NodeName=$NODENAME NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODENAME Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
CONF

conf_changed=
if ! cmp -s "$newconf" "$CONF"; then
    if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        bak="$CONF.bak.$(date +%s)"
        log "backing up existing foreign $CONF to $bak"
        cp -p "$CONF" "$bak"
    fi
    install -m 0644 "$newconf" "$CONF"
    conf_changed=1
    log "wrote $CONF"
fi

# ---------------------------------------------------------------- daemons
if [ -n "$conf_changed" ]; then
    # slurmd must be restarted too after a slurm.conf change
    stop_pidfile "$RUN_DIR/slurmd.pid" slurmd
    stop_pidfile "$RUN_DIR/slurmctld.pid" slurmctld
fi

if ! alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    start_daemon slurmctld "$NATIVE_DIR/slurmctld.pid" slurmctld
fi
if ! alive "$RUN_DIR/slurmd.pid" slurmd; then
    start_daemon slurmd "$NATIVE_DIR/slurmd.pid" slurmd -N "$NODENAME"
fi

# ---------------------------------------------------------------- wait idle
start=$SECONDS
resumed=
state=
while :; do
    state=$(sinfo -h -n "$NODENAME" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|fail*)
            # e.g. left DOWN by an earlier unclean stop; ReturnToService=2
            # normally handles this, force it once after a few seconds
            if [ -z "$resumed" ] && [ $((SECONDS - start)) -ge 3 ]; then
                log "node state '$state', resuming"
                scontrol update NodeName="$NODENAME" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi ;;
    esac
    for d in slurmctld slurmd; do
        alive "$RUN_DIR/$d.pid" "$d" || { diagnostics; die "$d exited (see its log above)"; }
    done
    if [ $((SECONDS - start)) -ge "$WAIT_S" ]; then
        diagnostics
        die "node $NODENAME not idle after ${WAIT_S}s (state: '${state:-none}')"
    fi
    sleep 0.2
done

node=$(scontrol show node "$NODENAME")
cpus=$(sed -n 's/.*CPUTot=\([0-9]*\).*/\1/p' <<<"$node")
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
echo "slurm ready: node=$NODENAME cpus=$cpus memory=${mem}MB partition=$PARTITION state=$state (slurmctld pid $(cat "$RUN_DIR/slurmctld.pid"), slurmd pid $(cat "$RUN_DIR/slurmd.pid"))"
