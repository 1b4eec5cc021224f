#!/usr/bin/env bash
# Build the offline CPU base image with no container registry at all:
# debootstrap a Debian bookworm root filesystem from Debian's own packages
# (python3, python-is-python3, python3-torch, python3-torchvision, python3-numpy, python3-yaml),
# then `docker import` it.
#
#   bash docker/build-cpu-base.sh [TAG]      # default TAG haet-base:bookworm-cpu
#   HAET_FORCE_REBUILD=1 bash docker/build-cpu-base.sh
#
# The image is labelled with the sha256 of this script and reused while that label
# matches: it is rebuilt only when this script changes (or when forced).
# Downloaded .debs are kept in $HAET_DEBOOTSTRAP_CACHE so a rebuild does not download again.
set -euo pipefail

TAG=${1:-haet-base:bookworm-cpu}
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPT_SHA=$(sha256sum "$HERE/build-cpu-base.sh" | cut -c1-16)
CACHE=${HAET_DEBOOTSTRAP_CACHE:-/var/cache/haet-debootstrap}
SUITE=bookworm
PACKAGES=python3,python-is-python3,python3-torch,python3-torchvision,python3-numpy,python3-yaml,ca-certificates

say() { echo "[build-cpu-base] $*" >&2; }

current=$(docker image inspect --format '{{ index .Config.Labels "haet.base.script-sha" }}' "$TAG" 2>/dev/null || true)
if [ "$current" = "$SCRIPT_SHA" ] && [ -z "${HAET_FORCE_REBUILD:-}" ]; then
    say "$TAG is current (script sha $SCRIPT_SHA); nothing to do"
    exit 0
fi

# Use the mirror this machine's apt already uses (the only registry reachable here).
MIRROR=${HAET_DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
    MIRROR=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
                 /etc/apt/sources.list.d/*.list 2>/dev/null \
             | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

ROOT=$(mktemp -d /var/tmp/haet-base.XXXXXX)
cleanup() { umount -l "$ROOT/proc" "$ROOT/sys" 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT
mkdir -p "$CACHE"

say "debootstrap $SUITE (minbase) from $MIRROR into $ROOT"
start=$(date +%s)
nice -n 10 debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE" \
    "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
    say "debootstrap failed; last lines of $ROOT.log:"; tail -n 30 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
say "debootstrap done in $(( $(date +%s) - start ))s"

# Trim what a runtime image never needs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log "$ROOT"/tmp/*
# Check what the Dockerfile relies on.
for tool in python3 python useradd; do
    chroot "$ROOT" sh -c "command -v $tool" >/dev/null || { say "$tool missing in the root filesystem"; exit 1; }
done
chroot "$ROOT" python3 -c 'import torch, torchvision, numpy, yaml; print("torch", torch.__version__, "torchvision", torchvision.__version__, "numpy", numpy.__version__)' >&2

say "importing as $TAG"
nice -n 10 tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change "LABEL haet.base.script-sha=$SCRIPT_SHA" \
    --change "LABEL haet.base.suite=$SUITE" \
    --change "ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1" \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
say "built $TAG in $(( $(date +%s) - start ))s ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
