#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by ci/slurm/start.sh.
# Only the daemons whose PIDs start.sh recorded in its pidfiles are stopped,
# and only if that PID still is a live (non-zombie) process of the expected
# name. Idempotent: a no-op when nothing is running. Must run as root.
set -euo pipefail

RUN_DIR=${DMF_SLURM_RUN:-/run/dmf-slurm}

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

# slurmd first (it may still be finishing job steps), then the controller,
# then munge (both slurm daemons use it while shutting down).
stop_pidfile "$RUN_DIR/slurmd.pid" slurmd
stop_pidfile "$RUN_DIR/slurmctld.pid" slurmctld
stop_pidfile "$RUN_DIR/munged.pid" munged

left=0
for d in slurmd slurmctld munged; do
    [ -e "$RUN_DIR/$d.pid" ] && left=1
done
[ "$left" -eq 0 ] && log "stopped (nothing of ours left running)"
exit 0
