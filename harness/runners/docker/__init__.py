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

The phase's clock (harness.clock.Deadline) starts just before the container is created, so its
start-up counts against the budget, the same for every entry. SIGTERM goes to every process in
the container's cgroup where this host shows it (else through the engine to docker-init's
process group); SIGKILL stops the container and with it every process.

An entry's own Dockerfile is built before the clock starts, bounded (harness.runners.docker.build).

Modules: this one (the runner: options, labels, leftovers, images), `handle` (one phase in one
container), `volumes` (capped writable places and their copy-out), `build`, `cgroup`.

Cleanup: every container and volume carries the labels `haet.harness=1`, `haet.run`,
`haet.phase` and the owner (host, pid, process start time, container). A runner removes, on
start, the leftovers of harness processes that no longer exist; `finish()` removes a phase's
own containers and volumes.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import docker.errors
import psutil

import docker
from harness.errors import RunnerError
from harness.model import BuildInfo
from harness.options import runtime_image
from harness.runners import procs
from harness.runners.base import PhaseSpec
from harness.runners.docker.build import build_entry_image
from harness.runners.docker.handle import DockerHandle
from harness.runners.limits import DOCKER_PREFIX as PREFIX
from harness.runners.limits import PhaseLimits, option

LABEL = "haet.harness"


