# The harness's own image, for `docker compose up` (see compose.yaml). It launches each phase of a
# submission as a sibling container through the host's Docker socket.
#
#   GPU host: the official PyTorch image (torch + torchvision for the CIFAR-10 downloader)
#   offline CPU: --build-arg BASE_IMAGE=haet-base:bookworm-cpu (Debian; pip/venv from Debian's packages)
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}
USER root
# Offline Debian base (no pip, and PyPI may sit behind a TLS proxy the image does not trust): the
# harness's dependencies come from Debian's packages (NVML monitoring is off: no pynvml there).
# Official PyTorch base (pip, internet): pip installs the harness with its dependencies.
RUN if ! python3 -m pip --version >/dev/null 2>&1 && command -v apt-get >/dev/null; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3-docker python3-psutil python3-pil python3-yaml python3-numpy \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY pyproject.toml README.md /opt/haet/
COPY harness /opt/haet/harness
RUN if python3 -m pip --version >/dev/null 2>&1; then python3 -m pip install --no-cache-dir /opt/haet; fi \
    && python3 -c "import sys; sys.path.insert(0, '/opt/haet'); import harness.cli, docker, psutil"
ENV PYTHONPATH=/opt/haet \
    HAET_CACHE=/cache \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "harness"]
CMD ["--help"]
