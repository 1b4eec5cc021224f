"""The predict rule: the predict phase infers, it is not a second training budget.

Compute is granted through the training budget alone. An entry may keep its training images
beside its model, or learn from the held-out images themselves, so every second predict runs
can buy accuracy. Under the default options predict gets `default_predict_budget(budget)`
(harness/options.py), enough to infer. An organizer may grant more with --predict-budget; the
result then says so at the start, and again when predict really ran past the default; under
--strict-predict such a run fails. docs/security.md gives the numbers behind the rule.
"""

from __future__ import annotations

from harness.model import RunResult, Status
from harness.options import PREDICT_RULE, RunOptions

BUYS_ACCURACY = "predict-phase compute can buy accuracy"


def granted_warning(options: RunOptions) -> str | None:
    """A warning when --predict-budget grants more than the default for this training budget."""
    default = options.default_predict_budget_s
    if options.predict_budget_s <= default:
        return None
    return (
        f"the predict phase was granted {options.predict_budget_s - default:g}s over its default: "
        f"--predict-budget {options.predict_budget_s:g}s, default {default:g}s for a {options.budget_s:g}s "
        f"training budget ({PREDICT_RULE}); {BUYS_ACCURACY}"
    )


def apply(result: RunResult, options: RunOptions) -> None:
    """After predict: a predict phase longer than the default is a warning, or under
    --strict-predict the run's failure. Only a granted budget lets predict run that long; under
    the default, the clock stops it at the default itself (the SIGKILL's own lateness aside)."""
    default = options.default_predict_budget_s
    seconds = result.predict.seconds
    if options.predict_budget_s <= default or seconds <= default:
        return
    over = (
        f"the predict phase ran {seconds:.1f}s, over the default predict budget of {default:g}s for a "
        f"{options.budget_s:g}s training budget ({PREDICT_RULE}; --predict-budget granted "
        f"{options.predict_budget_s:g}s): {BUYS_ACCURACY}"
    )
    result.warnings.append(over)
    if options.strict_predict and result.status is not Status.FAILED:  # a failure already has its reason
        result.status, result.reason = Status.FAILED, f"--strict-predict: {over}"
        result.accuracy = result.correct = result.total = result.score = None
