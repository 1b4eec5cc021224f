"""One phase of a graded run under a runner: started, timed by the clock, watched (events, checkpoints,
snapshots, progress) and sampled (CPU, RAM, GPU), then made harmless on the host. `harness.run` calls
it for train, predict and each curve point."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.checkpoints import LISTED_CHECKPOINTS, SaveWatch, settle, watched_state
from harness.clock import Deadline, Interrupted, supervise
from harness.console import Progress
from harness.events import EventTail, describe
from harness.hostfiles import make_safe
from harness.model import (
    GpuStatus,
    MonitorSummary,
    Outcome,
    PhaseResult,
)
from harness.monitor import Gpus, Monitor
from harness.options import RunOptions
from harness.runners import PhaseSpec, Runner
from harness.snapshots import Snapshots

TICK_S = 0.5  # how often the watcher reads events and redraws progress


@dataclass
class Devices:
    """The run's GPUs, opened once through NVML (cuda runs only), and why none are monitored."""

    gpus: Gpus | None
    status: GpuStatus
    note: str = ""

    @classmethod
    def open(cls, options: RunOptions, open_gpus: Callable[[str], tuple[Gpus | None, str]]) -> Devices:
        if options.device != "cuda":
            return cls(None, GpuStatus.CPU_RUN, "The run used --device cpu; GPUs were not monitored")
        gpus, note = open_gpus(options.gpu_selector)
        return cls(gpus, GpuStatus.MONITORED if gpus else GpuStatus.NOT_VISIBLE, note)

    def close(self) -> None:
        if self.gpus:
            self.gpus.close()


# --- phases ------------------------------------------------------------------


class PhaseRunner:
    """Starts one phase, watches it, and turns what happened into a PhaseResult."""

    def __init__(
        self,
        runner: Runner,
        options: RunOptions,
        progress: Progress,
        devices: Devices,
        snapshot_store: Path | None = None,
    ):
        self.runner, self.options, self.progress, self.devices = runner, options, progress, devices
        self.snapshot_store, self.snapshots = snapshot_store, None  # --curve: train's snapshots land here
        self.unreadable: str | None = None  # why train's checkpoint folder was emptied unscored (checkpoints.settle)

    def run(self, spec: PhaseSpec, run_dir: Path, monitored: bool) -> tuple[PhaseResult, MonitorSummary | None]:
        """`monitored`: the run's record of this phase (train): metrics.csv, events.jsonl and the summary.
        Every phase is sampled, so its CPU and GPU-busy seconds are in its PhaseResult (predict's too)."""
        handle = self.runner.start(spec)
        deadline = handle.deadline
        events = EventTail(spec.events_file, deadline.started_unix)
        monitor = Monitor(
            handle.sample,
            self.devices.gpus,
            self.devices.note,
            self.options.monitor_interval_s,
            run_dir / "metrics.csv" if monitored else None,
        )
        monitor.start(deadline.started_monotonic)
        view = handle.checkpoint_view() if spec.writable_checkpoints else None
        saves = SaveWatch()
        if self.snapshot_store and spec.writable_checkpoints:
            self.snapshots = Snapshots(view, self.snapshot_store, deadline.elapsed, monitor.energy_so_far)
        watcher = Watcher(
            spec,
            deadline,
            events,
            monitor,
            self.progress,
            view,
            saves,
            self.snapshots if spec.writable_checkpoints else None,
        ).start()

        interrupted = False
        try:
            clock = supervise(handle)
        except Interrupted:
            interrupted, clock = True, None
        finally:
            exit_info = handle.finish()
            watcher.stop()
            summary = monitor.stop()
            summary.gpu_status = self.devices.status
            if monitored:
                events.write(run_dir / "events.jsonl")
        tail = handle.sink.tail()
        made_safe = harmless(spec)
        result = PhaseResult(
            phase=spec.phase,
            outcome=Outcome.INTERRUPTED,
            seconds=round(clock.seconds if clock else deadline.elapsed(), 3),
            budget_s=spec.budget_s,
            grace_s=spec.grace_s,
            exit_code=clock.exit_code if clock else None,
            signals=clock.signals if clock else [],
            stray_processes_killed=exit_info.stray_processes_killed,
            log_tail=tail[-20:],
        )
        result.cpu_seconds, result.gpu_busy_seconds = monitor.compute()
        summary = summary if monitored else None
        result.rewritten_in_place = sorted(saves.in_place)[:LISTED_CHECKPOINTS]
        unreadable = (
            settle(result, exit_info.checkpoint_times, exit_info.checkpoints_unreadable, spec.checkpoints_dir, deadline)
            if spec.writable_checkpoints
            else None
        )
        if spec.writable_checkpoints:
            self.unreadable = unreadable
        if interrupted:
            result.detail = "the operator interrupted the harness; the phase was killed"
            raise PhaseInterrupted(result, summary)
        if exit_info.oom_killed:
            result.outcome, result.detail = Outcome.OOM, "killed: over the memory limit"
        elif clock.hit_deadline:
            result.outcome = Outcome.KILLED_AT_DEADLINE
            result.detail = f"still running at {spec.budget_s - spec.grace_s:g}s: sent " + ", ".join(
                f"{s.name} at {s.at_s:.2f}s" for s in clock.signals
            )
        elif clock.exit_code != 0:
            result.outcome, result.detail = Outcome.CRASHED, f"exited with code {clock.exit_code}"
        else:
            result.outcome = Outcome.COMPLETED
        notes = list(exit_info.notes) + made_safe + events.notes + ([unreadable] if unreadable else [])
        if exit_info.stray_processes_killed:
            notes.append(f"{exit_info.stray_processes_killed} process(es) outlived the command and were killed")
        result.detail = "; ".join([result.detail, *notes] if result.detail else notes)
        return result, summary


