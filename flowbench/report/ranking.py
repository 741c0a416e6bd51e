"""Comparing methods across datasets: ranks per dataset, the Friedman test, the Nemenyi critical
difference and pairwise win/tie/loss counts.

Following Demšar (2006), "Statistical comparisons of classifiers over multiple data sets", JMLR
7:1-30, section 3.2: on each of N datasets the k methods are ranked (1 = lowest mean test NLL,
ties share the average rank); the Friedman statistic

    chi²_F = 12N / (k(k+1)) * (sum_j R_j² - k(k+1)²/4)        (R_j: mean rank of method j)

is referred to chi² with k-1 degrees of freedom, and Iman and Davenport's (1980) less
conservative

    F_F = (N-1) chi²_F / (N(k-1) - chi²_F)

to the F distribution with k-1 and (k-1)(N-1) degrees of freedom. Two methods differ
significantly by Nemenyi's test when their mean ranks differ by at least the critical difference

    CD = q_alpha sqrt(k(k+1) / (6N)),   q_alpha = (studentized range quantile, k, inf) / sqrt(2).

Like Demšar's worked example, chi²_F uses no correction for ties.

A Friedman test needs every method ranked on every dataset. Where a method was not ranked on a
dataset (a seed failed or diverged, its mean is dominated by a few test points, or it did not
run there), :func:`complete_block` leaves out first each method ranked on fewer than half of the
datasets, then each dataset on which a remaining method is not ranked, and says which.

Everything here is a pure function of tables with datasets as rows and methods as columns
(NaN: not ranked there); :func:`from_models` builds them from the report's model summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .numbers import counted

#: significance level of the Nemenyi critical difference
ALPHA = 0.05

#: the tie rule of :func:`win_tie_loss`, as the report states it
TIE_RULE = ("tie: the two mean test NLLs differ by at most the larger of the two seed standard "
            "deviations (|Δ| <= max(std_a, std_b)); a reference baseline is one deterministic fit "
            "and a single seed has no spread, so either counts with spread 0")


def dataset_ranks(values: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method on each dataset (row): 1 = lowest value, tied values share the
    average of their ranks, NaN (not ranked there) stays NaN and takes no rank."""
    return values.rank(axis=1, method="average", ascending=True, na_option="keep")


@dataclass(frozen=True)
class Block:
    """The datasets x methods values a Friedman test can use: every method ranked on every
    dataset. ``methods_left_out`` / ``datasets_left_out`` map what was left out to the
    datasets / methods where a value was missing."""

    values: pd.DataFrame
    methods_left_out: dict[str, list[str]] = field(default_factory=dict)
    datasets_left_out: dict[str, list[str]] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.values.shape[1]

    @property
    def n(self) -> int:
        return self.values.shape[0]


def complete_block(values: pd.DataFrame) -> Block:
    """The largest part of ``values`` (datasets x methods, NaN = not ranked) with no NaN, by a
    fixed rule: leave out each method ranked on fewer than half of the datasets, then each
    dataset on which a remaining method is not ranked."""
    ranked = values.notna()
    half = values.shape[0] / 2
    sparse = [m for m in values.columns if ranked[m].sum() < half]
    methods_out = {m: [d for d in values.index if not ranked.loc[d, m]] for m in sparse}
    kept = values.drop(columns=sparse)
    gaps = kept.isna()
    datasets_out = {d: [m for m in kept.columns if gaps.loc[d, m]] for d in kept.index
                    if gaps.loc[d].any()}
    return Block(kept.drop(index=list(datasets_out)), methods_out, datasets_out)


@dataclass(frozen=True)
class Friedman:
    """The Friedman test on N datasets x k methods (Demšar 2006, section 3.2.2)."""

    mean_ranks: pd.Series     # by method, best (lowest) first
    n: int                    # datasets
    chi2: float               # chi²_F, k-1 degrees of freedom
    chi2_p: float
    f: float                  # Iman-Davenport F_F, (k-1, (k-1)(N-1)) degrees of freedom
    f_p: float

    @property
    def k(self) -> int:
        return len(self.mean_ranks)

    @property
    def f_df(self) -> tuple[int, int]:
        return self.k - 1, (self.k - 1) * (self.n - 1)


