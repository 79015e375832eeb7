# Helpers shared by start.sh and stop.sh (sourced).

log() { echo "[slurm-ci] $*" >&2; }

# pid_alive PID COMM -> 0 if PID is a live (non-zombie) process whose
# /proc/PID/comm is COMM. (kill -0 is not enough: stopped daemons may linger
# as zombies when PID 1 does not reap them.)
pid_alive() {
    local pid=$1 comm=$2 state
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    # field 3 of /proc/PID/stat (after the ")" of the comm field) is the state
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# alive PIDFILE COMM: pid_alive for the pid recorded in PIDFILE.
alive() {
    [ -s "$1" ] || return 1
    pid_alive "$(tr -dc '0-9' < "$1")" "$2"
}

# stop_pidfile PIDFILE COMM: SIGTERM the daemon (only if the pid really is
# COMM), wait up to 20 s, then SIGKILL. Removes the pidfile.
stop_pidfile() {
    local pidfile=$1 comm=$2 pid
    if alive "$pidfile" "$comm"; then
        pid=$(tr -dc '0-9' < "$pidfile")
        log "stopping $comm (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        # wait on the PID, not the pidfile: slurmd/slurmctld delete their
        # pidfile early in shutdown, then may take ~10 s more
        for _ in $(seq 1 200); do
            pid_alive "$pid" "$comm" || break
            sleep 0.1
        done
        if pid_alive "$pid" "$comm"; then
            log "$comm (pid $pid) did not exit after 20 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    elif [ -e "$pidfile" ]; then
        log "$comm not running (stale pidfile $pidfile)"
    fi
    rm -f "$pidfile"
}
