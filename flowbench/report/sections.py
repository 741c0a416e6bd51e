"""The sections of one run's report, in the order of a paper's results: status, test NLL (with
published rows, gap and rank, and the seed-spread figure), ranks across datasets, tuning,
speed, log-det cost, per-dataset figures, problems; settings and JSON last, folded
(:func:`appendix`).

Each function adds its blocks to the document, the numeric tables it shows to ``tables`` (saved
as ``tables/*.csv``), and the figures of its section right after its tables, placed by the
figure-kind table (:data:`~flowbench.report.figures.FIGURE_KINDS`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import display as D
from . import ranking as R
from . import tables as T
from .document import Document
from .figures.kinds import in_section
from .numbers import counted, probability
from .rundata import RunData
from .tails import MARK, MARK_NOTE

Figures = dict[str, list[Path]]
Tables = dict[str, pd.DataFrame]


def _figures(doc: Document, figures: Figures, section: str, dataset: str | None = None) -> None:
    """The figures of one report section (of one dataset, for per-dataset kinds)."""
    for kind in in_section(section):
        names = kind.filenames(dataset)
        for path in figures.get(kind.name, []):
            if dataset is None or path.name in names:
                doc.figure(path, kind.caption_for(dataset, path.name))


def status(doc: Document, run: RunData) -> None:
    frame = run.frame()
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    lines = [f"cells: {len(frame)} of {len(run.config.get('cells', []))} planned; "
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    session = run.metadata[-1] if run.metadata else {}
    if session:
        packages = session.get("packages", {})
        lines.append(f"machine: {session.get('host')} · {session.get('platform')} · "
                     f"{session.get('cpu_count')} CPUs · torch {packages.get('torch')} · "
                     f"flowbench {packages.get('flowbench-nf')}")
    lines.append("settings: training configuration, reference and tuning settings in the "
                 "appendix at the end")
    doc.bullets(lines)


def tail_notes(doc: Document, models: pd.DataFrame, full: bool = True) -> None:
    """Under a table that can carry the mark: what it means, and (``full``) one sentence per
    flagged cell."""
    notes = T.tail_notes(models)
    if not notes:
        return
    if full:
        doc.text(MARK_NOTE)
        doc.bullets(notes)
    else:
        doc.text(f"{MARK}: see the notes under the test NLL table.")


def nll(doc: Document, run: RunData, models: pd.DataFrame, figures: Figures,
        tables: Tables) -> None:
    """The test NLL table against references and the oracle; gap and rank tables."""
    tables.update({"nll_table": D.nll_table(models, bold=False), "gaps": T.gap_table(models),
                   "ranks": T.rank_table(models)})
    doc.heading("Test NLL")
    doc.text("Nats per example in the original data space (bits/dim for discrete data); mean ± "
             "standard deviation over seeds; **bold** is the lowest per dataset among flows "
             "and references; `ref:` columns are scikit-learn / closed-form baselines fitted "
             "on the same splits (settings chosen on validation NLL, listed in the appendix); "
             "`oracle` is the true density's NLL on the same test points. Cells that diverged "
             "or failed are counted, never averaged.")
    doc.table(D.nll_table(models))
    tail_notes(doc, models)
    if any(" of " in text for text in D.mean_rank_texts(models).values()):
        doc.text(D.RANK_NOTE)
    published(doc, run, tables)
    _figures(doc, figures, "nll")
    gaps = D.gap_display(models)
    if not gaps.empty:  # datasets without a known density have no oracle to compare with
        doc.heading("Gap to the oracle (nats)", 3)
        doc.text("Test NLL minus the oracle's NLL on the same test points: a paired estimate "
                 "of KL(data ‖ model). 0 is perfect.")
        doc.table(gaps)
        tail_notes(doc, models, full=False)
        _figures(doc, figures, "gap")
    doc.heading("Rank per dataset", 3)
    doc.table(D.rank_display(models))
    tail_notes(doc, models, full=False)


def published(doc: Document, run: RunData, tables: Tables) -> None:
    """Papers' numbers on the run's datasets, as labelled ``published:`` rows in their own table
    beside the measured one: never ranked, never marked best, in no statistic."""
    datasets = list(dict.fromkeys(r["dataset"] for r in run.records))
    rows = pd.DataFrame([r for r in run.published if r["dataset"] in datasets])
    if rows.empty:
        return
    rows = rows.sort_values("dataset", key=lambda d: d.map(datasets.index), kind="stable")
    tables["published"] = rows.set_index(["dataset", "method"])
    doc.heading("Published results", 3)
    doc.text("Numbers reported by papers for these datasets (their sign and unit converted to "
             "flowbench's), not measured in this run: shown beside the measured table, never "
             "ranked, never marked best, and part of no statistic in this report.")
    doc.table(D.published_display(rows))
    doc.text(" ".join(D.PUBLISHED_UNITS.get(unit, f"NLL in {unit}; lower is better.")
                      for unit in dict.fromkeys(rows["unit"])))


def _methods_sentence(ranking: R.Ranking) -> str:
    flows = [m for m in ranking.methods if not m.startswith(T.REFERENCE_PREFIX)]
    refs = [m for m in ranking.methods if m.startswith(T.REFERENCE_PREFIX)]
    text = f"Methods compared: the {counted(len(flows), 'flow/base combination')}"
    if refs:
        text += (f" and the {counted(len(refs), 'reference baseline')} "
                 f"({', '.join(f'`{m}`' for m in refs)}): the baselines are fitted on the same "
                 "splits with settings chosen on validation NLL, so they compete on the same "
                 "terms")
    return text + ("; the oracle is the true density, not a method, and published numbers are "
                   "never ranked. Rank 1 is the lowest mean test NLL on a dataset; tied means "
                   "share their average rank.")


def _left_out(ranking: R.Ranking) -> list[str]:
    block, why = ranking.block, ranking.why_missing
    lines = [f"method {m}: not ranked on {len(d)} of {len(ranking.means)} datasets "
             f"({', '.join(f'{x}: {why[(x, m)]}' for x in d)})"
             for m, d in block.methods_left_out.items()]
    lines += [f"dataset {d}: " + ", ".join(f"{m} {MARK} (its mean is dominated by a few test "
                                          "points)" if why[(d, m)] == MARK
                                          else f"{m} ({why[(d, m)]})" for m in methods)
              for d, methods in block.datasets_left_out.items()]
    return lines


def ranks(doc: Document, models: pd.DataFrame, figures: Figures, tables: Tables) -> None:
    """Ranks across datasets: mean ranks, the Friedman test, the Nemenyi critical difference
    with its diagram (Demšar 2006), and pairwise wins, ties and losses."""
    ranking = R.from_models(models)
    doc.heading("Ranks across datasets")
    if ranking.wtl.empty:
        doc.text(f"Not shown: {ranking.absent}.")
        return
    doc.text(_methods_sentence(ranking))
    test = ranking.friedman
    if ranking.block.methods_left_out or ranking.block.datasets_left_out:
        doc.text("The Friedman test needs every method ranked on every dataset; left out by "
                 "its rule (first each method ranked on fewer than half of the datasets, then "
                 "each dataset where a remaining method is not ranked):")
        doc.bullets(_left_out(ranking))
    if test is None:
        doc.text(f"No Friedman test: {ranking.absent}.")
    else:
        tables["friedman_ranks"] = ranking.ranks.reindex(columns=list(test.mean_ranks.index))
        tables["friedman_ranks"].loc["mean rank"] = test.mean_ranks
        tables["friedman"] = pd.DataFrame([{
            "datasets": test.n, "methods": test.k, "chi2_F": test.chi2, "chi2_df": test.k - 1,
            "chi2_p": test.chi2_p, "F_F": test.f, "F_df1": test.f_df[0], "F_df2": test.f_df[1],
            "F_p": test.f_p, "alpha": ranking.alpha, "q_alpha": ranking.q,
            "critical_difference": ranking.cd}]).set_index("datasets")
        verdict = ("the methods' ranks differ significantly" if test.f_p < ranking.alpha else
                   "no significant difference between the methods' ranks: the critical "
                   "difference below is shown for reference only")
        groups = "; ".join("{" + ", ".join(g) + "}" for g in ranking.groups) or \
            "none (every pair differs significantly)"
        f_text = (f"F_F = {test.f:.2f} ({test.f_df[0]} and {test.f_df[1]} degrees of freedom), "
                  f"p = {probability(test.f_p)}") if math.isfinite(test.f) else (
            "F_F = ∞ (every dataset ranks the methods in the same order), p → 0")
        doc.bullets([
            f"mean rank over the {test.n} datasets of the test (k = {test.k} methods): "
            + " · ".join(f"{m} {r:.2f}" for m, r in test.mean_ranks.items()),
            f"Friedman χ²_F = {test.chi2:.2f} ({test.k - 1} degrees of freedom), p = "
            f"{probability(test.chi2_p)}; Iman–Davenport {f_text}: {verdict}",
            f"Nemenyi critical difference at α = {ranking.alpha:g}: CD = q_α·sqrt(k(k+1)/(6N)) "
            f"= {ranking.q:.3f} × sqrt({test.k}·{test.k + 1}/(6·{test.n})) = {ranking.cd:.2f}; "
            "two methods whose mean ranks differ by at least CD differ significantly",
            f"not significantly different (mean ranks within CD): {groups}",
        ])
        few = (f" With {test.n} datasets and {test.k} methods the χ² and F distributions "
               "only roughly approximate the statistics' null distributions (Demšar's rule of "
               "thumb asks for N > 10 and k > 5; exact tables exist for smaller designs)."
               if test.n <= 10 or test.k <= 5 else "")
        doc.text("Demšar (2006), Statistical comparisons of classifiers over multiple data "
                 "sets, JMLR 7:1-30, section 3.2 (χ²_F without a correction for ties)." + few)
        _figures(doc, figures, "ranks")
    tables["win_tie_loss"] = ranking.wtl.set_index(["method", "versus"])
    doc.heading("Wins, ties and losses", 3)
    doc.text("Each cell: wins/ties/losses of the row's method against the column's, by mean "
             f"test NLL, over every dataset where both are ranked (a combination with a {MARK} "
             "or failed seed is not compared there, so a cell may count fewer datasets); "
             f"{R.TIE_RULE}. total: summed over every other method.")
    doc.table(D.win_tie_loss_display(ranking.wtl, ranking.methods))


def _settings(study: dict) -> str:
    chosen = {**study["flow_hparams"], **study["base_hparams"], **study["train"]}
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in chosen.items())


def tuning(doc: Document, run: RunData, figures: Figures, tables: Tables) -> None:
    """Trial counts and best validation NLL per Optuna study (a ``--tuned`` run only)."""
    studies = (run.config.get("tuning") or {}).get("studies")
    if not studies:
        return
    doc.heading("Tuning")
    doc.text(f"Each cell was trained with the best trial of its Optuna study (storage "
             f"`{run.config['tuning']['storage']}`), selected on validation NLL only; the "
             "chosen settings are in the appendix.")
    tables["tuning"] = pd.DataFrame([{
        "study": name, "complete": study["complete"], "pruned": study["pruned"],
        "failed": study["failed"], "best val NLL": study["best_val_nll"],
        "chosen settings": _settings(study),
    } for name, study in studies.items()]).set_index("study")
    doc.table(tables["tuning"].drop(columns="chosen settings"), floatfmt=".4f")
    _figures(doc, figures, "tuning")


def speed(doc: Document, run: RunData, figures: Figures, tables: Tables) -> None:
    tables["speed"] = T.speed_table(run.frame())
    doc.heading("Speed")
    doc.text("Examples per second, median over the cells of each flow/base (IQR over cells); "
             "training throughput from the median optimisation step after warm-up.")
    doc.table(D.speed_display(tables["speed"]))
    _figures(doc, figures, "speed")


def _exponents(logdet: pd.DataFrame) -> pd.DataFrame:
    if "path" in logdet:
        logdet = logdet.dropna(subset=["path"])
    if logdet.empty:
        return pd.DataFrame()
    from ..measure import exponents

    return exponents(logdet).set_index(["flow", "base", "path"])


def costs(doc: Document, run: RunData, figures: Figures, tables: Tables) -> None:
    tables.update({"logdet": T.logdet_table(run.table("logdet_cost")),
                   "logdet_exponents": _exponents(run.table("logdet_cost")),
                   "linear": T.linear_table(run.table("linear_cost"))})
    doc.heading("Log-det cost")
    doc.text("Seconds per example of the analytic `log_prob` against the brute-force path "
             "(autograd Jacobian + slogdet) on synthetic data of dimension D, and the largest "
             "disagreement between the two (float64). Each flow is measured once, with the "
             "run's first base (a transform's log-det does not depend on the base); the "
             "brute-force path stops growing D once one of its calls exceeds its time budget, "
             "as the note column says.")
    doc.table(tables["logdet"], floatfmt=".3g")
    doc.heading("Fitted complexity exponents (log-log slope of seconds vs D)", 3)
    doc.table(tables["logdet_exponents"], floatfmt=".3g")
    doc.heading("Glow's 1x1 convolution: LU-parameterised vs plain slogdet", 3)
    doc.table(tables["linear"], floatfmt=".3g")
    _figures(doc, figures, "cost")


def per_dataset(doc: Document, run: RunData, figures: Figures) -> None:
    if not any(figures.get(kind.name) for kind in in_section("dataset")):
        return
    doc.heading("Per dataset")
    for dataset in dict.fromkeys(r["dataset"] for r in run.records):
        doc.heading(dataset, 3)
        _figures(doc, figures, "dataset", dataset)


def _measurement_problems(run: RunData) -> list[str]:
    problems = []
    for name in ("references", "logdet_cost"):
        table = run.table(name)
        if "status" in table:
            for _, row in table[table["status"] == "failed"].iterrows():
                what = row.get("method") if name == "references" else f"{row['flow']}/{row['base']}"
                where = row.get("dataset", "")
                problems.append(
                    f"{name} {where} {what}: {row.get('message', '')}".replace("  ", " "))
    return problems


def problems(doc: Document, run: RunData) -> None:
    bad = [r for r in run.records if r.get("status") != "ok"]
    if bad:
        doc.heading("Cells that did not finish ok")
        doc.bullets([f"`{r['cell_id']}`: {r['status']} — {r.get('message', '')}" for r in bad])
    failed = _measurement_problems(run)
    if failed:
        doc.heading("Measurements that failed")
        doc.bullets(failed)


def appendix(doc: Document, run: RunData, references: pd.DataFrame, tables: Tables) -> None:
    """Settings, folded: the training configuration, each reference's fitted parameters and how
    they were selected, and each tuned study's chosen settings."""
    part = doc.collapsed("Appendix: settings")
    part.heading("Training configuration", 3)
    part.text(f"`{run.config.get('train')}`")
    if "test_nll" in references:
        fitted = references.dropna(subset=["test_nll"])
        part.heading("Reference settings", 3)
        part.table(fitted.set_index(["dataset", "method"])[
            [c for c in ("params", "selection", "test_nll", "fit_seconds") if c in fitted]])
    if "tuning" in tables:
        part.heading("Tuned settings", 3)
        part.table(tables["tuning"][["chosen settings"]])


def run_report(doc: Document, run: RunData, figures: Figures, tables: Tables) -> None:
    """Every section of one run's report, in order."""
    summary = T.nll_summary(run.records)
    references = run.table("references")
    models = T.model_summary(summary, references)
    tables.update({
        "nll_summary": summary.set_index(T.KEYS),
        "models": models.set_index(["dataset", "model"]),
        "references": references.set_index(["dataset", "method"]) if not references.empty
        else references,
    })
    status(doc, run)
    nll(doc, run, models, figures, tables)
    ranks(doc, models, figures, tables)
    tuning(doc, run, figures, tables)
    speed(doc, run, figures, tables)
    costs(doc, run, figures, tables)
    per_dataset(doc, run, figures)
    problems(doc, run)
    appendix(doc, run, references, tables)
