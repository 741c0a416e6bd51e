"""The sections of one run's report, in the order of a paper's results: status, test NLL (with
gap and rank, and the seed-spread figure), tuning, speed, log-det cost, per-dataset figures,
problems; settings and JSON last, folded (:func:`appendix`).

Each function adds its blocks to the document, the numeric tables it shows to ``tables`` (saved
as ``tables/*.csv``), and the figures of its section right after its tables, placed by the
figure-kind table (:data:`~flowbench.report.figures.FIGURE_KINDS`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import display as D
from . import tables as T
from .document import Document
from .figures.kinds import in_section
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
    _figures(doc, figures, "nll")
    gaps = D.gap_display(models)
    if not gaps.empty:  # datasets without a known density have no oracle to compare with
        doc.heading("Gap to the oracle (nats)", 3)
        doc.text("Test NLL minus the oracle's NLL on the same test points: a paired estimate "
                 "of KL(data ‖ model). 0 is perfect.")
        doc.table(gaps)
        tail_notes(doc, models, full=False)
    doc.heading("Rank per dataset", 3)
    doc.table(D.rank_display(models))
    tail_notes(doc, models, full=False)


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
    tuning(doc, run, figures, tables)
    speed(doc, run, figures, tables)
    costs(doc, run, figures, tables)
    per_dataset(doc, run, figures)
    problems(doc, run)
    appendix(doc, run, references, tables)