def friedman(ranks: pd.DataFrame) -> Friedman:
    """The Friedman chi²_F and Iman-Davenport F_F with their p-values, from per-dataset ranks
    (datasets x methods, no NaN: see :func:`complete_block`)."""
    n, k = ranks.shape
    if n < 2 or k < 2:
        raise ValueError(f"the Friedman test needs at least 2 datasets and 2 methods, got {n} "
                         f"dataset(s) and {k} method(s)")
    if ranks.isna().any().any():
        missing = [f"{d}/{m}" for d in ranks.index for m in ranks.columns
                   if pd.isna(ranks.loc[d, m])]
        raise ValueError(f"every method needs a rank on every dataset; missing: "
                         f"{', '.join(missing)}")
    return friedman_from_mean_ranks(ranks.mean(axis=0), n)


def friedman_from_mean_ranks(mean_ranks: pd.Series, n: int) -> Friedman:
    """The Friedman test from the k methods' mean ranks over ``n`` datasets (what a paper
    reports, e.g. Demšar's Table 6)."""
    k = len(mean_ranks)
    if n < 2 or k < 2:
        raise ValueError(f"the Friedman test needs at least 2 datasets and 2 methods, got {n} "
                         f"dataset(s) and {k} method(s)")
    mean = mean_ranks.astype(float)
    chi2 = 12 * n / (k * (k + 1)) * (float((mean ** 2).sum()) - k * (k + 1) ** 2 / 4)
    chi2 = max(chi2, 0.0)  # rounding can leave -1e-15 when every mean rank is (k+1)/2
    denominator = n * (k - 1) - chi2
    # every dataset ranking the methods the same way: chi²_F reaches N(k-1), F_F is infinite
    f = (n - 1) * chi2 / denominator if denominator > 1e-9 else math.inf
    df1, df2 = k - 1, (k - 1) * (n - 1)
    return Friedman(
        mean_ranks=mean.sort_values(kind="stable"), n=n, chi2=chi2,
        chi2_p=float(stats.chi2.sf(chi2, df1)), f=f,
        f_p=0.0 if math.isinf(f) else float(stats.f.sf(f, df1, df2)))


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """q_alpha of the Nemenyi test for k methods: the studentized range quantile (infinite
    degrees of freedom) over sqrt(2); 2.569 for k = 4 at alpha = 0.05 (Demšar's Table 5a)."""
    if k < 2:
        raise ValueError(f"the Nemenyi test compares at least 2 methods, got k = {k}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """CD = q_alpha sqrt(k(k+1) / (6N)): mean ranks at least this far apart differ
    significantly (Nemenyi, all pairs)."""
    if n < 1:
        raise ValueError(f"the critical difference needs at least 1 dataset, got N = {n}")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))


def cd_groups(mean_ranks: pd.Series, cd: float) -> list[tuple[str, ...]]:
    """The bars of a critical-difference diagram: maximal runs of methods, in mean-rank order,
    whose mean ranks all lie within less than ``cd`` of each other (no pair in a run differs
    significantly); runs of one method are not groups."""
    ordered = mean_ranks.sort_values(kind="stable")
    names, values = list(ordered.index), ordered.to_numpy(float)
    groups: list[tuple[str, ...]] = []
    last_end = -1
    for start in range(len(names)):
        end = start
        while end + 1 < len(names) and values[end + 1] - values[start] < cd:
            end += 1
        if end > start and end > last_end:  # not inside the previous, longer run
            groups.append(tuple(names[start:end + 1]))
            last_end = end
    return groups


def is_tie(mean_a: float, std_a: float, mean_b: float, std_b: float) -> bool:
    """Whether two methods' mean NLLs are within seed spread: |mean_a - mean_b| <=
    max(std_a, std_b), a missing (NaN) spread counting as 0 (see :data:`TIE_RULE`)."""
    spread = max(0.0 if np.isnan(std_a) else std_a, 0.0 if np.isnan(std_b) else std_b)
    return abs(mean_a - mean_b) <= spread


def win_tie_loss(means: pd.DataFrame, stds: pd.DataFrame) -> pd.DataFrame:
    """Every ordered pair of methods (columns of ``means``, datasets as rows, NaN = not ranked)
    over the datasets where both are ranked: ``wins`` (the method's mean NLL is lower and not a
    tie), ``ties`` (:func:`is_tie`), ``losses``, and ``datasets`` compared. Long form: one row
    per (method, versus)."""
    stds = stds.reindex(index=means.index, columns=means.columns)
    rows = []
    for a in means.columns:
        for b in means.columns:
            if a == b:
                continue
            both = means[a].notna() & means[b].notna()
            wins = ties = losses = 0
            for dataset in means.index[both]:
                mean_a, mean_b = float(means.loc[dataset, a]), float(means.loc[dataset, b])
                if is_tie(mean_a, float(stds.loc[dataset, a]), mean_b,
                          float(stds.loc[dataset, b])):
                    ties += 1
                elif mean_a < mean_b:
                    wins += 1
                else:
                    losses += 1
            rows.append({"method": a, "versus": b, "wins": wins, "ties": ties,
                         "losses": losses, "datasets": int(both.sum())})
    return pd.DataFrame(rows, columns=["method", "versus", "wins", "ties", "losses", "datasets"])


# --- from the report's model summary --------------------------------------------------------------

@dataclass(frozen=True)
class Ranking:
    """Everything the report shows about ranks across datasets: the methods, why some values
    are missing, the complete block, the test, the critical difference and its groups, and the
    win/tie/loss counts. ``friedman`` is ``None`` (and ``absent`` says why) when the block has
    fewer than 2 datasets or 2 methods."""

    methods: list[str]
    means: pd.DataFrame
    stds: pd.DataFrame
    why_missing: dict[tuple[str, str], str]   # (dataset, method) -> reason it is not ranked
    block: Block
    ranks: pd.DataFrame                       # the block's per-dataset ranks
    friedman: Friedman | None
    q: float = math.nan
    cd: float = math.nan
    groups: list[tuple[str, ...]] = field(default_factory=list)
    wtl: pd.DataFrame = field(default_factory=pd.DataFrame)
    absent: str = ""
    alpha: float = ALPHA


def _why(row: pd.Series) -> str:
    if row["tail_flagged"] > 0:
        return "†"
    if row["ok"] < row["seeds"]:
        return "a seed did not finish ok"
    return "no finite test NLL"


def from_models(models: pd.DataFrame, alpha: float = ALPHA) -> Ranking:
    """The :class:`Ranking` of a model summary (``tables.model_summary``): methods are its flow/
    base combinations and reference baselines (not the oracle); a value counts where the
    summary ranked it (every seed ok, none flagged †, a finite mean)."""
    competing = models[models["kind"] != "oracle"]
    datasets = list(dict.fromkeys(competing["dataset"]))
    methods = list(dict.fromkeys(competing["model"]))
    ranked = competing.dropna(subset=["rank"])
    means = ranked.pivot_table(index="dataset", columns="model", values="test_nll_mean",
                               sort=False).reindex(index=datasets, columns=methods)
    stds = competing.pivot_table(index="dataset", columns="model", values="test_nll_std",
                                 sort=False, dropna=False).reindex(index=datasets,
                                                                   columns=methods)
    present = competing.set_index(["dataset", "model"])
    why = {}
    for dataset in datasets:
        for method in methods:
            if pd.notna(means.loc[dataset, method]):
                continue
            why[(dataset, method)] = _why(present.loc[(dataset, method)]) \
                if (dataset, method) in present.index else "did not run there"
    block = complete_block(means)
    ranks = dataset_ranks(block.values)
    wtl = win_tie_loss(means, stds) if len(datasets) >= 2 and len(methods) >= 2 \
        else pd.DataFrame()
    common = {"methods": methods, "means": means, "stds": stds, "why_missing": why,
              "block": block, "ranks": ranks, "wtl": wtl, "alpha": alpha}
    if len(datasets) < 2 or len(methods) < 2:
        return Ranking(**common, friedman=None, absent=(
            f"this run has {counted(len(datasets), 'dataset')} and "
            f"{counted(len(methods), 'method')}; ranks across datasets need at least 2 of each"))
    if block.n < 2 or block.k < 2:
        return Ranking(**common, friedman=None, absent=(
            f"{counted(block.n, 'dataset')} and {counted(block.k, 'method')} remain with every "
            "method ranked on every dataset; the Friedman test needs at least 2 of each"))
    test = friedman(ranks)
    q = nemenyi_q(test.k, alpha)
    cd = critical_difference(test.k, test.n, alpha)
    return Ranking(**common, friedman=test, q=q, cd=cd, groups=cd_groups(test.mean_ranks, cd))
