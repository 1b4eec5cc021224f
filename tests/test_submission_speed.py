"""submission/speed.py: compiling that falls back to eager with the reason, step timing that waits
for the device only every N steps, and the fp16 overflow check in one host sync. CUDA cannot run
here: a stand-in `sync` records when the timer waits for the device, and the clock is stepped by hand."""

import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "submission"))
import speed  # noqa: E402

CPU = torch.device("cpu")


class Clock:
    """time.time() under the test's control."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(speed.time, "time", c)
    return c


def test_the_timer_waits_for_the_device_every_n_steps_and_times_the_waited_work(clock):
    syncs = []

    def sync():  # a GPU's queue: launches return at once, the work is paid for at the sync
        clock.now += 0.9 * 4  # four queued steps of 0.9 s each finish now
        syncs.append(clock.now)

    timer = speed.StepTimer(sync, every=4)
    timer.restart()
    for _ in range(3):
        clock.now += 0.1  # launching a step takes 0.1 s of host time
        timer.stepped()
    assert syncs == [] and timer.step_s == 0.0  # no wait yet, and launch time is no step time
    assert timer.pending == 3
    clock.now += 0.1
    timer.stepped()
    assert len(syncs) == 1 and timer.pending == 0
    assert timer.step_s == pytest.approx((0.4 + 3.6) / 4)  # launches plus the waited-for work
    for _ in range(8):
        timer.stepped()
    assert len(syncs) == 3  # at most every 4 steps


def test_done_by_counts_the_queued_steps(clock):
    timer = speed.StepTimer(lambda: None, every=10)
    timer.step_s = 2.0
    timer.stepped()
    timer.stepped()
    assert timer.done_by() == pytest.approx(clock.now + 3 * 2.0)  # two queued + the next one


def test_restart_leaves_host_work_between_intervals_out_of_step_time(clock):
    timer = speed.StepTimer(lambda: None, every=1)
    timer.restart()
    clock.now += 1.0
    timer.stepped()
    clock.now += 30.0  # a checkpoint save, an epoch's augmentation
    timer.restart()
    clock.now += 1.0
    timer.stepped()
    assert timer.step_s == pytest.approx(1.0)


def test_a_slow_interval_counts_in_full_then_fades(clock):
    timer = speed.StepTimer(lambda: None, every=1)
    timer.restart()
    clock.now += 5.0
    timer.stepped()
    clock.now += 1.0
    timer.stepped()
    assert timer.step_s == pytest.approx(4.5)


def test_a_compile_that_fails_falls_back_to_eager_with_the_reason():
    model = torch.nn.Linear(4, 2)

    def step(net):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile (covered below)")
    net, seconds, why = speed.try_compile(model, step, 60, CPU)
    assert net is model and seconds >= 0
    assert why == "torch.compile failed: RuntimeError: InvalidCxxCompiler: No working C++ compiler found"


def test_a_compile_past_its_limit_falls_back_to_eager():
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    model = torch.nn.Linear(4, 2)
    naps = []  # a first step of 100 naps of 0.05 s: 5 s, cut at 0.3 s by the limit
    net, _, why = speed.try_compile(model, lambda net: [naps.append(time.sleep(0.05)) for _ in range(100)], 0.3, CPU)
    assert net is model and why == "torch.compile failed: CompileTimeout: compiling took longer than 0 s"
    # Counted, not timed: on a loaded machine torch.compile's own imports took 8 s of wall time.
    assert len(naps) < 100, "the step ran to its end: the limit did not cut it"


def test_a_torch_without_compile_trains_eagerly(monkeypatch):
    monkeypatch.delattr(torch, "compile", raising=False)  # torch 1.13, the CPU image's
    model = torch.nn.Linear(4, 2)
    net, seconds, why = speed.try_compile(model, lambda net: pytest.fail("must not run"), 60, CPU)
    assert net is model and seconds == 0 and why == f"torch {torch.__version__} has no torch.compile"


def test_no_compiler_on_path_is_found_before_compiling(monkeypatch, tmp_path):
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.delenv("CC", raising=False)
    model = torch.nn.Linear(4, 2)
    net, seconds, why = speed.try_compile(model, lambda net: pytest.fail("must not run"), 60, CPU)
    assert net is model and seconds == 0
    assert why == "no C++ compiler on PATH ($CXX, g++, c++, clang++), which Inductor needs"
    assert speed.missing_compiler(torch.device("cuda")).startswith("no C compiler on PATH ($CC, gcc")
    fake = tmp_path / "gcc"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert speed.missing_compiler(torch.device("cuda")) is None  # Triton's launcher needs only C


def test_grads_finite_is_one_check_over_all_parameters():
    params = [torch.nn.Parameter(torch.zeros(3)) for _ in range(4)]
    for p in params:
        p.grad = torch.ones(3)
    assert speed.grads_finite(params)
    params[2].grad[1] = float("inf")
    assert not speed.grads_finite(params)
    params[2].grad[1] = float("nan")
    assert not speed.grads_finite(params)
