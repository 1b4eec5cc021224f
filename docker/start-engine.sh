#!/usr/bin/env bash
# Start a Docker engine on this machine if none answers. Idempotent.
#
#   bash docker/start-engine.sh        # exit 0 when `docker info` answers at the end
#
# What it does when no engine answers:
#   1. installs Debian's docker.io (dockerd, containerd, runc, docker-init) if dockerd is missing;
#   2. starts dockerd in the background, logging to $HAET_DOCKERD_LOG (/var/log/haet-dockerd.log);
#   3. waits up to $HAET_DOCKERD_TIMEOUT seconds (default 60) for it to answer.
#
# Measured on the CI VM (Debian bookworm, kernel 6.18, cgroup v1 + cgroupfs driver, 2 cores):
#   - docker.io 20.10.24 installs in ~12 s; dockerd answers ~1 s after start.
#   - overlay2 works; vfs is the fallback if overlay2 fails to start.
#   - iptables (pulled in by docker.io) works here; where it does not, the engine runs with
#     --iptables=false --bridge=none: submissions always run with network_mode=none anyway.
#   - docker-init (tini) ships as /usr/bin/docker-init: the runner uses init=True.
# Exit codes: 0 engine answers; 1 could not install or start it (reason printed, log tail shown).
set -euo pipefail

LOG=${HAET_DOCKERD_LOG:-/var/log/haet-dockerd.log}
TIMEOUT=${HAET_DOCKERD_TIMEOUT:-60}
SOCK=/var/run/docker.sock

say() { echo "[start-engine] $*" >&2; }

engine_answers() {
    if command -v docker >/dev/null 2>&1; then
        timeout 10 docker info >/dev/null 2>&1
    else
        # No CLI (e.g. only the SDK): ask the API directly.
        [ -S "$SOCK" ] && timeout 10 curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
    fi
}

if engine_answers; then
    say "engine already answers"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    say "no engine answers and not root: cannot start dockerd here"
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd missing: installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || { say "apt-get update failed"; exit 1; }
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null \
        || { say "apt-get install docker.io failed"; exit 1; }
fi

# A dead daemon may have left its pid file or socket behind.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid "$SOCK"
fi

flags=()
if ! { command -v iptables >/dev/null 2>&1 && iptables -t nat -L -n >/dev/null 2>&1; }; then
    flags+=(--iptables=false --ip6tables=false --bridge=none)
    say "iptables unusable here: starting dockerd with --iptables=false --bridge=none"
fi

start_dockerd() {  # $1 = storage driver
    say "starting dockerd (storage driver $1, log $LOG)"
    mkdir -p "$(dirname "$LOG")"
    nohup dockerd --storage-driver="$1" "${flags[@]}" >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    local waited=0
    while [ "$waited" -lt "$TIMEOUT" ]; do
        if engine_answers; then
            say "engine answers after ${waited}s (dockerd pid $pid)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited during start-up (storage driver $1)"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "dockerd did not answer within ${TIMEOUT}s; stopping it"
    kill "$pid" 2>/dev/null || true
    return 1
}

if start_dockerd overlay2 || start_dockerd vfs; then
    exit 0
fi
say "could not start a Docker engine; last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
exit 1