def _own_container_id() -> str:
    """The id of the container the harness runs in, '' on a plain host (/.dockerenv alone is not
    trusted: VM images built from container images keep it)."""
    try:
        return container_id_in(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return ""


# Inside a container the engine binds its per-container files (/var/lib/docker/containers/<id>/...)
# onto exactly these paths. On the host the same files show up too, elsewhere: below an overlay's
# merged/ while the engine copies into or out of any container. Taken for the harness's own, such a
# line made a host harness label its phases with another run's container, and the next harness,
# finding that container gone, removed the live phases as leftovers.
ENGINE_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def container_id_in(mountinfo: str) -> str:
    """The container whose engine files are mounted at their own paths in this mountinfo, else ''."""
    for line in mountinfo.splitlines():
        fields = line.split()  # id, parent, dev, root, mount point, ...; mountinfo escapes spaces
        if len(fields) > 4 and fields[4] in ENGINE_FILES:
            found = re.search(r"/containers/([0-9a-f]{64})/", fields[3])
            if found:
                return found.group(1)
    return ""


class DockerRunner:
    """Options (all keyword, all optional; each also read from $HAET_DOCKER_<OPTION>, e.g.
    HAET_DOCKER_MEMORY=256m, when not given): the phase limits of harness.runners.limits.PhaseLimits
    (memory, cpus, pids_limit, tmp_size, shm_size, checkpoint_limit, output_limit, events_limit),
    where `cpus` is a CPU quota in cores and the tmpfs ones (/tmp, /checkpoints) count against
    memory; and

    image             runtime image for entries without a Dockerfile (default $HAET_IMAGE or haet-runtime:cuda)
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
        image: str | None = None,
        build_network: bool | None = None,
        build_timeout_s: float | None = None,
        path_map: dict[str, str] | None = None,
        cleanup: bool = True,
        client: docker.DockerClient | None = None,
        **limits,
    ):
        try:
            self.client = client or docker.from_env(timeout=120)
            self.client.ping()
            info = self.client.info()
        except Exception as exc:
            raise RunnerError(
                f"no Docker engine answers ({exc}); start one (bash docker/start-engine.sh) or use --runner local"
            ) from None
        self.base_url = self.client.api.base_url
        if self.base_url.startswith("http+docker://localhost"):
            self.base_url = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.image = image or runtime_image("cuda")
        self.limits = PhaseLimits.read(PREFIX, float(info.get("NCPU") or os.cpu_count() or 1), limits)
        self.build_network = str(option(PREFIX, build_network, "build_network", False)).lower() in ("1", "true", "yes")
        self.build_timeout_s = float(option(PREFIX, build_timeout_s, "build_timeout_s", 600.0))
        self.path_map = (
            path_map if path_map is not None else _parse_path_map(os.environ.get("HAET_DOCKER_PATH_MAP", ""))
        )
        self.owner = {
            "haet.owner.host": socket.gethostname(),
            "haet.owner.pid": str(os.getpid()),
            "haet.owner.start_ticks": str(procs.start_ticks(os.getpid())),
            "haet.owner.container": _own_container_id(),
        }
        self._built: dict[str, str] = {}
        try:
            image = self.client.images.get(self.image)
            self._image_id, self._image_digest = image.short_id, image.id
        except docker.errors.ImageNotFound:
            raise RunnerError(
                f"the runtime image {self.image!r} is not on this engine: build it with "
                f"`docker build -t {self.image} .` (GPU host) or `make image-cpu` and pass "
                "--image haet-runtime:cpu (offline CPU)"
            ) from None
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
        # ignore_removed: the SDK inspects each listed container, and another harness on this engine
        # may remove its own between the list and the inspect (NotFound, seen with parallel suites).
        listed = self.client.containers.list(all=True, filters={"label": f"{LABEL}=1"}, ignore_removed=True)
        for container in listed:
            if not self._owner_alive(container.labels):
                _remove_leftover(container)
                removed += 1
        for volume in self.client.volumes.list(filters={"label": f"{LABEL}=1"}):
            if not self._owner_alive(volume.attrs.get("Labels") or {}):
                try:
                    volume.remove(force=True)
                except docker.errors.APIError:
                    pass
        return removed

    # --- images -----------------------------------------------------------------

    def prepare(self, submission_dir: Path, run_dir: Path) -> BuildInfo | None:
        """Build the entry's own Dockerfile, if it brings one (harness.runners.docker.build)."""
        directory = Path(submission_dir)
        if not (directory / "Dockerfile").is_file():
            return None
        info = build_entry_image(
            self.client,
            self.base_url,
            directory,
            run_dir,
            network=self.build_network,
            timeout_s=self.build_timeout_s,
            memory=self.limits.memory,
            labels={LABEL: "1", "haet.role": "entry"},
        )
        if info.outcome in ("built", "reused"):
            self._built[str(directory.resolve())] = info.image
        return info

    def image_for(self, spec: PhaseSpec) -> str:
        """The entry's own image when `prepare` built one, else the runtime image."""
        return self._built.get(str(Path(spec.submission_dir).resolve()), self.image)

    def host_path(self, path: Path) -> str:
        """A path as the engine's host sees it (differs when the harness runs in a container)."""
        resolved = str(Path(path).resolve())
        for inside, host in sorted(self.path_map.items(), key=lambda kv: -len(kv[0])):
            if resolved == inside or resolved.startswith(inside.rstrip("/") + "/"):
                return host.rstrip("/") + resolved[len(inside.rstrip("/")) :]
        return resolved

    # --- the Runner interface ------------------------------------------------------

    def start(self, spec: PhaseSpec) -> DockerHandle:
        return DockerHandle(self, spec)

    def describe(self) -> dict[str, str | None]:
        tags = ", ".join(sorted(set(self._built.values())))
        return {
            "image": f"{self.image} ({self._image_id})" + (f"; entry image {tags}" if tags else ""),
            "image_digest": self._image_digest,
        }  # the runtime image's full id (an entry's own: build.image_id)


# Another harness starting on the same engine may be removing the same leftover: the engine then
# answers 409 ("removal ... already in progress") and the container is still there when the call
# returns. Seen in parallel suites, where the next check still listed it.
REMOVAL_WAIT_S = 60


def _remove_leftover(container) -> None:
    """Remove a dead harness's container; if another start is already removing it, wait until it is gone."""
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        try:
            container.wait(condition="removed", timeout=REMOVAL_WAIT_S)
        except (docker.errors.NotFound, OSError):  # requests' timeouts and connection errors are OSErrors
            pass  # gone before the wait began, or still going after a minute: the engine's business now


def _pid_alive(labels: dict[str, str]) -> bool:
    """Whether the harness that labelled a container still runs: its pid, started at the same tick.
    (A start time in seconds read as boot time + ticks moved by more than a second within an hour on
    a VM whose clock was adjusted, and the next harness removed a live phase's container.) A label
    without ticks, from an older harness, counts as live while its pid is: left alone, never removed."""
    try:
        pid = int(labels.get("haet.owner.pid", "0"))
    except ValueError:
        return False
    if pid <= 0:
        return False
    if "haet.owner.start_ticks" not in labels:
        return psutil.pid_exists(pid)
    ticks = procs.start_ticks(pid)
    return ticks is not None and str(ticks) == labels["haet.owner.start_ticks"]


def _parse_path_map(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        inside, sep, host = item.partition("=")
        if not sep:
            raise RunnerError(f"HAET_DOCKER_PATH_MAP: {item!r} is not inside=host")
        pairs[inside] = host
    return pairs
