"""Assemble ``report.md``, a self-contained ``report.html``, ``figures/*.png`` and ``tables/*.csv``
from one run folder, or a comparison from several. Every file is written atomically (a hidden
temporary file renamed into place), so an interrupted report never leaves half a file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import compare as comparing
from . import display as D
from . import sections
from . import tables as T
from .document import Document
from .figures.kinds import check_kinds
from ..store import write_atomic
from .rundata import RunData
from .tails import MARK_NOTE


@dataclass
class ReportResult:
    folder: Path
    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


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
        figures.style  # noqa: B018 - import the plotting stack now, to report it missing
    except ImportError as error:  # plotting stack missing: tables still get written
        skipped.append(f"figures: {error}")
        return {}
    made = figures.make_all(run, folder, kinds=kinds, datasets=datasets)
    for kind, paths in made.items():
        if not paths:
            skipped.append(f"figure '{kind}': no input for it in this run")
    return made


def _comparison(doc: Document, runs: list[RunData], tables: dict[str, pd.DataFrame]) -> None:
    base = runs[0]
    doc.text(f"Baseline: `{base.path}`. delta = other − baseline mean test NLL (nats; "
             "negative means the other run is better); flagged when |delta| exceeds the seed "
             "spread sqrt((std_base² + std_other²)/2).")
    warnings = comparing.metadata_warnings(runs)
    if warnings:
        doc.heading("Warnings: the runs differ in machine, packages or settings")
        doc.bullets(warnings)
    for run in runs[1:]:
        table = comparing.compare(base, run)
        tables[f"compare_{run.name}"] = table.set_index(T.KEYS)
        doc.heading(f"{run.name} vs {base.name}")
        flagged = int((table["beyond_spread"] == "yes").sum())
        tails = int(((table["tail_flagged_base"] > 0) | (table["tail_flagged_other"] > 0)).sum())
        doc.text(f"{len(table)} aligned flow/base/dataset combinations; {flagged} differ by "
                 "more than the seed spread" + (f"; {tails} carry the mark †, their means "
                                                "dominated by a few test points" if tails else "")
                 + ".")
        doc.table(comparing.compare_display(table))
        notes = comparing.compare_notes(table, base.name, run.name)
        if notes:
            doc.text(MARK_NOTE)
            doc.bullets(notes)
        only_base, only_other = comparing.unmatched(base, run)
        doc.bullets([f"only in {base.name}: {c}" for c in only_base]
                    + [f"only in {run.name}: {c}" for c in only_other])
    for run in runs:
        doc.heading(f"Run {run.name}")
        models = T.model_summary(T.nll_summary(run.records), run.table("references"))
        doc.table(D.nll_table(models))
        sections.tail_notes(doc, models)


def write_report(paths: Sequence[str | Path], out: str | Path | None = None,
                 figures: bool = True, figure_kinds: Sequence[str] | None = None,
                 figure_datasets: Sequence[str] | None = None) -> ReportResult:
    """Write the report of one run (into the run folder unless ``out``), or the comparison of
    several (the first is the baseline; into ``out``, default ``<first run>/comparison``).
    ``figure_kinds`` / ``figure_datasets`` restrict which figures are drawn (default: all); an
    unknown kind is a ``ValueError`` naming it and the valid kinds, raised before anything is
    written."""
    figure_kinds = check_kinds(figure_kinds)
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
        sections.run_report(doc, run, made, tables)
    else:
        doc = Document(f"flowbench comparison: {', '.join(r.name for r in runs)}")
        _comparison(doc, runs, tables)

    written_tables = _save_tables(folder / "tables", tables)
    doc.text(f"Generated by flowbench on {time.strftime('%Y-%m-%d %H:%M:%S %z')}. Tables as CSV "
             "in `tables/`.")
    markdown, page = folder / "report.md", folder / "report.html"
    write_atomic(markdown, doc.to_markdown(folder))
    write_atomic(page, doc.to_html())
    return ReportResult(folder, markdown, page, [p for ps in made.values() for p in ps],
                        written_tables, skipped)
