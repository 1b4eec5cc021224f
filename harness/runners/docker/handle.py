"""One phase in one container: started, timed by the clock, sampled, stopped and cleaned up.

See harness/runners/docker/__init__.py for what a phase container may and may not do.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker.errors
from docker.types import DeviceRequest, Mount, Ulimit

import docker
from harness.checkpoints import checkpoint_times
from harness.clock import Deadline
from harness.contract import phase_environment
from harness.logs import LogSink
from harness.options import DEFAULT_GPU
from harness.runners import procs
from harness.runners.base import ExitInfo, PhaseSpec
from harness.runners.docker.cgroup import CgroupReader
from harness.runners.docker.volumes import MAX_FILES, copy_out
from harness.runners.limits import (
    C_CHECKPOINTS,
    C_DATA,
    C_EVENTS,
    C_OUTPUT,
    C_SUBMISSION,
    GID,
    UID,
    USER,
    events_over_cap,
)

if TYPE_CHECKING:
    from harness.runners.docker import DockerRunner


class _Safe(Iterator[bytes]):
    """A stream of chunks that ends quietly when the engine closes or breaks it."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)

    def __iter__(self) -> _Safe:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._it)
        except StopIteration:
            raise
        except Exception:
            raise StopIteration from None


def _ignore_gone(call, *args, **kwargs):
    """Engine calls on a container that may already have exited or been removed."""
    try:
        return call(*args, **kwargs)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code in (404, 409):  # gone / not running
            return None
        raise


