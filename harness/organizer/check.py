"""`python -m harness check --baseline FILE`: the CI regression check.

Grades one submission (the bundled one by default) with the options recorded in
the baseline, on the same seeds, and compares:

* accuracy: a regression when the current pooled accuracy is significantly
  (one-sided two-proportion z-test, p < alpha) more than `accuracy_drop` below the
  baseline's pooled accuracy. The pooled counts are correct/total over all seeds
  (e.g. 5 x 1000 held-out images), so the test carries the binomial noise of the
  finite held-out sets on both sides; a drop smaller than the tolerance, or one
  the noise explains, passes. (The seeds are the same, so the images are the
  same as the baseline's; an unpaired test is conservative for paired data.)
* training throughput: training images per second from the submission's epoch
  events (epochs x train images / time of the last epoch event), mean over seeds;
  a regression when below baseline x (1 - `throughput_drop`). Timing noise is not
  binomial, so this is a plain tolerance; not measured when there are no events.
* every run scored: a crash or invalid predictions is a regression by itself.

Writes OUT/summary.md, OUT/junit.xml and OUT/check.json (atomically) and exits 1
on a regression, 0 otherwise. `--update-baseline` rewrites the baseline file
(atomically) from this run instead of comparing.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from harness import __version__
from harness.console import Progress
from harness.errors import UsageError
from harness.files import atomic_write_json, atomic_write_text
from harness.formatting import Md, md_table, utc_now
from harness.options import OPTIONS, RunOptions, add_arguments, detect_device
from harness.organizer import stats

EXIT_PASS, EXIT_REGRESSION = 0, 1
DEFAULT_TOLERANCES = {"accuracy_drop": 0.01, "alpha": 0.05, "throughput_drop": 0.25}
# The run options a baseline fixes (record keys); the rest (runner, image, GPU, cache) are this machine's.
CHECKED = (
    "data",
    "eval_data",
    "budget",
    "grace",
    "predict_budget",
    "strict_predict",
    "device",
    "train_per_class",
    "eval_per_class",
    "seed",
    "repeats",
)
CHECK_REPEATS = 3


@dataclass
class Verdict:
    name: str
    passed: bool
    baseline: str
    current: str
    rule: str
    detail: str = ""


def load_baseline(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"baseline {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != "haet-baseline":
        raise UsageError(f"{path} is not a harness baseline (kind: haet-baseline); create one with --update-baseline")
    return data


def run_options(args, baseline: dict | None) -> RunOptions:
    """The baseline's options, with what the command line says on top; a check grades the way its
    baseline did, so a different value is refused (the data source may move: same data elsewhere)."""
    recorded = {k: v for k, v in (baseline or {}).get("options", {}).items() if k in CHECKED}
    given = {o.key: getattr(args, o.field) for o in OPTIONS if o.key in CHECKED and getattr(args, o.field) is not None}
    for key, value in given.items():
        if key in recorded and key != "data" and value != recorded[key] and not args.update_baseline:
            raise UsageError(
                f"--{key.replace('_', '-')} {value!r} differs from the baseline's {recorded[key]!r}; "
                "a check must grade the way the baseline did (or pass --update-baseline)"
            )
    chosen = {"repeats": CHECK_REPEATS, "device": "auto", **recorded, **given}
    device = chosen.pop("device")
    options = RunOptions.from_record(
        chosen,
        runner=args.runner,
        image=args.image,
        gpu=args.gpu,
        monitor_interval_s=args.monitor_interval_s,
        cache_dir=args.cache_dir,
        build_network=args.build_network,
        build_timeout_s=args.build_timeout_s,
    )
    return dataclasses.replace(options, device=detect_device() if device == "auto" else device).validate()


def measure(grading_dir: Path) -> dict:
    from harness.organizer import leaderboard

    board = leaderboard.build(grading_dir)
    row = board.rows[0]
    per_seed = [x.accuracy or 0.0 for x in row.runs]
    throughput = [x.images_per_s for x in row.runs if x.images_per_s is not None]
    return {
        "accuracy": {
            "mean": statistics.fmean(per_seed),
            "per_seed": per_seed,
            "correct": sum(x.correct or 0 for x in row.runs),
            "total": sum(x.total or 0 for x in row.runs),
        },
        "throughput": {
            "images_per_s": statistics.fmean(throughput) if throughput else None,
            "per_seed": [x.images_per_s for x in row.runs],
        },
        "train_seconds": [x.train_s for x in row.runs],
        "statuses": [x.status for x in row.runs],
        "reasons": [x.reason for x in row.runs if x.reason],
        "seeds": board.seeds,
    }


def compare(baseline: dict, current: dict) -> list[Verdict]:
    tol = {**DEFAULT_TOLERANCES, **baseline.get("tolerances", {})}
    verdicts = []
    failed = [f"seed {s}: {st}" for s, st in zip(current["seeds"], current["statuses"]) if st != "scored"]
    verdicts.append(
        Verdict(
            "runs-scored",
            not failed,
            "every run scored",
            f"{len(current['statuses']) - len(failed)}/{len(current['statuses'])} scored",
            "every seed must score",
            "; ".join(failed + current["reasons"][:3]),
        )
    )
    b, c = baseline["accuracy"], current["accuracy"]
    p = stats.two_proportion_test(c["correct"], c["total"], b["correct"], b["total"], margin=tol["accuracy_drop"])
    verdicts.append(
        Verdict(
            "accuracy",
            p >= tol["alpha"],
            f"{b['mean']:.2%} ({b['correct']}/{b['total']})",
            f"{c['mean']:.2%} ({c['correct']}/{c['total']})",
            f"regression if significantly more than {tol['accuracy_drop']:.1%} below (one-sided two-proportion "
            f"z-test, alpha {tol['alpha']:g})",
            f"change {c['mean'] - b['mean']:+.2%}, p = {p:.3g}",
        )
    )
    bt, ct = baseline.get("throughput", {}).get("images_per_s"), current["throughput"]["images_per_s"]
    floor = None if bt is None else bt * (1 - tol["throughput_drop"])
    if bt is None or ct is None:
        verdicts.append(
            Verdict(
                "throughput",
                True,
                "—" if bt is None else f"{bt:,.0f} images/s",
                "—" if ct is None else f"{ct:,.0f} images/s",
                "not measured",
                "no epoch events with times in the baseline or this run",
            )
        )
    else:
        verdicts.append(
            Verdict(
                "throughput",
                ct >= floor,
                f"{bt:,.0f} images/s",
                f"{ct:,.0f} images/s",
                f"regression if below {floor:,.0f} images/s (baseline - {tol['throughput_drop']:.0%})",
                f"change {ct / bt - 1:+.1%}",
            )
        )
    return verdicts


def summary_md(baseline_path: Path, baseline: dict, current: dict, verdicts: list[Verdict], grading: Path) -> str:

    ok = all(v.passed for v in verdicts)
    o = baseline.get("options", {})
    lines = [
        f"# Regression check: {'PASS' if ok else 'REGRESSION'}",
        "",
        f"Baseline `{baseline_path}` ({baseline.get('environment', {}).get('device', '?')}, "
        f"updated {baseline.get('updated_at', '?')}); submission `{baseline.get('submission', '?')}`; "
        f"data {o.get('data')}, budget {o.get('budget')} s, seeds {', '.join(map(str, current['seeds']))}.",
        "",
        md_table(
            ["Check", "Result", "Baseline", "Current", "Rule", "Detail"],
            [
                [v.name, "pass" if v.passed else Md("**FAIL**"), v.baseline, v.current, v.rule, v.detail]
                for v in verdicts
            ],
        ),
    ]
    lines += [
        "",
        "Per seed: "
        + ", ".join(
            f"seed {s}: {a:.2%}" + (f" ({t:,.0f} img/s)" if t else "")
            for s, a, t in zip(current["seeds"], current["accuracy"]["per_seed"], current["throughput"]["per_seed"])
        ),
        "",
        f"Runs: `{grading}`",
        "",
    ]
    return "\n".join(lines)


def junit_xml(verdicts: list[Verdict], seconds: float) -> str:
    failures = sum(1 for v in verdicts if not v.passed)
    cases = []
    for v in verdicts:
        body = ""
        if not v.passed:
            message = f"{v.name}: baseline {v.baseline}, current {v.current}; {v.rule}; {v.detail}"
            body = f'<failure message={quoteattr(message)} type="regression">{escape(message)}</failure>'
        cases.append(
            f'  <testcase classname="haet.regression" name={quoteattr(v.name)} time="0">{body}'
            f"<system-out>{escape(v.detail)}</system-out></testcase>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="haet-regression" tests="{len(verdicts)}" failures="{failures}" errors="0" '
        f'time="{seconds:.1f}">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )


def add_parser(commands) -> None:
    p = commands.add_parser("check", help="CI regression check of a submission against a committed baseline")
    p.add_argument("--baseline", type=Path, required=True, help="baseline JSON file")
    p.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run")
    p.add_argument("--submission", type=Path, help="submission directory (default: the baseline's, else submission)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("check-results"),
        help="where summary.md, junit.xml and the runs go (default: check-results)",
    )
    p.add_argument("--quiet", action="store_true")
    add_arguments(
        p.add_argument_group("this machine"),
        include=("runner", "image", "gpu", "cache_dir", "monitor_interval_s", "build_network", "build_timeout_s"),
    )
    add_arguments(
        p.add_argument_group(
            f"run options (default: as recorded in the baseline, else as for run; --repeats {CHECK_REPEATS})"
        ),
        include=tuple(o.field for o in OPTIONS if o.key in CHECKED),
        unset=True,
    )
    p.set_defaults(handler=cmd_check)


def cmd_check(args, progress: Progress) -> int:
    import time

    from harness.organizer import grade
    from harness.run import new_run_dir

    t0 = time.monotonic()
    baseline = load_baseline(args.baseline)
    if baseline is None and not args.update_baseline:
        raise UsageError(f"baseline {args.baseline} does not exist; create it with --update-baseline")
    # The runner is never the baseline's: running on the host takes an explicit --runner local.
    resolved = grade.resolve(run_options(args, baseline))
    submission = args.submission or Path((baseline or {}).get("submission", "submission"))
    out = Path(args.out)
    grading = new_run_dir(out / "runs", "check")
    plan = grade.make_plan(grading, resolved, [submission], None)
    from harness import data as data_mod

    data_mod.load_pool(resolved.data, resolved.cache_dir)
    grade.Grader(grading, plan, resolved, grade.parse_gpus(args.gpu), progress).run()
    from harness.organizer import leaderboard

    leaderboard.write_leaderboard(grading)
    current = measure(grading)

    if args.update_baseline:
        if any(s != "scored" for s in current["statuses"]):
            progress.say("not updating the baseline: some runs did not score: " + "; ".join(current["reasons"]))
            return EXIT_REGRESSION
        record = {
            "kind": "haet-baseline",
            "schema_version": 1,
            "description": (baseline or {}).get("description", f"regression baseline for {submission}"),
            "submission": str(submission),
            "options": {k: v for k, v in resolved.record().items() if k in CHECKED},
            "accuracy": current["accuracy"],
            "throughput": current["throughput"],
            "train_seconds": current["train_seconds"],
            "tolerances": {**DEFAULT_TOLERANCES, **(baseline or {}).get("tolerances", {})},
            "environment": _environment(grading, resolved),
            "updated_at": utc_now(),
        }
        atomic_write_json(args.baseline, record)
        progress.say(
            f"baseline {args.baseline} updated: accuracy {current['accuracy']['mean']:.2%}, "
            + (
                f"{current['throughput']['images_per_s']:,.0f} images/s"
                if current["throughput"]["images_per_s"]
                else "throughput not measured"
            )
        )
        return EXIT_PASS

    verdicts = compare(baseline, current)
    summary = summary_md(args.baseline, baseline, current, verdicts, grading)
    atomic_write_text(out / "summary.md", summary)
    atomic_write_text(out / "junit.xml", junit_xml(verdicts, time.monotonic() - t0))
    atomic_write_json(
        out / "check.json",
        {
            "passed": all(v.passed for v in verdicts),
            "current": current,
            "verdicts": [v.__dict__ for v in verdicts],
            "grading": str(grading),
        },
    )
    print(summary)
    return EXIT_PASS if all(v.passed for v in verdicts) else EXIT_REGRESSION


def _environment(grading: Path, options: RunOptions) -> dict:
    env = {"device": options.device, "runner": options.runner, "harness": __version__}
    for result in sorted(grading.glob("*/seed-*/result.json")):
        try:
            e = json.loads(result.read_text()).get("environment", {})
        except ValueError:
            continue
        env.update({k: e.get(k) for k in ("hostname", "platform", "torch", "cuda", "gpus", "driver", "image")})
        break
    return env
