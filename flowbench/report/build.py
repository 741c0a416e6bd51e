"""Assemble ``report.md``, a self-contained ``report.html``, ``figures/*.png`` and ``tables/*.csv``
from one run folder, or a comparison from several."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..store import write_atomic
from . import compare as comparing
from . import tables as T
from .document import Document
from .rundata import RunData


@dataclass
class ReportResult:
    folder: Path
    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _measurement_problems(run: RunData) -> list[str]:
    problems = []
    for name in ("references", "logdet_cost"):
        table = run.table(name)
        if "status" in table:
            for _, row in table[table["status"] == "failed"].iterrows():
                what = row.get("method") if name == "references" else f"{row['flow']}/{row['base']}"
                where = row.get("dataset", "")
                problems.append(f"{name} {where} {what}: {row.get('message', '')}".replace("  ", " "))
    return problems


def _exponents(logdet: pd.DataFrame) -> pd.DataFrame:
    if "path" in logdet:
        logdet = logdet.dropna(subset=["path"])
    if logdet.empty:
        return pd.DataFrame()
    from ..measure import exponents

    return exponents(logdet).set_index(["flow", "base", "path"])


def _save_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        if frame is None or frame.empty:
            continue
        path = folder / f"{name}.csv"
        write_atomic(path, frame.to_csv())
        written.append(path)
    return written


def _figures(run: RunData, folder: Path, skipped: list[str], kinds: Sequence[str] | None,
             datasets: Sequence[str] | None) -> dict[str, list[Path]]:
    try:
        from . import figures
    except ImportError as error:  # plotting stack missing: tables still get written
        skipped.append(f"figures: {error}")
        return {}
    made = figures.make_all(run, folder, kinds=kinds, datasets=datasets)
    for kind, paths in made.items():
        if not paths:
            skipped.append(f"figure '{kind}': no input for it in this run")
    return made


def _status_lines(run: RunData) -> list[str]:
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
    lines.append(f"training: {run.config.get('train')}")
    return lines


def _run_section(doc: Document, run: RunData, figures: dict[str, list[Path]],
                 tables: dict[str, pd.DataFrame]) -> None:
    summary = T.nll_summary(run.records)
    references = run.table("references")
    models = T.model_summary(summary, references)
    tables.update({
        "nll_summary": summary.set_index(T.KEYS),
        "models": models.set_index(["dataset", "model"]),
        "nll_table": T.nll_table(models, bold=False),
        "gaps": T.gap_table(models), "ranks": T.rank_table(models),
        "speed": T.speed_table(run.frame()), "logdet": T.logdet_table(run.table("logdet_cost")),
        "logdet_exponents": _exponents(run.table("logdet_cost")),
        "linear": T.linear_table(run.table("linear_cost")),
        "references": references.set_index(["dataset", "method"]) if not references.empty
        else references,
    })
    doc.bullets(_status_lines(run))

    doc.heading("Test NLL (nats per example, original data space)")
    doc.text("Mean ± standard deviation over seeds; **bold** is the lowest per dataset among flows "
             "and references; `ref:` columns are scikit-learn / closed-form baselines fitted on "
             "the same splits (settings chosen on validation NLL); `oracle` is the true "
             "density's NLL on the same test points. Cells that diverged or failed are counted, "
             "never averaged.")
    doc.table(T.nll_table(models))
    doc.heading("Gap to the oracle (nats)", 3)
    doc.text("Test NLL minus the oracle's NLL on the same test points: a paired estimate of "
             "KL(data ‖ model). 0 is perfect.")
    doc.table(tables["gaps"], floatfmt=".4f")
    doc.heading("Rank per dataset", 3)
    doc.table(tables["ranks"], floatfmt=".2f")
    if "test_nll" in references:
        fitted = references.dropna(subset=["test_nll"])
        doc.heading("Reference settings", 3)
        doc.table(fitted.set_index(["dataset", "method"])[
            [c for c in ("params", "selection", "test_nll", "fit_seconds") if c in fitted]])
    for path in figures.get("nll_spread", []):
        doc.figure(path, "Test NLL per seed; dashed: true entropy")

    tuning = run.config.get("tuning") or {}
    if tuning.get("studies"):
        doc.heading("Tuning")
        doc.text(f"Each cell was trained with the best trial of its Optuna study (storage "
                 f"`{tuning['storage']}`), selected on validation NLL only.")
        tables["tuning"] = pd.DataFrame([{
            "study": name, "complete": study["complete"], "pruned": study["pruned"],
            "failed": study["failed"], "best val NLL": study["best_val_nll"],
            "chosen settings": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in {**study["flow_hparams"],
                                                      **study["base_hparams"],
                                                      **study["train"]}.items()),
        } for name, study in tuning["studies"].items()]).set_index("study")
        doc.table(tables["tuning"], floatfmt=".4f")
        for path in figures.get("tuning", []):
            doc.figure(path, path.stem.replace("_", " "))

    doc.heading("Speed")
    doc.text("Examples per second, median over the cells of each flow/base (IQR over cells); "
             "training throughput from the median optimisation step after warm-up.")
    doc.table(tables["speed"], floatfmt=".4g")
    for path in figures.get("speed_vs_nll", []):
        doc.figure(path, "Speed vs gap to the oracle")

    doc.heading("Log-det cost")
    doc.text("Seconds per example of the analytic `log_prob` against the brute-force path "
             "(autograd Jacobian + slogdet) on synthetic data of dimension D, and the largest "
             "disagreement between the two (float64).")
    doc.table(tables["logdet"], floatfmt=".3g")
    doc.heading("Fitted complexity exponents (log-log slope of seconds vs D)", 3)
    doc.table(tables["logdet_exponents"], floatfmt=".3g")
    doc.heading("Glow's 1x1 convolution: LU-parameterised vs plain slogdet", 3)
    doc.table(tables["linear"], floatfmt=".3g")
    for path in figures.get("logdet_cost", []):
        doc.figure(path, "Log-det cost")

    doc.heading("Per dataset")
    for dataset in dict.fromkeys(r["dataset"] for r in run.records):
        doc.heading(dataset, 3)
        for kind, prefix, caption in (
            ("density_grid", "density", "data, oracle and model densities"),
            ("samples_vs_data", "samples", "model samples over test data"),
            ("learning_curves", "learning_curves", "training (dashed) and validation NLL"),
            ("flow_steps", "flow_steps", "base samples after k steps of flow"),
            ("image_samples", "image_samples", "samples at temperatures 1 and 0.7 beside real "
             "images"),
        ):
            for path in figures.get(kind, []):
                if path.stem == f"{prefix}_{dataset}":
                    doc.figure(path, f"{dataset}: {caption}")

    bad = [r for r in run.records if r.get("status") != "ok"]
    if bad:
        doc.heading("Cells that did not finish ok")
        doc.bullets([f"`{r['cell_id']}`: {r['status']} — {r.get('message', '')}" for r in bad])
    problems = _measurement_problems(run)
    if problems:
        doc.heading("Measurements that failed")
        doc.bullets(problems)


def write_report(paths: Sequence[str | Path], out: str | Path | None = None,
                 figures: bool = True, figure_kinds: Sequence[str] | None = None,
                 figure_datasets: Sequence[str] | None = None) -> ReportResult:
    """Write the report of one run (into the run folder unless ``out``), or the comparison of
    several (the first is the baseline; into ``out``, default ``<first run>/comparison``).
    ``figure_kinds`` / ``figure_datasets`` restrict which figures are drawn (default: all)."""
    runs = [RunData.load(path) for path in paths]
    folder = Path(out) if out is not None else (
        runs[0].path if len(runs) == 1 else runs[0].path / "comparison")
    folder.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    made: dict[str, list[Path]] = {}

    if len(runs) == 1:
        run = runs[0]
        doc = Document(f"flowbench report: {run.name} (suite {run.config.get('suite')})")
        made = _figures(run, folder / "figures", skipped, figure_kinds,
                        figure_datasets) if figures else {}
        _run_section(doc, run, made, tables)
    else:
        doc = Document(f"flowbench comparison: {', '.join(r.name for r in runs)}")
        doc.text(f"Baseline: `{runs[0].path}`. delta = other − baseline mean test NLL (nats; "
                 "negative means the other run is better); flagged when |delta| exceeds the seed "
                 "spread sqrt((std_base² + std_other²)/2).")
        warnings = comparing.metadata_warnings(runs)
        if warnings:
            doc.heading("Warnings: the runs differ in machine, packages or settings")
            doc.bullets(warnings)
        for run in runs[1:]:
            table = comparing.compare(runs[0], run)
            tables[f"compare_{run.name}"] = table.set_index(T.KEYS)
            doc.heading(f"{run.name} vs {runs[0].name}")
            flagged = int((table["beyond_spread"] == "yes").sum())
            doc.text(f"{len(table)} aligned flow/base/dataset combinations; {flagged} differ by "
                     "more than the seed spread.")
            doc.table(table.set_index(T.KEYS), floatfmt=".4f")
            only_base, only_other = comparing.unmatched(runs[0], run)
            doc.bullets([f"only in {runs[0].name}: {c}" for c in only_base]
                        + [f"only in {run.name}: {c}" for c in only_other])
        for run in runs:
            doc.heading(f"Run {run.name}")
            models = T.model_summary(T.nll_summary(run.records), run.table("references"))
            doc.table(T.nll_table(models))

    written_tables = _save_tables(folder / "tables", tables)
    doc.text(f"Generated by flowbench on {time.strftime('%Y-%m-%d %H:%M:%S %z')}. Tables as CSV "
             "in `tables/`.")
    markdown, page = folder / "report.md", folder / "report.html"
    write_atomic(markdown, doc.to_markdown(folder))
    write_atomic(page, doc.to_html())
    return ReportResult(folder, markdown, page, [p for ps in made.values() for p in ps],
                        written_tables, skipped)