def harmless(spec: PhaseSpec) -> list[str]:
    """After any phase, under every runner: nothing the entry wrote keeps set-id bits or is a
    device, fifo or socket (harness.hostfiles). Notes for the phase's detail."""
    places = [(spec.checkpoints_dir, "/checkpoints"), (spec.events_file, "the events file")]
    places += [(spec.output_dir, "/output")] if spec.output_dir is not None else []
    return [note for path, shown_as in places for note in make_safe(path, shown_as)]


class Watcher:
    """Everything the clock must never wait for: the entry's events, its checkpoints (`view`, the
    runner's view of them while train runs) and the progress line.

    Runs on its own thread; the entry controls how much there is to read, so none of it
    may run in the clock's loop (harness.clock).
    """

    def __init__(
        self,
        spec: PhaseSpec,
        deadline: Deadline,
        events: EventTail,
        monitor: Monitor | None,
        progress: Progress,
        view: Path | None,
        saves: SaveWatch,
        snapshots: Snapshots | None = None,
    ):
        self.spec, self.deadline, self.events, self.monitor, self.progress = spec, deadline, events, monitor, progress
        self.view, self.saves, self.snapshots = view, saves, snapshots
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch:{spec.phase}", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            self.events.poll()
            if self.view is not None:  # one walk a tick feeds both checkpoint watchers
                state, complete = watched_state(self.view)
                self.saves.look(state)
                if self.snapshots:
                    self.snapshots.look(state if complete else None)
            latest = self.monitor.latest if self.monitor else None
            util = latest.gpus[0]["util"] if latest and latest.gpus else None
            self.progress.update(
                self.spec.phase,
                self.deadline.elapsed(),
                self.spec.budget_s,
                describe(self.events.last),
                latest.cpu_percent if latest else None,
                latest.rss_bytes if latest else None,
                util,
            )


class PhaseInterrupted(Exception):
    def __init__(self, phase: PhaseResult, monitor: MonitorSummary | None):
        super().__init__("interrupted")
        self.phase, self.monitor = phase, monitor


def not_started(phase: str, budget: float) -> PhaseResult:
    return PhaseResult(
        phase=phase,
        outcome=Outcome.NOT_STARTED,
        seconds=0.0,
        budget_s=budget,
        detail="not started: the train phase did not leave a model",
    )


# --- one graded run ------------------------------------------------------------
