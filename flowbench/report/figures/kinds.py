"""The table of figure kinds: what each kind is called, which function draws it, which files it
writes, its caption and where the report shows it. The report builder, ``make_all``, the CLI's
``--figures`` and the docs all read this one table.

This module imports no plotting library: writers are named by ``"module:function"`` inside
this package and imported only when a figure is drawn, so ``FIGURE_KINDS`` is cheap to import.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from types import MappingProxyType
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

#: report sections a figure can belong to, in the report's order
SECTIONS = ("nll", "gap", "ranks", "tuning", "speed", "cost", "dataset")


@dataclass(frozen=True)
class FigureKind:
    """One kind of figure.

    ``writer`` is ``"module:function"`` in this package; ``files`` are the names it writes
    (``{dataset}`` stands for the dataset of a per-dataset kind): a subset of them, or none when
    the run lacks its input. ``caption`` describes the kind (report, ``--help``, docs);
    ``file_captions``, when given, one caption per file of a kind whose files differ.
    ``section`` is where the report shows it (:data:`SECTIONS`); ``options`` names the keyword
    options of ``make_all`` its writer takes (``points``, ``n``).
    """

    name: str
    writer: str
    files: tuple[str, ...]
    caption: str
    per_dataset: bool
    section: str
    options: tuple[str, ...] = ()
    file_captions: tuple[str, ...] = ()

    def load(self) -> Callable[..., list[Path]]:
        """The writer function (imports its module, and so matplotlib)."""
        module, function = self.writer.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)

    def write(self, run: Any, out_dir: Path, dataset: str | None = None,
              **options: Any) -> list[Path]:
        """Draw this kind (for ``dataset``, when per dataset) into ``out_dir``."""
        kwargs = {k: v for k, v in options.items() if k in self.options}
        if self.per_dataset:
            return self.load()(run, dataset, out_dir, **kwargs)
        return self.load()(run, out_dir, **kwargs)

    def filenames(self, dataset: str | None = None) -> list[str]:
        return [f.format(dataset=dataset) for f in self.files]

    def caption_for(self, dataset: str | None = None, filename: str | None = None) -> str:
        """The caption of one written file (of ``dataset``, for a per-dataset kind)."""
        caption = self.caption
        names = self.filenames(dataset)
        if self.file_captions and filename in names:
            caption = self.file_captions[names.index(filename)]
        return f"{dataset}: {caption}" if self.per_dataset and dataset else caption


def _kinds(*kinds: FigureKind) -> Mapping[str, FigureKind]:
    return MappingProxyType({kind.name: kind for kind in kinds})


#: every figure kind, in the order the report shows them
FIGURE_KINDS: Mapping[str, FigureKind] = _kinds(
    FigureKind("nll_spread", "curves:nll_spread", ("nll_spread.png",),
               "Test NLL of every seed, the seed mean and the true entropy (dashed); diverged "
               "or failed cells as red crosses", per_dataset=False, section="nll"),
    FigureKind("gap_vs_dim", "families:gap_vs_dim", ("gap_vs_dim.png",),
               "Gap to the oracle per dimension (nats / D) against the dimension D, one panel "
               "per dataset family (datasets named family-D, e.g. funnel-8 and funnel-32): "
               "flows with their seed spread, reference baselines dashed", per_dataset=False,
               section="gap"),
    FigureKind("critical_difference", "ranks:critical_difference",
               ("critical_difference.png",),
               "Critical-difference diagram (Demšar 2006): mean ranks across datasets; a bar "
               "joins methods whose mean ranks differ by less than the Nemenyi critical "
               "difference (alpha = 0.05)", per_dataset=False, section="ranks"),
    FigureKind("tuning", "tuning:tuning", ("tuning_history.png", "tuning_importance.png"),
               "Optuna studies: optimisation history and hyperparameter importance",
               per_dataset=False, section="tuning",
               file_captions=("Optimisation history of each Optuna study (validation NLL)",
                              "Hyperparameter importance of each Optuna study (fANOVA)")),
    FigureKind("speed_vs_nll", "curves:speed_figures",
               ("speed_vs_nll.png", "speed_vs_nll_log_prob.png"),
               "Gap to the oracle against throughput (training; log_prob when measured)",
               per_dataset=False, section="speed",
               file_captions=("Gap to the oracle against training throughput",
                              "Gap to the oracle against log_prob (density evaluation) "
                              "throughput")),
    FigureKind("logdet_cost", "costs:logdet_cost", ("logdet_cost.png", "linear_cost.png"),
               "Log-det cost: analytic vs brute-force per dimension; LU vs plain 1x1 "
               "convolution per channel count", per_dataset=False, section="cost",
               file_captions=("Log-det cost: analytic vs brute-force Jacobian, seconds per "
                              "call against dimension",
                              "Invertible 1x1 convolution: LU-parameterised vs plain matrix, "
                              "seconds per call against channels")),
    FigureKind("density_grid", "toy2d:density_grid", ("density_{dataset}.png",),
               "data, oracle and model densities", per_dataset=True, section="dataset",
               options=("points",)),
    FigureKind("samples_vs_data", "toy2d:samples_vs_data", ("samples_{dataset}.png",),
               "model samples over test data", per_dataset=True, section="dataset",
               options=("n",)),
    FigureKind("learning_curves", "curves:learning_curves", ("learning_curves_{dataset}.png",),
               "training (dashed) and validation NLL", per_dataset=True, section="dataset"),
    FigureKind("flow_steps", "toy2d:flow_steps", ("flow_steps_{dataset}.png",),
               "base samples after k steps of flow", per_dataset=True, section="dataset",
               options=("n",)),
    FigureKind("image_samples", "images:image_samples", ("image_samples_{dataset}.png",),
               "samples at temperatures 1 and 0.7 beside real images", per_dataset=True,
               section="dataset"),
)


def check_kinds(kinds: Iterable[str] | None) -> list[str] | None:
    """``kinds`` as a list, or ``None`` for all; a ``ValueError`` naming every unknown kind
    (with the nearest valid name) and the valid ones."""
    if kinds is None:
        return None
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in FIGURE_KINDS]
    if unknown:
        hints = []
        for kind in unknown:
            near = difflib.get_close_matches(kind, list(FIGURE_KINDS), n=1)
            hints.append(f"'{kind}'" + (f" (did you mean '{near[0]}'?)" if near else ""))
        raise ValueError(f"unknown figure kind{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(hints)}; valid kinds: {', '.join(FIGURE_KINDS)}")
    return kinds


def in_section(section: str) -> list[FigureKind]:
    """The kinds the report shows in ``section`` (one of :data:`SECTIONS`), in table order."""
    return [kind for kind in FIGURE_KINDS.values() if kind.section == section]


def kinds_markdown() -> str:
    """The table as a markdown table (docs/report.md holds exactly this; a test checks it)."""
    lines = ["| kind | files | per dataset | caption |", "|---|---|---|---|"]
    for kind in FIGURE_KINDS.values():
        files = ", ".join(f"`{f}`" for f in kind.files)
        lines.append(f"| `{kind.name}` | {files} | {'yes' if kind.per_dataset else 'no'} | "
                     f"{kind.caption} |")
    return "\n".join(lines)
