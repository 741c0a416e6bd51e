"""Ranks across datasets on hand-made tables with known answers, and Demšar's (2006) worked
example: four C4.5 variants on 14 data sets (JMLR 7:1-30, Table 6 and section 3.2.4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from flowbench.report import ranking as R

# Demšar (2006), Table 6: AUC of C4.5 with and without m-tuning and cf-tuning on 14 UCI data
# sets (higher is better), as printed; checked against two independent public transcriptions
DEMSAR_METHODS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = pd.DataFrame([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.975, 0.975], [0.957, 0.978, 0.946, 0.970],
], index=["adult (sample)", "breast cancer", "breast cancer wisconsin", "cmc", "ionosphere",
          "iris", "liver disorders", "lung cancer", "lymphography", "mushroom", "primary tumor",
          "rheum", "voting", "wine"], columns=DEMSAR_METHODS)
# the mean ranks the paper prints, and its statistics from them
DEMSAR_MEAN_RANKS = pd.Series([3.143, 2.000, 2.893, 1.964], index=DEMSAR_METHODS)


def test_ranks_of_the_printed_table_average_ties() -> None:
    ranks = R.dataset_ranks(-DEMSAR_AUC)  # lower is better: rank the negated AUC
    assert ranks.loc["mushroom"].tolist() == [2.5, 2.5, 2.5, 2.5]   # all four tied
    assert ranks.loc["lung cancer"].tolist() == [2.5, 2.5, 4.0, 1.0]
    assert ranks.loc["voting"].tolist() == [4.0, 1.0, 2.5, 2.5]
    assert (ranks.sum(axis=1) == 10).all()  # 1 + 2 + 3 + 4 on every data set
    # rank sums by hand: 44, 28, 41, 27 over 14 data sets. The paper prints 2.893 and 1.964 for
    # the last two (sums 40.5 and 27.5): its ranks tie C4.5+cf and C4.5+m+cf once more than
    # the printed AUCs do, a half rank apart; C4.5 and C4.5+m agree exactly
    assert ranks.mean().to_numpy() == pytest.approx(np.array([44, 28, 41, 27]) / 14)
    assert ranks.mean()[["C4.5", "C4.5+m"]].round(3).tolist() == [3.143, 2.000]


def test_friedman_and_critical_difference_match_demsars_worked_example() -> None:
    test = R.friedman_from_mean_ranks(DEMSAR_MEAN_RANKS, 14)
    assert test.chi2 == pytest.approx(9.28, abs=0.005)
    assert test.f == pytest.approx(3.69, abs=0.005)
    assert test.f_df == (3, 39)
    # "the critical value of F(3, 39) for alpha = 0.05 is 2.85, so we reject the null-hypothesis"
    assert stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=0.005) and test.f_p < 0.05
    assert R.nemenyi_q(4) == pytest.approx(2.569, abs=5e-4)
    assert R.critical_difference(4, 14) == pytest.approx(1.25, abs=0.005)
    assert R.critical_difference(4, 14, alpha=0.10) == pytest.approx(1.12, abs=0.005)
    # at 0.05 even the best and the worst are within CD: one group of all four
    assert R.cd_groups(test.mean_ranks, R.critical_difference(4, 14)) == [
        ("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5")]
    # at 0.10 (the paper's Figure 1): C4.5 is worse than C4.5+m and C4.5+m+cf, and C4.5+cf
    # cannot be told apart from either side
    assert R.cd_groups(test.mean_ranks, R.critical_difference(4, 14, alpha=0.10)) == [
        ("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5")]


def test_friedman_from_the_printed_aucs() -> None:
    test = R.friedman(R.dataset_ranks(-DEMSAR_AUC))
    k, n, mean = 4, 14, np.array([44, 28, 41, 27]) / 14
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(mean ** 2) - k * (k + 1) ** 2 / 4)
    assert test.chi2 == pytest.approx(chi2) == pytest.approx(9.857, abs=5e-4)
    assert test.f == pytest.approx((n - 1) * chi2 / (n * (k - 1) - chi2))
    assert test.chi2_p == pytest.approx(stats.chi2.sf(chi2, 3))
    assert list(test.mean_ranks.index) == ["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]


def test_without_ties_chi2_is_scipys_friedman_statistic() -> None:
    values = pd.DataFrame([[1.0, 2.5, 3.1, 0.4], [2.2, 1.1, 3.3, 0.9], [0.5, 2.0, 1.5, 3.0],
                           [1.3, 0.2, 2.9, 2.4], [3.0, 2.1, 1.2, 0.3]], columns=list("abcd"))
    test = R.friedman(R.dataset_ranks(values))
    expected = stats.friedmanchisquare(*[values[c] for c in values.columns])
    assert test.chi2 == pytest.approx(expected.statistic)
    assert test.chi2_p == pytest.approx(expected.pvalue)


def test_identical_rankings_give_the_largest_chi2_and_an_infinite_f() -> None:
    values = pd.DataFrame([[1.0, 2.0, 3.0]] * 4, columns=list("abc"))
    test = R.friedman(R.dataset_ranks(values))
    assert test.chi2 == pytest.approx(4 * 2)  # N(k-1)
    assert math.isinf(test.f) and test.f_p == 0.0
    same = R.friedman(R.dataset_ranks(pd.DataFrame([[1.0, 1.0, 1.0]] * 4, columns=list("abc"))))
    assert same.chi2 == 0.0 and same.f == 0.0 and same.chi2_p == pytest.approx(1.0)


def test_friedman_refuses_too_little_or_incomplete_input() -> None:
    with pytest.raises(ValueError, match="at least 2 datasets and 2 methods, got 1 dataset"):
        R.friedman(pd.DataFrame([[1.0, 2.0]], columns=["a", "b"]))
    ranks = pd.DataFrame([[1.0, 2.0], [np.nan, 1.0]], index=["x", "y"], columns=["a", "b"])
    with pytest.raises(ValueError, match="missing: y/a"):
        R.friedman(ranks)
    with pytest.raises(ValueError, match="at least 2 methods, got k = 1"):
        R.nemenyi_q(1)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\), got 1.5"):
        R.nemenyi_q(4, 1.5)


def test_missing_values_ranked_nowhere_and_the_block_rule() -> None:
    nan = np.nan
    values = pd.DataFrame({
        "a": [1.0, 1.0, 1.0, 1.0],
        "b": [2.0, 2.0, nan, 2.0],      # not ranked on d3: d3 leaves the test
        "c": [nan, nan, nan, 0.5],      # ranked on 1 of 4 (< half): c leaves the test
        "d": [3.0, 0.5, 3.0, 3.0],
    }, index=["d1", "d2", "d3", "d4"])
    ranks = R.dataset_ranks(values)
    assert ranks.loc["d3"].tolist()[0] == 1.0 and np.isnan(ranks.loc["d3", "b"])
    assert ranks.loc["d3", "d"] == 2.0  # ranked among the two present
    block = R.complete_block(values)
    assert block.methods_left_out == {"c": ["d1", "d2", "d3"]}
    assert block.datasets_left_out == {"d3": ["b"]}
    assert list(block.values.index) == ["d1", "d2", "d4"] and list(block.values.columns) == \
        ["a", "b", "d"]
    assert (block.k, block.n) == (3, 3) and not block.values.isna().any().any()
    # a method ranked on exactly half of the datasets stays
    half = pd.DataFrame({"a": [1.0, 1.0], "b": [2.0, nan]}, index=["x", "y"])
    assert R.complete_block(half).methods_left_out == {}
    assert R.complete_block(half).datasets_left_out == {"y": ["b"]}


def test_cd_groups_are_maximal_runs_within_less_than_cd() -> None:
    means = pd.Series({"a": 1.0, "b": 1.5, "c": 2.0, "d": 3.0, "e": 3.2})
    assert R.cd_groups(means, 1.0) == [("a", "b"), ("b", "c"), ("d", "e")]  # 2.0 - 1.0 = CD
    assert R.cd_groups(means, 1.01) == [("a", "b", "c"), ("c", "d"), ("d", "e")]
    assert R.cd_groups(means, 0.1) == []
    assert R.cd_groups(means, 10) == [("a", "b", "c", "d", "e")]


def test_a_tie_is_a_difference_within_the_larger_seed_spread() -> None:
    assert R.is_tie(1.0, 0.25, 1.25, 0.125)        # |Δ| = 0.25 = max spread: a tie
    assert not R.is_tie(1.0, 0.25, 1.2501, 0.125)
    assert not R.is_tie(1.0, np.nan, 1.05, np.nan)  # no spread on either side
    assert R.is_tie(1.0, np.nan, 1.05, 0.06)        # a reference against a flow's spread
    assert R.is_tie(2.0, np.nan, 2.0, np.nan)


def test_win_tie_loss_counts_on_a_hand_made_table() -> None:
    nan = np.nan
    means = pd.DataFrame({"a": [1.0, 2.0, 3.0, 5.0], "b": [1.05, 1.0, 4.0, nan],
                          "ref": [2.0, 2.0, 2.0, 2.0]}, index=["d1", "d2", "d3", "d4"])
    stds = pd.DataFrame({"a": [0.1, 0.1, 0.1, 0.1], "b": [0.01, 0.2, 0.5, nan],
                         "ref": [nan, nan, nan, nan]}, index=means.index)
    table = R.win_tie_loss(means, stds).set_index(["method", "versus"])
    # a vs b: d1 tie (0.05 <= 0.1), d2 loss (1.0 > 0.2), d3 win (1.0 > 0.5); d4: b not ranked
    assert table.loc[("a", "b")].tolist() == [1, 1, 1, 3]
    assert table.loc[("b", "a")].tolist() == [1, 1, 1, 3]
    # a vs ref: d1 win, d2 tie (equal), d3 loss, d4 loss (3.0 > 0.1)
    assert table.loc[("a", "ref")].tolist() == [1, 1, 2, 4]
    assert table.loc[("ref", "a")].tolist() == [2, 1, 1, 4]
    assert len(table) == 6  # every ordered pair of different methods, once


def _record(dataset: str, flow: str, seed: int, nll: float) -> dict:
    return {"cell_id": f"{dataset}-{flow}-normal-s{seed}", "dataset": dataset, "flow": flow,
            "base": "normal", "seed": seed, "status": "ok", "test_nll": nll, "entropy": 1.0,
            "oracle_test_nll": 1.0, "gap": nll - 1.0}


def test_the_reports_ranks_share_ties_and_every_tied_best_is_bold() -> None:
    from flowbench.report.display import nll_table, rank_display
    from flowbench.report.tables import model_summary, nll_summary

    records = [_record(d, f, s, v) for d, f, s, v in [
        ("a", "nice", 0, 2.0), ("a", "nice", 1, 2.2), ("a", "glow", 0, 2.2), ("a", "glow", 1, 2.0),
        ("a", "realnvp", 0, 3.0), ("a", "realnvp", 1, 3.0),
        ("b", "nice", 0, 1.0), ("b", "nice", 1, 1.0), ("b", "glow", 0, 2.0), ("b", "glow", 1, 2.0),
        ("b", "realnvp", 0, 1.5), ("b", "realnvp", 1, 1.5)]]
    models = model_summary(nll_summary(records)).set_index(["dataset", "model"])
    # on a, nice and glow share ranks 1 and 2; nice wins b outright
    assert models.loc[("a", "nice/normal"), "rank"] == models.loc[("a", "glow/normal"), "rank"] \
        == 1.5
    assert models.loc[("a", "realnvp/normal"), "rank"] == 3
    assert models.loc[("a", "nice/normal"), "best"] and models.loc[("a", "glow/normal"), "best"]
    assert models.loc[("b", "nice/normal"), "best"] and not models.loc[("b", "glow/normal"),
                                                                      "best"]
    table = nll_table(models.reset_index())
    assert table.loc["a", "nice/normal"].startswith("**") and \
        table.loc["a", "glow/normal"].startswith("**")
    assert not table.loc["a", "realnvp/normal"].startswith("**")
    ranks = rank_display(models.reset_index())
    assert ranks.loc["a", "nice/normal"] == "1.5" and ranks.loc["b", "glow/normal"] == "3"
    ranking = R.from_models(models.reset_index())
    assert ranking.friedman.mean_ranks.to_dict() == {"nice/normal": 1.25,
                                                     "realnvp/normal": 2.5, "glow/normal": 2.25}
    assert ranking.ranks.loc["a"].to_dict() == {"nice/normal": 1.5, "glow/normal": 1.5,
                                                "realnvp/normal": 3.0}
    wtl = ranking.wtl.set_index(["method", "versus"])
    # nice vs glow: a tie on a (equal means), a win on b (1.0 vs 2.0, no spread)
    assert wtl.loc[("nice/normal", "glow/normal")].tolist() == [1, 1, 0, 2]


def test_flagged_and_failed_combinations_leave_the_test_and_the_report_says_why(
        tmp_path) -> None:
    from flowbench.report import sections
    from flowbench.report.document import Document
    from flowbench.report.tables import model_summary, nll_summary

    records = []
    for dataset, values in {"a": (1.0, 2.0, 3.0), "b": (1.0, 2.0, 3.0),
                            "c": (1.5, 1.0, 3.0)}.items():
        for flow, value in zip(("nice", "glow", "realnvp"), values, strict=True):
            for seed in (0, 1):
                records.append(_record(dataset, flow, seed, value + 0.01 * seed))
    for record in records:
        if (record["dataset"], record["flow"], record["seed"]) == ("b", "glow", 1):
            record["test_tail_flag"] = True  # its mean is dominated by a few test points
        if record["flow"] == "realnvp" and record["dataset"] in ("a", "b") and record["seed"]:
            record.update(status="failed", test_nll=None, gap=None)
    models = model_summary(nll_summary(records))
    ranking = R.from_models(models)
    assert ranking.why_missing == {("a", "realnvp/normal"): "a seed did not finish ok",
                                   ("b", "glow/normal"): "†",
                                   ("b", "realnvp/normal"): "a seed did not finish ok"}
    assert ranking.block.methods_left_out == {"realnvp/normal": ["a", "b"]}
    assert ranking.block.datasets_left_out == {"b": ["glow/normal"]}
    assert ranking.friedman.n == 2 and list(ranking.friedman.mean_ranks.index) == [
        "nice/normal", "glow/normal"]
    assert ranking.ranks.loc["c"].to_dict() == {"nice/normal": 2.0, "glow/normal": 1.0}
    # the pairwise counts still use every dataset where both are ranked
    wtl = ranking.wtl.set_index(["method", "versus"])
    assert wtl.loc[("nice/normal", "glow/normal")].tolist() == [1, 0, 1, 2]  # not on b
    assert wtl.loc[("glow/normal", "realnvp/normal")].tolist() == [1, 0, 0, 1]

    doc, tables = Document("t"), {}
    sections.ranks(doc, models, {}, tables)
    text = doc.to_markdown(tmp_path)
    assert ("method realnvp/normal: not ranked on 2 of 3 datasets (a: a seed did not finish ok, "
            "b: a seed did not finish ok)") in text
    assert "dataset b: glow/normal † (its mean is dominated by a few test points)" in text
    assert "mean rank over the 2 datasets of the test (k = 2 methods): nice/normal 1.50 · " \
           "glow/normal 1.50" in text
    assert list(tables["friedman_ranks"].index) == ["a", "c", "mean rank"]


def test_one_dataset_says_why_there_are_no_ranks_across_datasets(tmp_path) -> None:
    from flowbench.report import sections
    from flowbench.report.document import Document
    from flowbench.report.tables import model_summary, nll_summary

    records = [_record("a", flow, 0, value) for flow, value in (("nice", 1.0), ("glow", 2.0))]
    doc, tables = Document("t"), {}
    sections.ranks(doc, model_summary(nll_summary(records)), {}, tables)
    assert ("Not shown: this run has 1 dataset and 2 methods; ranks across datasets need at "
            "least 2 of each.") in doc.to_markdown(tmp_path)
    assert tables == {}
