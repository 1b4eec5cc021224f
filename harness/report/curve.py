"""The report's curve section and the run's fingerprint, as plain rows (rendered by html.py and
markdown.py; nothing here escapes). The plot is harness.report.plots.plot_curve."""

from __future__ import annotations

from typing import Any

from harness.formatting import DASH, fmt_energy, fmt_interval, fmt_pct, fmt_s
from harness.model import Curve, RunResult

CURVE_HEADERS = [
    "seconds",
    "checkpoint",
    "accuracy (curve set)",
    "95% CI (Wilson)",
    "GPU board energy",
    "CPU package energy",
    "status",
]
CURVE_NUMERIC = (0, 2, 3, 4, 5)


def curve_line(curve: Curve) -> str:
    """One line for the console: points, failures, time and energy to the target."""
    failed = sum(p.status == "failed" for p in curve.points)
    energy = curve.gpu_energy_to_target_j
    reach = (
        f"time to {curve.target:.0%}: {fmt_s(curve.time_to_target_s)}"
        + (f", GPU board energy {fmt_energy(energy)}" if energy is not None else "")
        if curve.time_to_target_s is not None
        else f"{curve.target:.0%} not reached"
    )
    return f"{len(curve.points)} points ({failed} failed) in curve.csv; {reach}"


def curve_rows(curve: Curve) -> list[tuple[str, Any]]:
    reached = curve.time_to_target_s is not None
    return [
        (
            "curve set",
            f"{curve.per_class} images per class, apart from the held-out set and the training images; "
            "the official score is the final accuracy above",
        ),
        (
            "points",
            f"{len(curve.points)} of {curve.snapshots_seen} snapshot(s) copied, "
            f"{sum(p.status == 'failed' for p in curve.points)} failed; predicted in "
            f"{fmt_s(curve.predict_seconds)}, off the clock",
        ),
        (f"time to {curve.target:.0%}", fmt_s(curve.time_to_target_s) if reached else "not reached"),
        (
            f"GPU board energy to {curve.target:.0%}",
            fmt_energy(curve.gpu_energy_to_target_j) if reached else "not reached",
        ),
        (
            f"CPU package energy to {curve.target:.0%}",
            (fmt_energy(curve.cpu_energy_to_target_j) if curve.cpu_energy_to_target_j is not None else "not available")
            if reached
            else "not reached",
        ),
    ]


def point_rows(curve: Curve) -> list[list[str]]:
    return [
        [
            f"{p.seconds:.1f}",
            p.checkpoint,
            fmt_pct(p.accuracy, 1) if p.accuracy is not None else DASH,
            fmt_interval(p.ci95_low, p.ci95_high) if p.ci95_low is not None else DASH,
            fmt_energy(p.gpu_energy_j),
            fmt_energy(p.cpu_energy_j) if p.cpu_energy_j is not None else "not available",
            p.status + (f": {p.detail}" if p.detail else ""),
        ]
        for p in curve.points
    ]


def fingerprint_rows(r: RunResult) -> list[tuple[str, Any]]:
    env = r.environment
    rows = [
        ("CPU", f"{env.cpu_model or DASH} ({env.cpu_cores or DASH} logical cores)"),
        ("kernel", env.kernel or DASH),
        ("packages", f"{env.packages_file} (sha256 {env.packages_sha256})" if env.packages_file else DASH),
        ("image digest", env.image_digest or DASH),
        ("harness commit", env.git_commit or "not a git checkout"),
    ]
    for g in env.gpu_details:
        rows.append(
            (
                f"GPU {g.get('index')} at start",
                f"{g.get('name')}, power limit {g.get('power_limit_w')} W, "
                f"SM {g.get('sm_clock_mhz')} MHz, memory {g.get('memory_clock_mhz')} MHz, "
                f"{g.get('temperature_c')} °C",
            )
        )
    cpu = r.monitor.cpu_energy_j
    rows.append(
        (
            "CPU package energy (train)",
            fmt_energy(cpu) if cpu is not None else (r.monitor.cpu_energy_note or "not available"),
        )
    )
    return rows


def reproduction_lines(r: RunResult) -> list[str]:
    if r.reproduces is None:
        return []
    rep = r.reproduces
    head = f"This run reproduces {rep.path} (run {rep.run_id})"
    # Read back from a file, these may have any shape: only a dict and a list of names are shown.
    asked = rep.asked if isinstance(rep.asked, dict) else {}
    ran = {**(r.options if isinstance(r.options, dict) else {}), "submission": r.submission.path}
    overridden = [
        f"{key}: {_shown(asked.get(key))} -> {_shown(ran.get(key))} (set on the command line)"
        for key in map(str, rep.overridden if isinstance(rep.overridden, list) else [])
    ]
    if not rep.differences and not overridden:
        return [head + ": nothing differs in the recorded environment, entry or data."]
    return [head + "; what differs:"] + overridden + rep.differences


def _shown(value) -> str:
    return "not recorded" if value is None else str(value)
