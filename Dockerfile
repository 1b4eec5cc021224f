# The image that runs a submission's phases (one container per phase, see harness/runners/docker.py).
#
#   docker build -t haet-runtime:cuda .                                          # GPU host, official PyTorch image
#   docker build --build-arg BASE_IMAGE=haet-base:bookworm-cpu -t haet-runtime:cpu .   # offline (make image-cpu)
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
