"""The checklist `validate` prints and writes: each check's id, title, status, detail and fix."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

CONTRACT_DOC = "docs/submission-contract.md"  # where a fix points for the rules
PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class Check:
    id: str
    title: str
    status: str
    detail: str = ""
    fix: str = ""


@dataclass
class Validation:
    submission: str
    name: str | None
    ok: bool = True
    checks: list[Check] = field(default_factory=list)
    smoke_run_dir: str | None = None

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        if check.status == FAIL:
            self.ok = False
        return check

    def to_dict(self) -> dict:
        return asdict(self)


MARKS = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", SKIP: "SKIP"}


def checklist_text(result: Validation) -> str:
    lines = [f"validate {result.submission}" + (f" ({result.name})" if result.name else "")]
    for c in result.checks:
        lines.append(f"  [{MARKS[c.status]}] {c.title}" + (f": {c.detail}" if c.detail else ""))
        if c.fix and c.status in (FAIL, WARN, SKIP):
            lines.append(f"         fix: {c.fix}")
    failed = [c for c in result.checks if c.status == FAIL]
    lines.append(
        "result: "
        + ("ready to grade" if result.ok else f"{len(failed)} check(s) failed: " + ", ".join(c.id for c in failed))
    )
    return "\n".join(lines)


def to_json(result: Validation) -> str:
    return json.dumps(result.to_dict(), indent=2)
