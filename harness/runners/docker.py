"""The Docker runner: each phase of a submission in its own locked-down container.

Talks to the engine through the Docker SDK for Python (the engine's API), never the CLI.

Isolation of a phase container (docs/security.md):
  - no network (network_mode none), read-only root filesystem, tmpfs /tmp;
  - uid 10001, every capability dropped, no-new-privileges, the engine's seccomp profile;
  - memory limit with swap equal to it, CPU quota, shm size, pids limit, file-size limit;
  - mounts: the submission read-only at /submission, the phase's data read-only at /data,
    checkpoints at /checkpoints (writable in train, read-only in predict), /output in predict
    only, and the events file at /haet/events.jsonl. Nothing else of the host; never labels.

Writable places are capped so a submission cannot fill the host's disk:
  - /checkpoints (train) and /output (predict) are size-limited tmpfs volumes, kept alive
    across the phase by a small "holder" container and copied out to the run directory when
    the phase ends; writing past the cap fails with ENOSPC inside the container;
  - the events file is a single bind-mounted file, stopped at `events_limit` by a watchdog
    (and at the file-size ulimit by the kernel);
  - the logs go through the json-file driver with rotation; the harness keeps `log_limit_bytes`.

The clock starts when the container has started. SIGTERM and SIGKILL go through the engine
to PID 1, which is docker-init (tini) with TINI_KILL_PROCESS_GROUP=1, so the submission's
whole process group receives SIGTERM; SIGKILL stops the container and with it every process.

Cleanup: every container and volume carries the labels `haet.harness=1`, `haet.run`,
`haet.phase` and the owner (host, pid, process start time, container). A runner removes, on
start, the leftovers of harness processes that no longer exist; `finish()` removes a phase's
own containers and volumes.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import docker
import docker.errors
import psutil
from docker.types import DeviceRequest, Mount, Ulimit

from harness import text
from harness.clock import Deadline
from harness.contract import phase_environment, submission_digest
from harness.files import atomic_write_text, change_times
from harness.model import BuildInfo
from harness.logs import LogSink
from harness.runners.base import ExitInfo, PhaseSpec, RunnerError

LABEL = "haet.harness"
DEFAULT_IMAGE = "haet-runtime:cuda"  # `docker build -t haet-runtime:cuda .` (the root Dockerfile)
USER = "10001:10001"
UID = GID = 10001

C_SUBMISSION = "/submission"
C_DATA = "/data"
C_CHECKPOINTS = "/checkpoints"
C_OUTPUT = "/output"
C_EVENTS = "/haet/events.jsonl"

BUILD_LOG_LIMIT = 16 * 2**20
MAX_FILES = 10_000  # files and folders in a capped volume (tmpfs nr_inodes); copy-out stops there too
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)




def parse_size(value: int | str) -> int:
    """`12g`, `256m`, `2GiB` or a number of bytes -> bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise RunnerError(f"not a size: {value!r} (use e.g. 512m, 12g or a number of bytes)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def _owner_start_time() -> str:
    try:
        return f"{psutil.Process().create_time():.2f}"
    except psutil.Error:
        return "0"


def _own_container_id() -> str:
    """The id of the container the harness runs in, '' on a plain host.

    Found from the engine's per-container files (/etc/hostname, /etc/hosts) in mountinfo;
    /.dockerenv alone is not trusted (VM images built from container images keep it)."""
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            found = re.search(r"/containers/([0-9a-f]{64})/", line)
            if found:
                return found.group(1)
    except OSError:
        pass
    return ""


class _Safe(Iterator[bytes]):
    """A stream of chunks that ends quietly when the engine closes or breaks it."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)

    def __iter__(self) -> "_Safe":
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._it)
        except StopIteration:
            raise
        except Exception:
            raise StopIteration from None


class _ChunkReader(io.RawIOBase):
    """A file-like view of a chunk iterator, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


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

    def __init__(self, runner: "DockerRunner", spec: PhaseSpec):
        self.runner = runner
        self.spec = spec
        self.client = runner.client
        self.notes: list[str] = []
        self._holder = None
        self._volumes: list = []
        self._capped: dict[str, tuple[str, Path, int]] = {}  # container path -> (volume, host dir, cap)
        self._exit_code: Optional[int] = None
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
        r = self.runner
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
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
            mounts.append(self._capped_volume(C_CHECKPOINTS, spec.checkpoints_dir, r.checkpoint_limit, labels))
        else:
            mounts.append(Mount(C_CHECKPOINTS, r.host_path(spec.checkpoints_dir), type="bind", read_only=True))
        if spec.output_dir is not None:
            mounts.append(self._capped_volume(C_OUTPUT, spec.output_dir, r.output_limit, labels))
        if self._capped:
            # Keeps the tmpfs volumes mounted after the phase's container exits, until copied out.
            self._holder = self.client.containers.run(
                image, ["sleep", "infinity"], detach=True, init=True, user=USER, network_mode="none",
                read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"], mem_limit="64m",
                pids_limit=16, labels={**labels, "haet.role": "holder"},
                mounts=[Mount(path, vol, type="volume") for path, (vol, _, _) in self._capped.items()],
                log_config={"type": "none"}, entrypoint=[],
            )

        self.deadline = Deadline.start(spec.budget_s, spec.grace_s)  # the container's start-up is the phase's
        env = {
            "HOME": "/tmp",
            "USER": "haet",
            "TMPDIR": "/tmp",
            "PYTHONUNBUFFERED": "1",
            "TINI_KILL_PROCESS_GROUP": "1",  # docker-init forwards SIGTERM to the whole process group
        }
        device_requests = None
        if spec.device == "cuda":
            # Exactly one GPU, by index or UUID; inside the container it is device 0.
            device_requests = [DeviceRequest(device_ids=[str(spec.gpu or "0")], capabilities=[["gpu"]])]
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
        fsize = max(r.checkpoint_limit, r.output_limit, r.events_limit)
        self.container = self.client.containers.create(
            image,
            spec.command,
            entrypoint=[],
            working_dir=C_SUBMISSION,
            user=USER,
            environment=env,
            labels={**labels, "haet.role": "phase"},
            init=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={r.tmp_size},mode=1777"},
            mounts=mounts,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=r.memory,
            memswap_limit=r.memory,  # swap equal to memory: no swap
            nano_cpus=int(r.cpus * 1e9),
            shm_size=r.shm_size,
            pids_limit=r.pids_limit,
            ulimits=[Ulimit(name="fsize", soft=fsize, hard=fsize), Ulimit(name="core", soft=0, hard=0)],
            device_requests=device_requests,
            log_config={"type": "json-file", "config": {"max-size": "16m", "max-file": "2"}},
            stdin_open=False,
            tty=False,
        )
        self.sink = LogSink(spec.log_path, spec.log_limit_bytes)
        self.container.start()
        self._cgroup = _CgroupReader.find(self.container.id)
        self._init_pid = 0  # docker-init: it forwards signals itself, and must not get SIGTERM twice over
        if self._cgroup and not r.owner["haet.owner.container"]:  # host pids mean something only on the host
            try:
                self.container.reload()
                self._init_pid = int(self.container.attrs["State"]["Pid"])
            except (docker.errors.APIError, KeyError, TypeError, ValueError):
                pass
        self._signals_by_pid = self._init_pid in (self._cgroup.processes() or []) if self._cgroup else False
        self._cpu_prev: Optional[tuple[str, float, float]] = None  # source, stamp, CPU ns

        # Own connections without a read timeout: a phase may be quiet for many minutes.
        self._stream_clients = [docker.APIClient(base_url=r.base_url, timeout=None) for _ in range(2)]
        logs = self._stream_clients[0].logs(self.container.id, stream=True, follow=True, stdout=True, stderr=True)
        self._pump = self.sink.drain(_Safe(logs))
        threading.Thread(target=self._wait_exit, name=f"wait:{spec.phase}", daemon=True).start()

    def _capped_volume(self, path: str, host_dir: Path, cap: int, labels: dict[str, str]) -> Mount:
        volume = self.client.volumes.create(
            driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs",
                         "o": f"size={cap},nr_inodes={MAX_FILES},uid={UID},gid={GID},mode=0750"},
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

    def wait(self, timeout: float) -> Optional[int]:
        end = time.monotonic() + max(timeout, 0.0)
        while True:
            if self._exited.wait(max(min(end - time.monotonic(), 0.25), 0.0)):
                return self._exit_code
            self._watch_events()
            if time.monotonic() >= end:
                return None

    def _watch_events(self) -> None:
        try:
            size = self.spec.events_file.stat().st_size
        except OSError:
            return
        if size > self.runner.events_limit and not any("events file" in n for n in self.notes):
            self.notes.append(
                f"the events file passed its cap of {self.runner.events_limit} bytes; the phase was killed")
            self.kill()

    def terminate(self) -> None:
        """SIGTERM to every process of the container: from its cgroup where this host shows it
        (a `setsid` child is reached too), else through the engine to docker-init's process group."""
        if not self._signals_by_pid:
            _ignore_gone(self.container.kill, signal="SIGTERM")
            return
        signalled: set[int] = {self._init_pid}
        end = time.monotonic() + 0.05
        while time.monotonic() < end:  # again for children forked while it is sent
            fresh = [p for p in (self._cgroup.processes() or []) if p not in signalled]
            if not fresh:
                break
            for pid in fresh:
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
            signalled.update(fresh)

    def kill(self) -> None:
        _ignore_gone(self.container.kill, signal="SIGKILL")

    def sample(self) -> tuple[Optional[float], Optional[int]]:
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

    def _engine_stats(self) -> Optional[tuple[float, float, int]]:
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
            times = self._checkpoint_times()
            for path, (_, host_dir, cap) in self._capped.items():
                self._copy_out(path, host_dir, cap)
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
        return ExitInfo(oom_killed=oom, stray_processes_killed=0, notes=list(self.notes), checkpoint_times=times)

    def _checkpoint_times(self) -> Optional[dict[str, float]]:
        """The checkpoint files' ctimes, read on the host side of their volume before the copy
        (which would reset them); None where the harness cannot see the engine's volumes."""
        if C_CHECKPOINTS not in self._capped:
            return None
        try:
            mountpoint = self.client.api.inspect_volume(self._capped[C_CHECKPOINTS][0])["Mountpoint"]
        except (docker.errors.APIError, KeyError):
            return None
        if self.runner.owner["haet.owner.container"] or not os.path.isdir(mountpoint):
            return None
        return change_times(Path(mountpoint))

    def _copy_out(self, path: str, host_dir: Path, cap: int) -> None:
        """The holder's view of a capped tmpfs volume -> the run directory (links and devices refused)."""
        host_dir.mkdir(parents=True, exist_ok=True)
        try:
            chunks, _ = self._holder.get_archive(path)
        except docker.errors.APIError as exc:
            self.notes.append(f"could not copy {path} out of the container: {exc.explanation or exc}")
            return
        total, files, skipped, over = 0, 0, [], []
        staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=host_dir.parent))
        try:
            with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 2**20), mode="r|") as tar:
                for member in tar:
                    target = _safe_target(staging, member.name)
                    if target is None or not (member.isfile() or member.isdir()):
                        skipped.append(member.name)  # links, devices, fifos, odd names
                        continue
                    files += 1
                    # Apparent sizes count: a sparse file takes no room in the tmpfs, but its copy
                    # would take every byte on the host.
                    if files > MAX_FILES or (member.isfile() and total + member.size > cap):
                        over.append(member.name)
                        continue
                    if member.isdir():
                        target.mkdir(mode=0o755, parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    with open(target, "wb") as out:
                        shutil.copyfileobj(source, out, 2**20)
                    target.chmod(0o644)  # readable by uid 10001 in the next phase, never executable
                    total += member.size
            copied = staging / Path(path).name
            for top in copied.iterdir() if copied.is_dir() else []:
                shutil.move(str(top), host_dir / top.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if skipped:
            self.notes.append(f"not copied from {path} (only regular files count): "
                              + ", ".join(text.file_name(n) for n in skipped[:5]))
        if over:
            self.notes.append(
                f"not copied from {path}: {len(over)} file(s) past its cap of {cap} bytes (apparent size, so "
                f"sparse files count in full) or {MAX_FILES} files, e.g. "
                + ", ".join(text.file_name(n) for n in over[:3]))
        if total >= cap - 2 * 2**20:
            self.notes.append(
                f"{path} is full: it holds {total} bytes of its {cap}-byte cap; writes past the cap failed "
                "with 'No space left on device'")

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


def _safe_target(root: Path, name: str) -> Optional[Path]:
    """Where a tar member may land under root; None for absolute names or any '..'."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        return None
    return root.joinpath(*[p for p in parts if p != "."])


def _give_to_submission(path: Path) -> None:
    """Let uid 10001 write a host file: chown when root, else world-writable."""
    try:
        os.chown(path, UID, GID)
    except PermissionError:
        path.chmod(0o666)


class _CgroupReader:
    """CPU time (ns) and memory of a container from its cgroup files; None when not visible here."""

    def __init__(self, cpu_file: Path, cpu_v2: bool, mem_usage: Path, mem_stat: Path):
        self.cpu_file, self.cpu_v2, self.mem_usage, self.mem_stat = cpu_file, cpu_v2, mem_usage, mem_stat
        self.procs_file = mem_usage.parent / "cgroup.procs"

    def processes(self) -> Optional[list[int]]:
        """Host pids of every process in the container; None when this host does not show them."""
        try:
            return [int(line) for line in self.procs_file.read_text().split()]
        except (OSError, ValueError):
            return None

    @classmethod
    def find(cls, cid: str) -> Optional["_CgroupReader"]:
        root = Path("/sys/fs/cgroup")
        for base in (root / "system.slice" / f"docker-{cid}.scope", root / "docker" / cid):
            if (base / "cpu.stat").is_file() and (base / "memory.current").is_file():
                return cls(base / "cpu.stat", True, base / "memory.current", base / "memory.stat")
        for cpu_dir in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            for sub in (f"docker/{cid}", f"system.slice/docker-{cid}.scope"):
                cpu = root / cpu_dir / sub / "cpuacct.usage"
                mem = root / "memory" / sub
                if cpu.is_file() and (mem / "memory.usage_in_bytes").is_file():
                    return cls(cpu, False, mem / "memory.usage_in_bytes", mem / "memory.stat")
        return None

    def read(self) -> Optional[tuple[float, float, int]]:
        try:
            if self.cpu_v2:
                stat = dict(line.split() for line in self.cpu_file.read_text().splitlines())
                cpu_ns = float(stat["usage_usec"]) * 1000
            else:
                cpu_ns = float(self.cpu_file.read_text())
            stamp = time.monotonic()
            usage = int(self.mem_usage.read_text())
            stats = dict(line.split() for line in self.mem_stat.read_text().splitlines())
            inactive = int(stats.get("total_inactive_file", stats.get("inactive_file", 0)))
            return stamp, cpu_ns, max(usage - inactive, 0)
        except (OSError, ValueError, KeyError):
            return None


def _engine_time(text: str) -> float:
    """The engine's RFC 3339 stamp ('2026-11-25T19:43:54.123456789Z'), in seconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    digits = re.match(r"\d*", fraction).group()
    stamp = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc).timestamp()
    return stamp + float(f"0.{digits or '0'}")


class DockerRunner:
    """Options (all keyword, all optional; each also read from $HAET_DOCKER_<OPTION>, e.g.
    HAET_DOCKER_MEMORY=256m, when not given):

    image             runtime image for entries without a Dockerfile (default $HAET_IMAGE or haet-runtime:cuda)
    memory            memory limit, swap equal to it (default 12g, the competition host's RAM)
    cpus              CPU quota in cores (default: min(8, the engine's CPUs))
    shm_size          /dev/shm size (default 2g)
    pids_limit        processes and threads in the container (default 4096)
    tmp_size          tmpfs /tmp size (default 1g; counts against memory)
    checkpoint_limit  size of /checkpoints in train (default 2g; tmpfs, counts against memory)
    output_limit      size of /output in predict (default 64m)
    events_limit      size of the events file before the phase is killed (default 16m)
    build_network     let an entry's own Dockerfile use the network while it builds (default False)
    build_timeout_s   seconds an entry's build may take before it is cancelled (default 600)
    path_map          {path seen by the harness: path on the engine's host} for bind mounts when the
                      harness itself runs in a container (default from $HAET_DOCKER_PATH_MAP,
                      "inside=host[,inside=host]"); not needed when paths are mounted 1:1
    cleanup           remove leftovers of dead harness processes on start (default True)
    client            a docker.DockerClient (default docker.from_env())
    """

    name = "docker"
    isolated = True

    def __init__(
        self,
        image: Optional[str] = None,
        memory: int | str | None = None,
        cpus: Optional[float] = None,
        shm_size: int | str | None = None,
        pids_limit: Optional[int] = None,
        tmp_size: int | str | None = None,
        checkpoint_limit: int | str | None = None,
        output_limit: int | str | None = None,
        events_limit: int | str | None = None,
        build_network: Optional[bool] = None,
        build_timeout_s: Optional[float] = None,
        path_map: Optional[dict[str, str]] = None,
        cleanup: bool = True,
        client: Optional[docker.DockerClient] = None,
    ):
        def option(value, name: str, default):
            """An explicit option, else $HAET_DOCKER_<NAME>, else the default."""
            if value is not None:
                return value
            return os.environ.get(f"HAET_DOCKER_{name.upper()}") or default

        try:
            self.client = client or docker.from_env(timeout=120)
            self.client.ping()
            info = self.client.info()
        except Exception as exc:
            raise RunnerError(
                f"no Docker engine answers ({exc}); start one (bash docker/start-engine.sh) "
                "or use --runner local") from None
        self.base_url = self.client.api.base_url
        if self.base_url.startswith("http+docker://localhost"):
            self.base_url = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.image = image or os.environ.get("HAET_IMAGE") or DEFAULT_IMAGE
        self.memory = parse_size(option(memory, "memory", "12g"))
        engine_cpus = float(info.get("NCPU") or os.cpu_count() or 1)
        self.cpus = min(float(option(cpus, "cpus", 8.0)), engine_cpus)
        self.shm_size = parse_size(option(shm_size, "shm_size", "2g"))
        self.pids_limit = int(option(pids_limit, "pids_limit", 4096))
        self.tmp_size = parse_size(option(tmp_size, "tmp_size", "1g"))
        self.checkpoint_limit = parse_size(option(checkpoint_limit, "checkpoint_limit", "2g"))
        self.output_limit = parse_size(option(output_limit, "output_limit", "64m"))
        self.events_limit = parse_size(option(events_limit, "events_limit", "16m"))
        self.build_network = str(option(build_network, "build_network", False)).lower() in ("1", "true", "yes")
        self.build_timeout_s = float(option(build_timeout_s, "build_timeout_s", 600.0))
        self.path_map = path_map if path_map is not None else _parse_path_map(os.environ.get("HAET_DOCKER_PATH_MAP", ""))
        self.owner = {
            "haet.owner.host": socket.gethostname(),
            "haet.owner.pid": str(os.getpid()),
            "haet.owner.started": _owner_start_time(),
            "haet.owner.container": _own_container_id(),
        }
        self._built: dict[str, str] = {}
        try:
            self._image_id = self.client.images.get(self.image).short_id
        except docker.errors.ImageNotFound:
            raise RunnerError(
                f"the runtime image {self.image!r} is not on this engine: build it with "
                f"`docker build -t {self.image} .` (GPU host) or `make image-cpu` and pass "
                "--image haet-runtime:cpu (offline CPU)") from None
        if cleanup:
            self.removed_leftovers = self.remove_leftovers()

    # --- labels and leftovers ----------------------------------------------------

    def labels(self, phase: str, run: str) -> dict[str, str]:
        return {LABEL: "1", "haet.run": run, "haet.phase": phase, **self.owner}

    def _owner_alive(self, labels: dict[str, str]) -> bool:
        container = labels.get("haet.owner.container", "")
        if container:
            if container == self.owner["haet.owner.container"]:
                return labels.get("haet.owner.pid") == self.owner["haet.owner.pid"] or _pid_alive(labels)
            try:
                return self.client.containers.get(container).status == "running"
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError:
                return True
        if labels.get("haet.owner.host") != self.owner["haet.owner.host"] or self.owner["haet.owner.container"]:
            return True  # another machine's harness (or we cannot see its processes): leave it alone
        return _pid_alive(labels)

    def remove_leftovers(self) -> int:
        """Containers and volumes of harness processes that are gone (a crash, kill -9)."""
        removed = 0
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            if not self._owner_alive(container.labels):
                _ignore_gone(container.remove, force=True, v=True)
                removed += 1
        for volume in self.client.volumes.list(filters={"label": f"{LABEL}=1"}):
            if not self._owner_alive(volume.attrs.get("Labels") or {}):
                try:
                    volume.remove(force=True)
                except docker.errors.APIError:
                    pass
        return removed

    # --- images -----------------------------------------------------------------

    def prepare(self, submission_dir: Path, run_dir: Path) -> Optional[BuildInfo]:
        """Build the entry's own Dockerfile, if it brings one: before the clock, so bounded.

        No network unless the organizer allowed it (`build_network`), at most `build_timeout_s`
        seconds (the connection is cut, which makes the engine cancel the build), the memory
        limit of a phase, and its log in the run directory. The tag carries the files' digest
        and the network setting, so an image is reused only for the same files built the same way.
        """
        directory = Path(submission_dir)
        if not (directory / "Dockerfile").is_file():
            return None
        name = re.sub(r"[^a-z0-9-]", "-", directory.name.lower()) or "entry"
        tag = f"haet-entry-{name}:{submission_digest(directory)[:12]}" + ("-net" if self.build_network else "")
        log = run_dir / "build.log"
        try:
            image = self.client.images.get(tag)
            atomic_write_text(log, f"reused {tag}: built earlier from the same files\n")
            info = BuildInfo("reused", 0.0, self.build_network, tag, image.id, log.name)
        except docker.errors.ImageNotFound:
            info = self._build(directory, tag, log)
        if info.outcome in ("built", "reused"):
            self._built[str(directory.resolve())] = tag
        return info

    def _build(self, directory: Path, tag: str, log: Path) -> BuildInfo:
        api = _BuildClient(base_url=self.base_url, timeout=None)
        sink = LogSink(log, BUILD_LOG_LIMIT)
        timer = threading.Timer(self.build_timeout_s, api.cut)
        t0 = time.monotonic()
        outcome, detail = "built", ""
        timer.start()
        try:
            # nocache: a cached layer may come from any earlier build, one with the network included.
            for chunk in api.build(path=str(directory), tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                                   nocache=True,
                                   network_mode="default" if self.build_network else "none",
                                   container_limits={"memory": self.memory, "memswap": self.memory},
                                   labels={LABEL: "1", "haet.role": "entry"}):
                if isinstance(chunk, dict) and "error" in chunk:
                    outcome, detail = "failed", text.clean(chunk["error"], limit=300)
                sink.write(str(chunk.get("stream", chunk.get("error", "")) if isinstance(chunk, dict) else chunk)
                           .encode("utf-8", "replace"))
        except Exception as exc:  # the cut connection, or the engine refusing the build
            outcome, detail = "failed", text.clean(exc, limit=300)
        finally:
            timer.cancel()
            api.close()
        seconds = round(time.monotonic() - t0, 3)
        if api.was_cut:
            outcome, detail = "timed_out", f"the build ran past its {self.build_timeout_s:g}s limit and was cancelled"
        image_id = None
        if outcome == "built":
            try:
                image_id = self.client.images.get(tag).id
            except docker.errors.ImageNotFound:
                outcome, detail = "failed", "the engine reported no error but made no image"
        sink.write(f"\n[harness] build {outcome} in {seconds:g}s (network {'on' if self.build_network else 'off'})"
                   f"{': ' + detail if detail else ''}\n".encode())
        sink.close()
        return BuildInfo(outcome, seconds, self.build_network, tag, image_id, log.name, detail)

    def image_for(self, spec: PhaseSpec) -> str:
        """The entry's own image when `prepare` built one, else the runtime image."""
        return self._built.get(str(Path(spec.submission_dir).resolve()), self.image)

    def host_path(self, path: Path) -> str:
        """A path as the engine's host sees it (differs when the harness runs in a container)."""
        resolved = str(Path(path).resolve())
        for inside, host in sorted(self.path_map.items(), key=lambda kv: -len(kv[0])):
            if resolved == inside or resolved.startswith(inside.rstrip("/") + "/"):
                return host.rstrip("/") + resolved[len(inside.rstrip("/")):]
        return resolved

    # --- the Runner interface ------------------------------------------------------

    def start(self, spec: PhaseSpec) -> DockerHandle:
        return DockerHandle(self, spec)

    def describe(self) -> dict[str, Optional[str]]:
        tags = ", ".join(sorted(set(self._built.values())))
        return {"image": f"{self.image} ({self._image_id})" + (f"; entry image {tags}" if tags else "")}


class _BuildClient(docker.APIClient):
    """An API client whose streaming build can be cut from another thread.

    The engine cancels a build whose client goes away, and nothing but shutting the socket
    interrupts a read that is waiting on a silent `RUN sleep`."""

    response = None
    was_cut = False

    def _stream_helper(self, response, decode=False):
        self.response = response
        return super()._stream_helper(response, decode)

    def cut(self) -> None:
        self.was_cut = True
        try:
            self._get_raw_response_socket(self.response)._sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # no response yet, or already closed: closing is all that is left
            self.close()


def _pid_alive(labels: dict[str, str]) -> bool:
    try:
        process = psutil.Process(int(labels.get("haet.owner.pid", "0")))
        return f"{process.create_time():.2f}" == labels.get("haet.owner.started")
    except (psutil.Error, ValueError):
        return False


def _parse_path_map(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        inside, sep, host = item.partition("=")
        if not sep:
            raise RunnerError(f"HAET_DOCKER_PATH_MAP: {item!r} is not inside=host")
        pairs[inside] = host
    return pairs
