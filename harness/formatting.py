"""How the harness shows values: numbers, sizes, intervals, times, and tables.

One module for the report, the leaderboard, the regression check and the console, so
that a percentage, a byte count or a 95% interval reads the same everywhere. Tables of
entry text are built on the one escaping module, harness.text: a Markdown cell goes
through `text.md` (unless it is marked `Md`, Markdown the caller built itself), a console
cell through `text.clean`; every cell is cut to CELL_CHARS characters. HTML is built by
harness.markup, on `text.html`.

Conventions: a missing value is shown as DASH; sizes are binary (KiB, MiB, GiB: a
"MB" would be ambiguous); times are UTC ISO-8601 to the second.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Any

from harness import text
from harness.model import MonitorSummary

CELL_CHARS = 2000  # any one escaped value in a table, at most
DASH = "—"  # a value that is missing


# --- numbers ------------------------------------------------------------------------------


def finite(x: Any) -> float | None:
    """A finite float from an int or float (not a bool), else None: for values read from a
    result.json, where any field may hold anything."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        x = float(x)
    except OverflowError:  # an int too large for a float
        return None
    return x if math.isfinite(x) else None


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """0.917 -> '91.70%'."""
    return DASH if x is None else f"{100 * x:.{digits}f}%"


def fmt_interval(low: float | None, high: float | None, digits: int = 2) -> str:
    """A proportion's interval in percent: '91.66–94.79%'."""
    return DASH if low is None or high is None else f"{100 * low:.{digits}f}–{100 * high:.{digits}f}%"


def fmt_s(x: float | None, digits: int = 1) -> str:
    """Seconds: '600.0 s'."""
    return DASH if x is None else f"{x:.{digits}f} s"


def fmt_num(x: float | None, fmt: str = "{:.1f}", unit: str = "") -> str:
    """A number with its unit: '412 W', '93%'."""
    if x is None:
        return DASH
    return fmt.format(x) + ("" if not unit else unit if unit == "%" else f" {unit}")


def fmt_bytes(n: float | None, missing: str = DASH) -> str:
    """A size in binary units: '512 B', '25.13 MiB', '2.40 GiB'."""
    if n is None:
        return missing
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def fmt_energy(j: float | None) -> str:
    """Energy in joules and watt-hours: '247,300 J (68.69 Wh)'."""
    return DASH if j is None else f"{j:,.0f} J ({j / 3600:.2f} Wh)"


def fmt_kj(j: float | None, missing: str = "n/a (no GPU)") -> str:
    """Energy in kilojoules, for tables of many runs: '41.00 kJ'."""
    return missing if j is None else f"{j / 1000:.2f} kJ"


SHORT_DIGEST = 12  # hex characters: enough to tell two archives or commits apart at a glance


def fmt_digest(digest: str | None) -> str:
    """An archive's sha256 or a commit id, shortened for a table: '3f2a9b1c0d4e'; DASH without one."""
    return DASH if not digest else digest[:SHORT_DIGEST]


# --- what a result says, computed once -------------------------------------------------------


def gpu_energy_j(monitor: MonitorSummary | None) -> float | None:
    """The energy of all monitored GPUs together (joules), or None when no GPU reported any."""
    gpus = getattr(monitor, "gpus", None)
    if not isinstance(gpus, list):
        return None
    values = [v for g in gpus if (v := finite(getattr(g, "energy_j", None))) is not None]
    return float(sum(values)) if values else None


def utc_now() -> str:
    """Now, as result.json, grading files and baselines stamp it: '2021-06-01T12:00:00+00:00'."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --- escaping cells ----------------------------------------------------------------------


class Md(str):
    """Markdown the caller built itself from escaped parts (a link, **bold**): written as is."""


def md(x: Any, limit: int | None = CELL_CHARS) -> str:
    """Any value for a Markdown paragraph or table cell: one clean line, Markdown's active
    characters escaped, no raw HTML (harness.text.md); an `Md` value as it is."""
    if isinstance(x, Md):
        return str(x)
    return text.md(x, limit)


# --- tables ------------------------------------------------------------------------------


def md_table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A Markdown table; every header and cell is escaped here (`md`), `right` columns are
    right-aligned. No trailing newline."""
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(md(c) for c in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(
    headers: Sequence[Any] | None, rows: Sequence[Sequence[Any]], right: Sequence[int] = (), rule: bool = True
) -> str:
    """A plain-text table for the console, columns padded to their widest cell; every cell
    cleaned (harness.text.clean). `headers` None: rows only; `rule`: a dashed line under the
    headers."""
    cells = [[text.clean(c, CELL_CHARS) for c in row] for row in rows]
    head = [text.clean(c, CELL_CHARS) for c in headers] if headers is not None else None
    columns = list(zip(*([head] if head is not None else []), *cells))
    widths = [max(len(x) for x in col) for col in columns]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    lines = []
    if head is not None:
        lines.append(line(head))
        if rule:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines + [line(row) for row in cells])
