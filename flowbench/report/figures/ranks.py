"""The critical-difference diagram of Demšar (2006), "Statistical comparisons of classifiers over
multiple data sets", JMLR 7:1-30, section 3.2.4: an axis of mean ranks (1, the best, on the
left), each method hanging from its mean rank to its name -- the better half on the left, the
rest on the right -- a thick bar joining each group of methods whose mean ranks differ by less
than the Nemenyi critical difference, and that difference drawn as a bar above the axis.

The numbers are :func:`flowbench.report.ranking.from_models` of the run, exactly what the
report's "Ranks across datasets" section states.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from .. import ranking as R
from .. import tables as T
from ..rundata import RunData
from . import style

LINE = "0.15"
GROUP_COLOR = "#d6604d"


def run_ranking(run: RunData) -> R.Ranking:
    """The run's ranks across datasets (flows and reference baselines)."""
    models = T.model_summary(T.nll_summary(run.records), run.table("references"))
    return R.from_models(models)


def cd_diagram(ranking: R.Ranking) -> Figure | None:
    """The diagram of a ranking with a Friedman test (``None`` without one)."""
    test = ranking.friedman
    if test is None:
        return None
    names, ranks = list(test.mean_ranks.index), test.mean_ranks.to_numpy(float)
    k = len(names)
    left = math.ceil(k / 2)
    rows = max(left, k - left)
    n_groups = len(ranking.groups)
    step, group_step = 0.26, 0.09  # inches between name rows / between group bars
    top, axis_gap = 0.55, 0.12 + group_step * n_groups
    height = top + axis_gap + rows * step + 0.15
    fig = style.new_figure(6.4, height)
    ax = fig.add_subplot()
    # one data unit = one inch vertically, from the axis (y = 0) down; x in mean-rank units,
    # with room either side for the names
    margin = 0.42 * max(k - 1, 1)
    ax.set_xlim(1 - margin, k + margin)
    ax.set_ylim(-(axis_gap + rows * step + 0.15), top)
    ax.axis("off")

    ax.plot([1, k], [0, 0], color=LINE, lw=1.0)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, 0.06], color=LINE, lw=0.8)
        ax.text(tick, 0.09, str(tick), ha="center", va="bottom", fontsize=6.5)
    for half in range(1, 2 * k - 1):  # minor ticks at half ranks
        if half % 2:
            ax.plot([1 + half / 2] * 2, [0, 0.03], color=LINE, lw=0.6)
    cd_end = min(1 + ranking.cd, k + margin * 0.9)
    ax.plot([1, cd_end], [0.38, 0.38], color=LINE, lw=1.2)
    for x in (1, cd_end):
        ax.plot([x, x], [0.34, 0.42], color=LINE, lw=1.0)
    ax.text((1 + cd_end) / 2, 0.44, f"CD = {ranking.cd:.2f}", ha="center", va="bottom",
            fontsize=6.5)

    for i, (name, rank) in enumerate(zip(names, ranks, strict=True)):
        on_left = i < left
        row = i if on_left else k - 1 - i  # the outermost methods on the highest rows
        y = -(axis_gap + (row + 0.5) * step)
        end = 1 - margin * 0.08 if on_left else k + margin * 0.08
        ax.plot([rank, rank, end], [0, y, y], color=LINE, lw=0.8)
        ax.text(end + (-0.05 if on_left else 0.05) * margin, y,
                f"{name} ({rank:.2f})" if on_left else f"({rank:.2f}) {name}",
                ha="right" if on_left else "left", va="center", fontsize=6.5)
    for j, group in enumerate(ranking.groups):
        members = test.mean_ranks[list(group)]
        y = -(0.08 + group_step * j)
        ax.plot([members.min() - 0.03, members.max() + 0.03], [y, y], color=GROUP_COLOR,
                lw=2.6, solid_capstyle="round")
    verdict = "" if test.f_p < ranking.alpha else \
        f"; Friedman test not significant (p = {test.f_p:.2g}): bars for reference only"
    ax.set_title(f"mean rank over {test.n} datasets (lower is better); bars: no significant "
                 f"difference (Nemenyi, α = {ranking.alpha:g}){verdict}", fontsize=7)
    return fig


def critical_difference_figure(run: RunData) -> Figure | None:
    """The critical-difference diagram of a run with at least 2 datasets and 2 methods that
    every dataset of the test ranks."""
    if not run.records:
        return None
    return cd_diagram(run_ranking(run))


def critical_difference(run: RunData, out_dir: Path) -> list[Path]:
    """``critical_difference.png``: the run's critical-difference diagram."""
    return style.write_figure(lambda: critical_difference_figure(run),
                              Path(out_dir) / "critical_difference.png")
