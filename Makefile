# Everything a developer or CI needs; `make test` is the whole offline suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test clean

setup: $(STAMP)

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,torch]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) .pytest_cache

# Offline CPU images, no registry: Debian bookworm + python3-torch via debootstrap, then the
# runtime image from the root Dockerfile (used by `--runner docker --device cpu --image haet-runtime:cpu`).
.PHONY: image-cpu
image-cpu:
	bash docker/start-engine.sh
	bash docker/build-cpu-base.sh haet-base:bookworm-cpu
	docker build -q --build-arg BASE_IMAGE=haet-base:bookworm-cpu -t haet-runtime:cpu .

# The bundled submission's ablation table (docs/results.md): every preset, 3 seeds, 90 s on CPU.
.PHONY: ablation bench
ablation: setup
	$(BIN)/python benchmarks/ablation.py --budget 90 --seeds 3 --device cpu

# Harness benchmarks (docs/benchmarks.md).
bench: setup
	$(BIN)/python benchmarks/harness_overhead.py

# GPU truth in one command, on a GPU host's own Python (no venv, no Docker): docs/gpu.md.
GPU_CHECK_OUT ?= gpu-check
.PHONY: gpu-check
gpu-check:
	$(PYTHON) -m benchmarks.gpu_check --out $(GPU_CHECK_OUT)
