#!/usr/bin/env bash
# Build an offline base image with no container registry at all: debootstrap a Debian bookworm root
# filesystem, add the variant's Python packages, then `docker import` it.
#
#   bash docker/build-base.sh cpu  [TAG]     # default TAG haet-base:bookworm-cpu
#   bash docker/build-base.sh cuda [TAG]     # default TAG haet-base:bookworm-cuda
#   bash docker/build-base.sh --check VARIANT [TAG]   # exit 0 when TAG is current, 1 when it must be built
#   HAET_FORCE_REBUILD=1 bash docker/build-base.sh VARIANT
#
# Variants:
#   cpu   Debian's own packages: python3-torch 1.13 (CPU), python3-torchvision, python3-numpy,
#         python3-yaml. Torch 1.13 has no torch.compile, so no compiler.
#   cuda  Debian's python3, gcc and g++ (torch.compile: Inductor's C++ on CPU, Triton's C launcher on
#         CUDA, both against Python.h from python3-dev), plus torch's CUDA wheels from the Python
#         package index; the nvidia-* wheels they pull in carry the CUDA runtime libraries, so the
#         GPU host needs only the driver (CUDA 13: driver 580 or newer).
#
# The image is labelled with the sha256 of this script and reused while that label matches: it is
# rebuilt only when this script changes (or when forced).
# Downloads are kept for the next build: .debs in $HAET_DEBOOTSTRAP_CACHE, wheels in
# $HAET_WHEEL_CACHE (fetched by this host's pip with its own configuration; the image gets none of
# it, and pip inside the root filesystem installs from that folder only, with no network).
set -euo pipefail

say() { echo "[build-base] $*" >&2; }
usage() { say "usage: bash docker/build-base.sh [--check] cpu|cuda [TAG]"; exit 2; }

CHECK_ONLY=
if [ "${1:-}" = "--check" ]; then CHECK_ONLY=1; shift; fi
VARIANT=${1:-}
SUITE=bookworm
case "$VARIANT" in
    cpu)
        PACKAGES=python3,python-is-python3,python3-torch,python3-torchvision,python3-numpy,python3-yaml,ca-certificates
        WHEELS=""
        TOOLS="python3 python useradd" ;;
    cuda)
        PACKAGES=python3,python-is-python3,python3-pip,python3-dev,gcc,g++,libc6-dev,ca-certificates
        # What the contract's table says; numpy, Pillow and PyYAML pinned too, so a rebuild is the same image.
        WHEELS="torch==2.14.1 torchvision==0.29.1 numpy==2.4.6 pillow==12.3.0 pyyaml==6.0.3"
        WHEEL_PYTHON=3.11 WHEEL_GLIBC_MINOR=36  # bookworm's python3 and glibc 2.36
        TOOLS="python3 python useradd gcc g++" ;;
    *) usage ;;
