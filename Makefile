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

# Lint and format first (seconds); then the tests that wait on real deadlines; then those marked
# `slow`, which train the bundled entry for real and need the cores to themselves, one at a time.
# Serial, the first part took 26:41 alone on 2 cores (2026-12-02). TEST_WORKERS=4 runs it on parallel
# workers (pytest-xdist): 11:37 alone, but not yet steady (a neighbour's Docker container lost, and
# Slurm's job-limit and requeue tests failing beside the other workers), so CI stays serial.
TEST_WORKERS ?= 0
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -ra -m "not slow" -n $(TEST_WORKERS) --dist loadgroup --durations=10
	$(BIN)/python -m pytest -q -ra -m slow --durations=10

clean:
	rm -rf $(VENV) .pytest_cache

# Offline runtime images, no registry: a Debian bookworm base via debootstrap (docker/build-base.sh),
# then the runtime image from the root Dockerfile on it. The default image of `--runner docker` is
# haet-runtime:DEVICE.
#   image-cpu:  Debian's python3-torch 1.13 (CPU), about 2 min.
#   image-cuda: torch 2.14.1's CUDA wheels, gcc and g++ for torch.compile (docs/benchmarks.md: time, size).
.PHONY: image-cpu image-cuda
image-cpu image-cuda: image-%:
	bash docker/start-engine.sh
	bash docker/build-base.sh $* haet-base:bookworm-$*
	docker build -q --build-arg BASE_IMAGE=haet-base:bookworm-$* -t haet-runtime:$* .

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
