"""An entry's own Dockerfile, built before the clock starts, and therefore bounded.

No network unless the organizer allows it, a time limit (the connection is cut, which makes the
engine cancel the build and remove its containers), the phase's memory limit, never the layer
cache (a cached layer may come from any earlier build, a networked one included), and a capped
log in the run directory. The tag carries the entry's digest and the network setting, so an
image is reused only for the same files built the same way.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import docker.errors

import docker
from harness import text
from harness.contract import submission_digest
from harness.files import atomic_write_text
from harness.logs import LogSink
from harness.model import BuildInfo

BUILD_LOG_LIMIT = 16 * 2**20


def entry_tag(directory: Path, network: bool) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", directory.name.lower()) or "entry"
    return f"haet-entry-{name}:{submission_digest(directory)[:12]}" + ("-net" if network else "")


def build_entry_image(
    client: docker.DockerClient,
    base_url: str,
    directory: Path,
    run_dir: Path,
    *,
    network: bool,
    timeout_s: float,
    memory: int,
    labels: dict[str, str],
) -> BuildInfo:
    """Reuse the entry's image when these files were built this way before; else build it."""
    tag = entry_tag(directory, network)
    log = run_dir / "build.log"
    try:
        image = client.images.get(tag)
        atomic_write_text(log, f"reused {tag}: built earlier from the same files\n")
        return BuildInfo("reused", 0.0, network, tag, image.id, log.name)
    except docker.errors.ImageNotFound:
        pass
    api = _BuildClient(base_url=base_url, timeout=None)
    sink = LogSink(log, BUILD_LOG_LIMIT)
    timer = threading.Timer(timeout_s, api.cut)
    t0 = time.monotonic()
    outcome, detail = "built", ""
    timer.start()
    try:
        for chunk in api.build(
            path=str(directory),
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            nocache=True,
            network_mode="default" if network else "none",
            container_limits={"memory": memory, "memswap": memory},
            labels=labels,
        ):
            if isinstance(chunk, dict) and "error" in chunk:
                outcome, detail = "failed", text.clean(chunk["error"], limit=300)
            sink.write(
                str(chunk.get("stream", chunk.get("error", "")) if isinstance(chunk, dict) else chunk).encode(
                    "utf-8", "replace"
                )
            )
    except Exception as exc:  # the cut connection, or the engine refusing the build
        outcome, detail = "failed", text.clean(exc, limit=300)
    finally:
        timer.cancel()
        api.close()
    seconds = round(time.monotonic() - t0, 3)
    if api.was_cut:
        outcome, detail = "timed_out", f"the build ran past its {timeout_s:g}s limit and was cancelled"
    image_id = None
    if outcome == "built":
        try:
            image_id = client.images.get(tag).id
        except docker.errors.ImageNotFound:
            outcome, detail = "failed", "the engine reported no error but made no image"
    sink.write(
        f"\n[harness] build {outcome} in {seconds:g}s (network {'on' if network else 'off'})"
        f"{': ' + detail if detail else ''}\n".encode()
    )
    sink.close()
    return BuildInfo(outcome, seconds, network, tag, image_id, log.name, detail)


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
