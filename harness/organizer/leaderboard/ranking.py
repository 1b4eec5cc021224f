"""Ranks and tiers: the ranking rule of the leaderboard (stated for organizers in docs/organizers.md).

Rank: by the official score, the mean accuracy over the finished seeds with a failed seed counting
0 (or, with --rank-by, by the mean time or energy to the target). Equal scores share a rank, the
competition way: 1, 2, 2, 4.

Tiers (accuracy ranking only): whether two entries are told apart. Going down the ranking, each
entry is compared once, with the head of the current tier (tier 1's head is the leader). It joins
that tier unless it is *separable* from the head, and then it starts the next tier. An entry is
separable from the head when
  * it failed a seed the head scored: a failure is an outcome of the entry, not noise, and counted
    as 0 it would otherwise blow up the variance of the differences and make a failing entry look
    closer to the top, or
  * on the seeds both scored, the one-sided paired t-test (head better) rejects at ALPHA / m, where
    m is the number of ranked entries less one: the most comparisons this walk makes (Bonferroni).
It is not separable when fewer than 2 seeds were scored by both (nothing to test). Entries with the
same score share a rank and are judged together, so that they share a tier too: they stay in the
head's tier only if none of them is separable from it. Each pair is tested at most once, the
walk makes at most N - 1 tests, and tiers never interleave with the ranks, so they read
consistently: tier 1 is the leader and the entries down to the first one separable from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.organizer import stats

if TYPE_CHECKING:
    from harness.organizer.leaderboard.rows import Row

ALPHA = 0.05  # family-wise, over the comparisons of one board
DECIMALS = 9  # scores equal to this many decimals are equal (a mean of thousandths is exact far beyond it)

RANK_KEYS = {  # --rank-by: the competition's final accuracy, or DAWNBench-style time / energy to --target
    "accuracy": None,
    "time-to-target": "time_to_target_s",
    "energy-to-target": "energy_to_target_j",
}


def _round(x: float | None) -> float:
    return round(x or 0.0, DECIMALS)


def score_key(rank_by: str) -> Callable[[Row], tuple]:
    """What ranks an entry, best first: the chosen measure (an entry that did not reach the target on
    every seed after those that did), then the mean accuracy (an entry with no finished seed last).
    Entries with the same key share a rank."""
    attr = RANK_KEYS[rank_by]

    def key(r: Row) -> tuple:
        accuracy = (r.mean is None, -_round(r.mean))
        if attr is None:
            return accuracy
        value = r.mean_to_target(attr)
        return (value is None, _round(value), *accuracy)

    return key


def rank(rows: list[Row], rank_by: str = "accuracy") -> None:
    """Sort the rows best first (equal scores by id, for a stable page) and give each its rank."""
    key = score_key(rank_by)
    rows.sort(key=lambda r: (key(r), r.id))
    previous = None
    for i, row in enumerate(rows, start=1):
        k = key(row)
        row.rank = rows[i - 2].rank if i > 1 and k == previous else i
        previous = k


def bonferroni_level(rows: list[Row]) -> float:
    """The level of each test: ALPHA over the most comparisons the walk can make."""
    m = sum(1 for r in rows if r.mean is not None) - 1
    return ALPHA / max(1, m)


def compare(head: Row, row: Row, level: float) -> tuple[bool, float | None, str]:
    """(separable, one-sided p or None, why) for `row`, ranked below `head`."""
    theirs = {r.seed: r for r in row.runs}  # paired by seed: extra seeds (--until-resolved) differ per entry
    pairs = [(h, theirs[h.seed]) for h in head.runs if h.seed in theirs and h.finished and theirs[h.seed].finished]
    failed = [h.seed for h, r in pairs if h.scored and not r.scored]
    if failed:
        seeds = ", ".join(map(str, failed))
        return True, None, f"failed seed{'s' if len(failed) > 1 else ''} {seeds}, which {head.id} scored"
    scored = [(h.accuracy, r.accuracy) for h, r in pairs if h.scored and r.scored]
    if len(scored) < 2:
        return False, None, f"{len(scored)} seed{'' if len(scored) == 1 else 's'} scored by both: nothing to test"
    test = stats.paired_t_test([h for h, _ in scored], [r for _, r in scored])
    p = test.p_greater
    apart = p is not None and p < level
    return (
        apart,
        p,
        (
            f"paired t-test on {len(scored)} seeds, one-sided p = {p:.2g}, "
            f"{'below' if apart else 'not below'} {level:.3g}"
        ),
    )


def tiers(rows: list[Row]) -> float:
    """Walk the ranked rows (see the module's docstring) and set each scored row's tier, the entry it
    was compared with (`versus`), the p-value and the reason. Returns the level each test used."""
    level = bonferroni_level(rows)
    groups: list[list[Row]] = []  # the scored rows, entries of one rank together
    for row in rows:
        if row.mean is not None:
            if groups and groups[-1][0].rank == row.rank:
                groups[-1].append(row)
            else:
                groups.append([row])
    if not groups:
        return level
    head, tier = groups[0][0], 1
    for group in groups:
        if group[0] is not head:
            verdicts = [compare(head, row, level) for row in group]
            separable = [row.id for row, (apart, _, _) in zip(group, verdicts) if apart]
            for row, (apart, p, why) in zip(group, verdicts):
                row.versus, row.p, row.why, row.within_noise = head.id, p, why, not separable
                if separable and not apart:  # judged with its equals (module docstring)
                    row.why += f"; separable with its equal score: {', '.join(separable[:3])}"
            if separable:
                tier, head = tier + 1, group[0]
        for row in group:
            row.tier = tier
            if row is not head and group[0] is head:  # the head's equals: its tier, untested
                row.versus, row.p, row.why, row.within_noise = head.id, None, "same score", True
    return level