esac
[ $# -le 2 ] || usage
TAG=${2:-haet-base:$SUITE-$VARIANT}
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPT_SHA=$(sha256sum "$HERE/build-base.sh" | cut -c1-16)
CACHE=${HAET_DEBOOTSTRAP_CACHE:-/var/cache/haet-debootstrap}
WHEEL_CACHE=${HAET_WHEEL_CACHE:-/var/cache/haet-wheels/$VARIANT}

timeout 30 docker info >/dev/null 2>&1 || { say "no Docker engine answers: start one with bash docker/start-engine.sh"; exit 1; }
current=$(docker image inspect --format '{{ index .Config.Labels "haet.base.script-sha" }}' "$TAG" 2>/dev/null || true)
if [ -n "$CHECK_ONLY" ]; then
    if [ "$current" = "$SCRIPT_SHA" ]; then say "$TAG is current (script sha $SCRIPT_SHA)"; exit 0; fi
    if [ -n "$current" ]; then say "$TAG was built by another version of this script"; else say "$TAG is not built"; fi
    exit 1
fi
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

start=$(date +%s)
if [ -n "$WHEELS" ]; then
    # Fetched first: a missing wheel fails in seconds, not after debootstrap. pip skips files it has.
    python3 -m pip --version >/dev/null 2>&1 || { say "the cuda variant needs pip on this host (python3 -m pip)"; exit 1; }
    mkdir -p "$WHEEL_CACHE"
    say "fetching wheels for Python $WHEEL_PYTHON ($WHEELS) into $WHEEL_CACHE"
    # pip takes a manylinux_2_N platform literally: name every glibc up to bookworm's (manylinux2014
    # stands for 2.17 and older).
    platforms=(--platform manylinux2014_x86_64)
    for minor in $(seq 17 "$WHEEL_GLIBC_MINOR"); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
    # shellcheck disable=SC2086 # WHEELS is a list of requirements
    nice -n 10 python3 -m pip download --quiet --dest "$WHEEL_CACHE" --only-binary=:all: \
        --python-version "$WHEEL_PYTHON" --implementation cp --abi "cp${WHEEL_PYTHON/./}" "${platforms[@]}" $WHEELS \
        >"$WHEEL_CACHE.log" 2>&1 || {
        say "pip download failed; last lines of $WHEEL_CACHE.log:"; tail -n 30 "$WHEEL_CACHE.log" >&2; exit 1; }
    say "wheels ready in $(( $(date +%s) - start ))s ($(du -sh "$WHEEL_CACHE" | cut -f1))"
fi

ROOT=$(mktemp -d /var/tmp/haet-base.XXXXXX)
cleanup() {
    umount -l "$ROOT/proc" "$ROOT/sys" 2>/dev/null || true
    # Never delete through a mount that is still there.
    if grep -q " $ROOT/" /proc/mounts; then say "left $ROOT in place: something is still mounted in it"; return; fi
    rm -rf "$ROOT"
}
trap cleanup EXIT
mkdir -p "$CACHE"

say "debootstrap $SUITE (minbase) from $MIRROR into $ROOT"
nice -n 10 debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE" \
    "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
    say "debootstrap failed; last lines of $ROOT.log:"; tail -n 30 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
say "debootstrap done in $(( $(date +%s) - start ))s"

if [ -n "$WHEELS" ]; then
    # Hard links when the cache is on the same filesystem (no copy of several GB), else a copy.
    cp -al "$WHEEL_CACHE" "$ROOT/tmp/wheels" 2>/dev/null || cp -a "$WHEEL_CACHE" "$ROOT/tmp/wheels"
    mount -t proc proc "$ROOT/proc"
    say "installing the wheels in the root filesystem (no index, no network)"
    # Into the system Python: the image has no other Python packages for pip to break. Byte-code is
    # compiled now because the runtime's root filesystem is read-only (every import would recompile).
    # shellcheck disable=SC2086
    nice -n 10 chroot "$ROOT" env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CONFIG_FILE=/dev/null \
        python3 -m pip install --quiet --no-index --find-links /tmp/wheels --no-cache-dir \
        --break-system-packages --root-user-action=ignore --disable-pip-version-check $WHEELS >&2 || {
        say "pip install in the root filesystem failed"; exit 1; }
    umount "$ROOT/proc"
    say "wheels installed at $(( $(date +%s) - start ))s"
fi

# Trim what a runtime image never needs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log "$ROOT"/tmp/* "$ROOT"/root/.cache
# Check what the Dockerfile and the contract's table rely on.
for tool in $TOOLS; do
    chroot "$ROOT" sh -c "command -v $tool" >/dev/null || { say "$tool missing in the root filesystem"; exit 1; }
done
chroot "$ROOT" python3 -c 'import torch, torchvision, numpy, yaml; print("torch", torch.__version__, "torchvision", torchvision.__version__, "numpy", numpy.__version__)' >&2

say "importing as $TAG"
nice -n 10 tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change "LABEL haet.base.script-sha=$SCRIPT_SHA" \
    --change "LABEL haet.base.suite=$SUITE" \
    --change "LABEL haet.base.variant=$VARIANT" \
    --change "ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1" \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
say "built $TAG in $(( $(date +%s) - start ))s ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
