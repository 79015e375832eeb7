#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by ci/slurm/start.sh.
# Only the daemons whose PIDs start.sh recorded in its pidfiles are stopped,
# and only if that PID still is a live (non-zombie) process of the expected
# name. Idempotent: a no-op when nothing is running. Must run as root.
set -euo pipefail

RUN_DIR=${DMF_SLURM_RUN:-/run/dmf-slurm}
SPOOL_DIR=/var/spool/slurmd            # SlurmdSpoolDir in start.sh's slurm.conf
CANCEL_WAIT_S=${SLURM_CANCEL_WAIT_S:-20}

log() { echo "[slurm-ci] $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "ERROR: must run as root"; exit 1; }

alive() {
    local pidfile=$1 comm=$2 pid state
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' < "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

stop_pidfile() {
    local pidfile=$1 comm=$2 pid i
    if alive "$pidfile" "$comm"; then
        pid=$(tr -dc '0-9' < "$pidfile")
        log "stopping $comm (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 150); do
            alive "$pidfile" "$comm" || break
            sleep 0.1
        done
        if alive "$pidfile" "$comm"; then
            log "$comm (pid $pid) did not exit after 15 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    elif [ -e "$pidfile" ]; then
        log "$comm not running (stale pidfile $pidfile)"
    fi
    rm -f "$pidfile"
}

# PIDs of live slurmstepd processes of *our* slurmd: slurmstepd daemonizes
# (its parent is PID 1) and blanks its environment, so it is identified by the
# unix socket it listens on in our SlurmdSpoolDir (/proc/net/unix inode ->
# /proc/PID/fd/* -> "socket:[inode]").
stepd_pids() {
    local inodes p fd link
    [ -r /proc/net/unix ] || return 0
    inodes=" $(awk -v d="$SPOOL_DIR/" 'index($8, d) == 1 {print $7}' /proc/net/unix | tr '\n' ' ') "
    [ -n "${inodes// /}" ] || return 0
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        [ "$(sed 's/^.*) //' "$p/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || continue
        for fd in "$p"/fd/*; do
            link=$(readlink "$fd" 2>/dev/null) || continue
            case $link in
                socket:\[*\])
                    link=${link#socket:\[}; link=${link%\]}
                    if [[ $inodes == *" $link "* ]]; then echo "${p#/proc/}"; break; fi ;;
            esac
        done
    done
}

# 1. Cancel all jobs of this cluster while slurmctld/slurmd are still up, so
#    that no job step (slurmstepd + job processes) outlives the daemons.
if alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        t0=$SECONDS
        while [ $((SECONDS - t0)) -lt "$CANCEL_WAIT_S" ]; do
            [ -z "$(squeue -h -o %A 2>/dev/null)" ] && [ -z "$(stepd_pids)" ] && break
            sleep 0.2
        done
    fi
fi

# 2. slurmd first, then the controller, then munge (both slurm daemons use
#    it while shutting down).
stop_pidfile "$RUN_DIR/slurmd.pid" slurmd
stop_pidfile "$RUN_DIR/slurmctld.pid" slurmctld
stop_pidfile "$RUN_DIR/munged.pid" munged

# 3. Leftover job steps of our slurmd (only if cancelling did not finish them).
left_steps=$(stepd_pids)
if [ -n "$left_steps" ]; then
    log "killing leftover slurmstepd of our slurmd: $(echo $left_steps)"
    # shellcheck disable=SC2086
    kill -TERM $left_steps 2>/dev/null || true
    sleep 2
    left_steps=$(stepd_pids)
    # shellcheck disable=SC2086
    [ -z "$left_steps" ] || kill -KILL $left_steps 2>/dev/null || true
fi

left=0
for d in slurmd slurmctld munged; do
    [ -e "$RUN_DIR/$d.pid" ] && left=1
done
[ "$left" -eq 0 ] && log "stopped (nothing of ours left running)"
exit 0
