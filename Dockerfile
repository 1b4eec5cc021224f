# The image that runs a submission's phases (one container per phase, see harness/runners/docker.py).
#
#   make image-cpu     # offline: --build-arg BASE_IMAGE=haet-base:bookworm-cpu  -t haet-runtime:cpu
#   make image-cuda    # offline: --build-arg BASE_IMAGE=haet-base:bookworm-cuda -t haet-runtime:cuda
#   docker build -t haet-runtime:cuda .    # online alternative: the official PyTorch image (registry, Ubuntu archive)
#
# The runner mounts the graded submission read-only at /submission over the copy baked in
# here, runs it as uid 10001 with a read-only root filesystem, and never mounts labels.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

# A non-root user; the offline Debian base and the Ubuntu-based PyTorch image both have useradd
# (passwd is Priority: required), the fallback covers bases that do not.
RUN if command -v useradd >/dev/null 2>&1; then \
        useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin haet; \
    else \
        echo 'haet:x:10001:10001::/tmp:/usr/sbin/nologin' >>/etc/passwd && echo 'haet:x:10001:' >>/etc/group; \
    fi
# The contract's runtime table (docs/submission-contract.md) promises numpy and PyYAML next to torch;
# the official image has numpy: install only what is missing.
RUN python -c "import numpy, yaml" 2>/dev/null || python -m pip install --no-cache-dir numpy pyyaml

# torch.compile needs a C and a C++ compiler (Triton's launcher on CUDA, Inductor's kernels on CPU). The
# offline bases have them (cuda) or no torch.compile (cpu, torch 1.13); the official PyTorch runtime image
# has torch.compile and no compiler: install one from its Ubuntu archive.
RUN if python -c "import shutil, sys, torch; sys.exit(0 if hasattr(torch, 'compile') and not shutil.which('g++') else 1)"; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc g++ libc6-dev \
        && rm -rf /var/lib/apt/lists/*; \
    fi

COPY submission/ /submission
ENV HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp \
    TORCH_HOME=/tmp/torch \
    XDG_CACHE_HOME=/tmp/.cache
LABEL haet.runtime=1
WORKDIR /submission
USER 10001:10001
CMD ["python", "-c", "print('haet runtime image: the harness runs each phase with its own command')"]
