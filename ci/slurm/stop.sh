#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by ci/slurm/start.sh.
# Only the daemons whose PIDs start.sh recorded in its pidfiles are stopped,
# and only if that PID still is a live (non-zombie) process of the expected
# name. Idempotent: a no-op when nothing is running. Must run as root.
set -euo pipefail

RUN_DIR=${DMF_SLURM_RUN:-/run/dmf-slurm}
SPOOL_DIR=/var/spool/slurmd            # SlurmdSpoolDir in start.sh's slurm.conf
CANCEL_WAIT_S=${SLURM_CANCEL_WAIT_S:-20}

# shellcheck source=ci/slurm/common.sh
. "$(dirname "$0")/common.sh"

[ "$(id -u)" -eq 0 ] || { log "ERROR: must run as root"; exit 1; }

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

# descendants PID...: live descendants of the given PIDs (via PPid in
# /proc/*/stat), i.e. the job processes started by a slurmstepd.
descendants() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots="$*" '
        { pid = $1; s = $0; sub(/.*\) /, "", s); split(s, a, " ");
          if (a[1] != "Z") pp[pid] = a[2] }
        END { n = split(roots, r, " "); for (i = 1; i <= n; i++) set[r[i]] = 1
              do { changed = 0
                   for (p in pp) if (!(p in set) && (pp[p] in set)) { set[p] = 1; out[p] = 1; changed = 1 }
              } while (changed)
              for (p in out) print p }'
}

# 1. Cancel all jobs of this cluster while slurmctld/slurmd are still up, so
#    that no job step (slurmstepd + job processes) outlives the daemons.
if alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        if alive "$RUN_DIR/slurmd.pid" slurmd; then
            t0=$SECONDS
            while [ $((SECONDS - t0)) -lt "$CANCEL_WAIT_S" ]; do
                [ -z "$(squeue -h -o %A 2>/dev/null)" ] && [ -z "$(stepd_pids)" ] && break
                sleep 0.2
            done
        fi
    fi
fi

# 2. slurmd first, then the controller, then munge (both slurm daemons use
#    it while shutting down).
stop_pidfile "$RUN_DIR/slurmd.pid" slurmd
stop_pidfile "$RUN_DIR/slurmctld.pid" slurmctld
stop_pidfile "$RUN_DIR/munged.pid" munged

# 3. Leftover job steps of our slurmd (only if cancelling did not end them,
#    e.g. slurmd had died): their job processes first, then the slurmstepd.
steps=$(stepd_pids)
if [ -n "$steps" ]; then
    # shellcheck disable=SC2086,SC2046
    victims=$(printf '%s\n' $(descendants $steps) $steps | sort -un | tr '\n' ' ')
    log "killing leftover job steps of our slurmd (pids $victims)"
    declare -A vcomm=()
    for p in $victims; do vcomm[$p]=$(cat "/proc/$p/comm" 2>/dev/null || true); done
    # shellcheck disable=SC2086
    kill -TERM $victims 2>/dev/null || true
    for _ in $(seq 1 30); do
        still=
        for p in $victims; do pid_alive "$p" "${vcomm[$p]}" && still="$still $p"; done
        [ -z "$still" ] && break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -z "$still" ] || kill -KILL $still 2>/dev/null || true
fi

rm -rf "$RUN_DIR/native"
log "stopped (nothing of ours left running)"
exit 0