class DockerHandle:
    """One phase in one container; see the module docstring."""

    def __init__(self, runner: DockerRunner, spec: PhaseSpec):
        self.runner = runner
        self.spec = spec
        self.client = runner.client
        self.notes: list[str] = []
        self._holder = None
        self._volumes: list = []
        self._capped: dict[str, tuple[str, Path, int]] = {}  # container path -> (volume, host dir, cap)
        self._exit_code: int | None = None
        self._exited = threading.Event()
        self._stop_watch = threading.Event()
        self.container = None
        image = runner.image_for(spec)
        labels = runner.labels(spec.phase, spec.log_path.parent.name)
        try:
            self._prepare(spec, image, labels)
        except BaseException:
            self._remove_all()
            raise

    # --- start ----------------------------------------------------------------

    def _prepare(self, spec: PhaseSpec, image: str, labels: dict[str, str]) -> None:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        mounts = self._mounts(spec, labels)
        if self._capped:
            self._holder = self._hold_volumes(image, labels)
        self.deadline = Deadline.start(spec.budget_s, spec.grace_s)  # the container's start-up is the phase's
        self.container = self._create(spec, image, labels, mounts)
        self.sink = LogSink(spec.log_path, spec.log_limit_bytes)
        self.container.start()
        self._find_processes()
        self._follow(spec)

    def _mounts(self, spec: PhaseSpec, labels: dict[str, str]) -> list[Mount]:
        """The entry and its data read-only, the events file, and the checkpoints and output:
        capped volumes where the phase writes them, else read-only."""
        r = self.runner
        mounts = [
            Mount(C_SUBMISSION, r.host_path(spec.submission_dir), type="bind", read_only=True),
            Mount(C_DATA, r.host_path(spec.data_dir), type="bind", read_only=True),
        ]
        # The events file: one file, bind-mounted, so the phase cannot create others beside it.
        spec.events_file.parent.mkdir(parents=True, exist_ok=True)
        spec.events_file.touch(exist_ok=True)
        _give_to_submission(spec.events_file)
        mounts.append(Mount(C_EVENTS, r.host_path(spec.events_file), type="bind", read_only=False))
        if spec.writable_checkpoints:
            mounts.append(self._capped_volume(C_CHECKPOINTS, spec.checkpoints_dir, r.limits.checkpoint_limit, labels))
        else:
            mounts.append(Mount(C_CHECKPOINTS, r.host_path(spec.checkpoints_dir), type="bind", read_only=True))
        if spec.output_dir is not None:
            mounts.append(self._capped_volume(C_OUTPUT, spec.output_dir, r.limits.output_limit, labels))
        return mounts

    def _hold_volumes(self, image: str, labels: dict[str, str]):
        """A container that keeps the tmpfs volumes mounted after the phase's container exits, until copied out."""
        return self.client.containers.run(
            image,
            ["sleep", "infinity"],
            detach=True,
            init=True,
            user=USER,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="64m",
            pids_limit=16,
            labels={**labels, "haet.role": "holder"},
            mounts=[Mount(path, vol, type="volume") for path, (vol, _, _) in self._capped.items()],
            log_config={"type": "none"},
            entrypoint=[],
        )

    def _environment(self, spec: PhaseSpec) -> dict[str, str]:
        env = {
            "HOME": "/tmp",
            "USER": "haet",
            "TMPDIR": "/tmp",
            "PYTHONUNBUFFERED": "1",
            "TINI_KILL_PROCESS_GROUP": "1",  # docker-init forwards SIGTERM to the whole process group
        }
        if spec.device == "cuda":
            env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
        env.update(
            phase_environment(
                spec,
                self.deadline,
                data=C_DATA,
                checkpoints=C_CHECKPOINTS,
                events=C_EVENTS,
                output=C_OUTPUT,
            )
        )
        return env

    def _create(self, spec: PhaseSpec, image: str, labels: dict[str, str], mounts: list[Mount]):
        """The phase's container, locked down (harness/runners/docker/__init__.py), not yet started."""
        limits = self.runner.limits
        device_requests = None
        if spec.device == "cuda":
            # Exactly one GPU, by index or UUID; inside the container it is device 0.
            device_requests = [DeviceRequest(device_ids=[str(spec.gpu or DEFAULT_GPU)], capabilities=[["gpu"]])]
        fsize = limits.file_size
        return self.client.containers.create(
            image,
            spec.command,
            entrypoint=[],
            working_dir=C_SUBMISSION,
            user=USER,
            environment=self._environment(spec),
            labels={**labels, "haet.role": "phase"},
            init=True,
            network_mode="none",
            read_only=True,
            # exec: torch.compile (Inductor) loads the kernels it builds from /tmp; Docker's default noexec breaks
            # it, and bars nothing an entry that already runs its own code could not do otherwise.
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={limits.tmp_size},mode=1777"},
            mounts=mounts,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=limits.memory,
            memswap_limit=limits.memory,  # swap equal to memory: no swap
            nano_cpus=int(limits.cpus * 1e9),
            shm_size=limits.shm_size,
            pids_limit=limits.pids_limit,
            ulimits=[Ulimit(name="fsize", soft=fsize, hard=fsize), Ulimit(name="core", soft=0, hard=0)],
            device_requests=device_requests,
            log_config={"type": "json-file", "config": {"max-size": "16m", "max-file": "2"}},
            stdin_open=False,
            tty=False,
        )

    def _find_processes(self) -> None:
        """Where this host shows the container's cgroup, its processes by host pid, to signal them."""
        self._cgroup = CgroupReader.find(self.container.id)
        self._init_pid = 0  # docker-init: it forwards signals itself, and must not get SIGTERM twice over
        # Host pids mean something only where the harness runs on the engine's host.
        if self._cgroup and not self.runner.owner["haet.owner.container"]:
            try:
                self.container.reload()
                self._init_pid = int(self.container.attrs["State"]["Pid"])
            except (docker.errors.APIError, KeyError, TypeError, ValueError):
                pass
        self._signals_by_pid = self._init_pid in (self._cgroup.processes() or []) if self._cgroup else False
        self._cpu_prev: tuple[str, float, float] | None = None  # source, stamp, CPU ns

    def _follow(self, spec: PhaseSpec) -> None:
        """Pump the container's log into the sink, and wait for its exit, each on a thread."""
        # Own connections without a read timeout: a phase may be quiet for many minutes.
        self._stream_clients = [docker.APIClient(base_url=self.runner.base_url, timeout=None) for _ in range(2)]
        logs = self._stream_clients[0].logs(self.container.id, stream=True, follow=True, stdout=True, stderr=True)
        self._pump = self.sink.drain(_Safe(logs))
        threading.Thread(target=self._wait_exit, name=f"wait:{spec.phase}", daemon=True).start()

    def _capped_volume(self, path: str, host_dir: Path, cap: int, labels: dict[str, str]) -> Mount:
        volume = self.client.volumes.create(
            driver="local",
            driver_opts={
                "type": "tmpfs",
                "device": "tmpfs",
                # nosuid, nodev: a set-id or device file the entry makes is inert, on the host side too
                "o": f"size={cap},nr_inodes={MAX_FILES},uid={UID},gid={GID},mode=0750,nosuid,nodev",
            },
            labels={**labels, "haet.mount": path},
        )
        self._volumes.append(volume)
        self._capped[path] = (volume.name, host_dir, cap)
        return Mount(path, volume.name, type="volume")

    def _wait_exit(self) -> None:
        api = self._stream_clients[1]
        while True:
            try:
                self._exit_code = int(api.wait(self.container.id)["StatusCode"])
                break
            except docker.errors.NotFound:
                self._exit_code = self._exit_code if self._exit_code is not None else -9
                break
            except Exception:
                if self._stop_watch.wait(0.2):
                    break
        self._exited.set()

    # --- the clock's interface ---------------------------------------------------

    def wait(self, timeout: float) -> int | None:
        end = time.monotonic() + max(timeout, 0.0)
        while True:
            if self._exited.wait(max(min(end - time.monotonic(), 0.25), 0.0)):
                return self._exit_code
            self._watch_events()
            if time.monotonic() >= end:
                return None

    def _watch_events(self) -> None:
        note = events_over_cap(self.spec.events_file, self.runner.limits.events_limit)
        if note and note not in self.notes:
            self.notes.append(note)
            self.kill()

    def terminate(self) -> None:
        """SIGTERM to every process of the container: from its cgroup where this host shows it
        (a `setsid` child is reached too), else through the engine to docker-init's process group."""
        if self._signals_by_pid:
            procs.terminate(lambda: self._cgroup.processes() or [], spared=[self._init_pid])
        else:
            _ignore_gone(self.container.kill, signal="SIGTERM")

    def kill(self) -> None:
        _ignore_gone(self.container.kill, signal="SIGKILL")

    def sample(self) -> tuple[float | None, int | None]:
        # Each source stamps its own reading: the engine's stats call can take a second, and
        # dividing its CPU time by the caller's clock would report more cores than exist.
        usage = self._cgroup.read() if self._cgroup else None
        source = "cgroup"
        if usage is None:
            usage, source = self._engine_stats(), "engine"
        if usage is None:
            return None, None
        stamp, cpu_ns, memory = usage
        cpu = None
        prev = self._cpu_prev
        if prev is not None and prev[0] == source and stamp > prev[1]:
            cpu = round(max(cpu_ns - prev[2], 0) / 1e9 / (stamp - prev[1]) * 100, 1)
        self._cpu_prev = (source, stamp, cpu_ns)
        return (cpu if cpu is not None else 0.0), memory

    def _engine_stats(self) -> tuple[float, float, int] | None:
        try:
            try:
                stats = self.client.api.stats(self.container.id, stream=False, one_shot=True)
            except TypeError:  # docker-py < 6 (Debian's python3-docker): the slower two-sample call
                stats = self.client.api.stats(self.container.id, stream=False)
            cpu_ns = float(stats["cpu_stats"]["cpu_usage"]["total_usage"])
            mem = stats.get("memory_stats", {})
            detail = mem.get("stats", {})
            inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
            return _engine_time(stats["read"]), cpu_ns, max(int(mem.get("usage", 0)) - int(inactive), 0)
        except Exception:
            return None

    def finish(self) -> ExitInfo:
        """Stop what is left, copy out the capped directories, remove everything of the phase."""
        oom = False
        try:
            if not self._exited.is_set():
                self.kill()
                self._exited.wait(15)
            try:
                self.container.reload()
                state = self.container.attrs.get("State", {})
                oom = bool(state.get("OOMKilled"))
                if self._exit_code is None:
                    self._exit_code = state.get("ExitCode")
            except docker.errors.NotFound:
                pass
            self._pump.join(timeout=5)
            self._watch_events()  # a flood can hit the file-size limit between two checks
            times, unreadable = self._checkpoint_times()
            for path, (_, host_dir, cap) in self._capped.items():
                self.notes += copy_out(self._holder, path, host_dir, cap)
            for note in self.notes:
                self.sink.write(f"\n[harness] {note}\n".encode())
        finally:
            self._stop_watch.set()
            self._remove_all()
            self.sink.close()
            for c in getattr(self, "_stream_clients", []):
                try:
                    c.close()
                except Exception:
                    pass
        return ExitInfo(
            oom_killed=oom,
            stray_processes_killed=0,
            notes=list(self.notes),
            checkpoint_times=times,
            checkpoints_unreadable=unreadable,
        )

    def checkpoint_view(self) -> Path | None:
        """The checkpoint volume's host side, where the harness runs on the engine's host."""
        if C_CHECKPOINTS not in self._capped or self.runner.owner["haet.owner.container"]:
            return None
        try:
            mountpoint = Path(self.client.api.inspect_volume(self._capped[C_CHECKPOINTS][0])["Mountpoint"])
        except (docker.errors.APIError, KeyError):
            return None
        return mountpoint if mountpoint.is_dir() else None

    def _checkpoint_times(self) -> tuple[dict[str, float] | None, str | None]:
        """The checkpoint files' ctimes, read on the host side of their volume before the copy
        (which would reset them); None where the harness cannot see the engine's volumes."""
        view = self.checkpoint_view()
        return checkpoint_times(view) if view else (None, None)

    def _remove_all(self) -> None:
        for container in (self.container, self._holder):
            if container is not None:
                _ignore_gone(container.remove, force=True, v=True)
        for volume in self._volumes:
            for _ in range(20):
                try:
                    volume.remove(force=True)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    time.sleep(0.1)  # still in use by a container being removed


def _give_to_submission(path: Path) -> None:
    """Let uid 10001 write a host file: chown when root, else world-writable."""
    try:
        os.chown(path, UID, GID)
    except PermissionError:
        path.chmod(0o666)


def _engine_time(text: str) -> float:
    """The engine's RFC 3339 stamp ('2026-11-25T19:43:54.123456789Z'), in seconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    digits = re.match(r"\d*", fraction).group()
    stamp = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc).timestamp()
    return stamp + float(f"0.{digits or '0'}")
