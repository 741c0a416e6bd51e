"""Figures of a run for papers and reports, written as PNG.

:data:`FIGURE_KINDS` (from :mod:`.kinds`) lists every kind: its writer, the files it writes, its
caption and whether it is drawn per dataset; :func:`make_all` draws every kind (or some) for
every dataset of a run. Importing this package, or the table, loads no plotting library: the
figure functions below are imported from their modules on first use.

Every writer takes a :class:`~flowbench.report.rundata.RunData`, writes its figure(s) under
``out_dir`` and returns the written paths; it returns ``[]`` (no error) when the run lacks what
the figure needs: no records, no saved models, a measurement table that was not recorded, a
dataset that is not 2-D vector data. Each figure is built by a ``*_figure`` function returning a
matplotlib ``Figure`` (or ``None``) so that tests and notebooks can inspect axes, titles and
lines; writers are thin wrappers that build and save it inside the plot style
(:func:`~.style.write_figure`), atomically.

Modules, one family each:

- :mod:`.toy2d` -- 2-D densities: :func:`density_grid` (``density_<dataset>.png``),
  :func:`samples_vs_data` (``samples_<dataset>.png``), :func:`flow_steps`
  (``flow_steps_<dataset>.png``, ``Flow.sample_steps`` layer by layer);
- :mod:`.curves` -- the cells' own numbers: :func:`learning_curves`
  (``learning_curves_<dataset>.png``), :func:`nll_spread` (``nll_spread.png``),
  :func:`speed_vs_nll` (``speed_vs_nll.png``, ``speed_vs_nll_log_prob.png``);
- :mod:`.costs` -- :func:`logdet_cost` (``logdet_cost.png``, ``linear_cost.png``);
- :mod:`.tuning` -- :func:`tuning` (``tuning_history.png``, ``tuning_importance.png``);
- :mod:`.images` -- :func:`image_samples` (``image_samples_<dataset>.png``);
- :mod:`.families` -- :func:`gap_vs_dim` (``gap_vs_dim.png``: gap per dimension against D for
  datasets named ``<family>-<D>``);
- :mod:`.ranks` -- :func:`critical_difference` (``critical_difference.png``, Demšar's diagram);
- :mod:`.style` (look, facet grid, saving) and :mod:`.select` (what a run holds, trained models).

Sampling uses seeded generators and evaluation is deterministic on the CPU, so the same run gives
the same pixels.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any, Sequence

from .kinds import FIGURE_KINDS, FigureKind, check_kinds, in_section

#: public figure functions and constants -> the module that defines them (imported lazily)
_LAZY = {
    **dict.fromkeys(("DPI", "plot_style", "write_figure"), "style"),
    **dict.fromkeys(("density_grid", "density_grid_figure", "samples_vs_data",
                     "samples_vs_data_figure", "flow_steps", "flow_steps_figure"), "toy2d"),
    **dict.fromkeys(("learning_curves", "learning_curves_figure", "nll_spread",
                     "nll_spread_figure", "speed_vs_nll", "speed_vs_nll_figure"), "curves"),
    **dict.fromkeys(("logdet_cost", "logdet_cost_figures"), "costs"),
    **dict.fromkeys(("tuning", "tuning_history_figure", "tuning_importance_figure"), "tuning"),
    **dict.fromkeys(("image_samples", "image_samples_figure"), "images"),
    **dict.fromkeys(("gap_vs_dim", "gap_vs_dim_figure", "dimension_families"), "families"),
    **dict.fromkeys(("critical_difference", "critical_difference_figure", "cd_diagram"),
                    "ranks"),
}
_MODULES = ("style", "select", "toy2d", "curves", "costs", "tuning", "images", "families",
            "ranks", "kinds")

__all__ = ["FIGURE_KINDS", "FigureKind", "check_kinds", "in_section", "make_all", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_MODULES))


def make_all(run: Any, out_dir: Path, *, strict: bool = False, points: int = 200,
             n: int = 2000, kinds: Sequence[str] | None = None,
             datasets: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """Every figure kind (or only ``kinds``) for every dataset of the run (or only ``datasets``,
    for the per-dataset kinds): ``{kind: [written paths]}`` in :data:`FIGURE_KINDS` order.

    An unknown kind is a ``ValueError`` (before anything is drawn). A kind whose input is
    missing gives ``[]``. A kind that raises is reported with a warning and gives ``[]`` (so a
    report at the end of a long run never dies on one figure), unless ``strict``.
    """
    from .select import datasets as run_datasets

    wanted = check_kinds(kinds)
    out_dir = Path(out_dir)
    names = [d for d in run_datasets(run) if datasets is None or d in datasets]
    written: dict[str, list[Path]] = {}
    for kind in FIGURE_KINDS.values():
        if wanted is not None and kind.name not in wanted:
            continue
        written[kind.name] = []
        for dataset in (names if kind.per_dataset else [None]):
            try:
                written[kind.name] += kind.write(run, out_dir, dataset, points=points, n=n)
            except Exception as error:  # noqa: BLE001 - one broken figure must not stop the rest
                if strict:
                    raise
                warnings.warn(f"figure {kind.name} skipped: {type(error).__name__}: {error}",
                              stacklevel=2)
    return written
