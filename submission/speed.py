"""Compiling, precision and timing on the training device: what train.py plans and paces its steps with.

Two facts shape this file. CUDA runs kernels asynchronously: `time.time()` around a step times
its kernel launches, not the GPU's work, unless something waits for the queue (a synchronize).
And torch.compile can fail where the entry runs: torch 1.13 has no torch.compile; Inductor needs a
C compiler (Triton builds a C launcher on CUDA, the CPU backend builds C++), which the PyTorch
runtime image lacks; an op may be unsupported. So compiling is tried once, timed, inside the
budget, and a failure means eager training with the reason said, never a failed run. On CUDA
the steps run in bf16 (fp16 before Ampere) under autocast, which the tensor cores run fastest.
"""

import os
import shutil
import signal
import time

import torch


def device_sync(device):
    """The call that waits for the device's queued work: torch.cuda.synchronize on CUDA, nothing on
    CPU (its ops return when done)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


class StepTimer:
    """Seconds per training step as the device does them, waiting for the device (`sync`) only
    every `every` steps: a synchronize per step would stall a GPU's queue, none at all would time
    launches. `step_s`: a pessimistic running figure (a slow interval counts in full, then fades
    by 0.9 per interval). Between syncs up to `pending` steps may still be queued on the device, so
    `done_by()` counts them too."""

    def __init__(self, sync, every):
        self.sync, self.every = sync, max(1, int(every))
        self.step_s, self.pending, self.mark = 0.0, 0, time.time()

    def restart(self):
        """Account for the queued steps, then start a new interval: what the host does between
        intervals (augmenting an epoch, saving a checkpoint) is not a training step."""
        if self.pending:
            self.flush()
        self.mark = time.time()

    def stepped(self):
        """One more step launched (done, on CPU)."""
        self.pending += 1
        if self.pending >= self.every:
            self.flush()

    def flush(self):
        self.sync()
        now = time.time()
        self.step_s = max(self.step_s * 0.9, (now - self.mark) / self.pending)
        self.mark, self.pending = now, 0

    def done_by(self):
        """When the queued steps and one more would be done, at the pessimistic step time."""
        return time.time() + self.step_s * (self.pending + 1)


def timed(fn, sync, steps):
    """The fastest of `steps` calls of fn(), each waited for (a one-off stall must not count)."""
    times = []
    for _ in range(steps):
        t0 = time.time()
        fn()
        sync()
        times.append(time.time() - t0)
    return min(times)


class CompileTimeout(Exception):
    pass


def missing_compiler(device):
    """Why Inductor cannot build kernels here, or None: on CUDA Triton builds a C launcher with $CC,
    gcc or clang; on CPU Inductor builds C++ with $CXX or g++. Asked first, because finding out by
    compiling costs the budget ~30 s (2 CPU cores: Dynamo and Inductor trace the whole step first)."""
    var, names = ("CC", ("gcc", "clang", "cc")) if device.type == "cuda" else ("CXX", ("g++", "c++", "clang++"))
    if any(shutil.which(name) for name in ([os.environ[var]] if os.environ.get(var) else []) + list(names)):
        return None
    return f"no C{'' if var == 'CC' else '++'} compiler on PATH (${var}, {', '.join(names)}), which Inductor needs"


def unavailable(device):
    """Why torch.compile cannot work here, known without trying, or None."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    return missing_compiler(device)


def try_compile(model, step, limit_s, device):
    """(forward, seconds spent, why not or "compiled"): torch.compile(model) and one call of
    step(compiled), which compiles the forward and backward passes, or the model itself and why not. Any failure (no
    torch.compile, no C compiler, an unsupported op, past limit_s) falls back to eager. limit_s
    bounds the attempt with SIGALRM, which interrupts Dynamo/Inductor's Python between ops."""
    if unavailable(device):
        return model, 0.0, unavailable(device)
    t0 = time.time()

    def give_up(signum, frame):
        raise CompileTimeout(f"compiling took longer than {limit_s:.0f} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, max(limit_s, 1e-3))
    try:
        compiled = torch.compile(model)
        step(compiled)
    except Exception as exc:  # noqa: BLE001 (any failure means eager training, said why)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if hasattr(torch, "_dynamo"):
            torch._dynamo.reset()  # drop half-built graphs and guards
        lines = str(exc).strip().splitlines() or [""]
        return model, time.time() - t0, f"torch.compile failed: {type(exc).__name__}: {lines[0][:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return compiled, time.time() - t0, "compiled"


def grads_finite(params):
    """Whether every gradient is finite, with one host sync for all of them (not one per parameter):
    a sum is inf or nan when any of its terms is."""
    return bool(torch.isfinite(torch.stack([p.grad.float().sum() for p in params if p.grad is not None])).all())


def mixed_precision(device, setting):
    """(autocast dtype or None, static loss scale). On CUDA (amp: auto or true) bf16, which needs
    no loss scaling, or fp16 where bf16 is unsupported (pre-Ampere), with a static scale: a dynamic
    GradScaler does not compose with the multi-pass SAM/meta gradients. On CPU: fp32, scale 1."""
    if not (device.type == "cuda" and setting in ("auto", True)):
        return None, 1.0
    return (torch.bfloat16, 1.0) if torch.cuda.is_bf16_supported() else (torch.float16, 1024.0)


class Autocast:
    """Calls `net` under CUDA autocast at `dtype`; the loss is computed in fp32, and the weights,
    gradients and optimizer stay fp32."""

    def __init__(self, net, dtype):
        self.net, self.dtype = net, dtype

    def __call__(self, inp):
        with torch.autocast(device_type="cuda", dtype=self.dtype):
            return self.net(inp)
