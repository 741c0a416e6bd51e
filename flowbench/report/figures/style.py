"""The look of every figure, the facet grid, and the one way a figure reaches disk.

:func:`write_figure` is the only place the plot style is applied: it enters :func:`plot_style`
once, builds the figure inside it and saves it inside it (tick labels are created lazily at draw
time, so saving outside the style would change them). Figure builders never apply the style
themselves; call them inside ``with plot_style():`` to see what the written PNG shows.

Figures are plain ``matplotlib.figure.Figure`` objects on their own Agg canvas, never registered
with pyplot (so none stays open and the user's backend is untouched); the style goes through
``matplotlib.rc_context``, so global ``rcParams`` are unchanged afterwards.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...store import write_atomic

DPI = 110
PANEL = 1.75            # inches: width of one 2-D panel
DENSITY_CMAP = "magma"
DATA_COLOR = "0.55"
MODEL_COLOR = "#d6604d"
FAIL_COLOR = "#b2182b"
NOT_OK = "diverged / failed"

#: how many ``plot_style`` blocks are open right now (tests check figures are drawn at depth 1)
_open_styles = 0


def _rc() -> dict[str, Any]:
    import seaborn as sns  # imported here: `import flowbench` stays light

    rc: dict[str, Any] = {}
    rc.update(sns.axes_style("ticks"))
    rc.update(sns.plotting_context("paper", font_scale=0.95))
    rc.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.facecolor": "white",
        "savefig.facecolor": "white", "axes.titlesize": 7.5, "axes.labelsize": 7.5,
        "xtick.labelsize": 6.5, "ytick.labelsize": 6.5, "legend.fontsize": 6.5,
        "legend.title_fontsize": 7, "figure.titlesize": 8.5, "axes.titlepad": 3.0,
        "lines.linewidth": 1.2, "legend.frameon": False, "image.interpolation": "nearest",
        "path.simplify": True,
    })
    return rc


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """The seaborn look ("ticks", "paper" context), for the duration of the block only."""
    global _open_styles
    with rc_context(_rc()):
        _open_styles += 1
        try:
            yield
        finally:
            _open_styles -= 1


def style_depth() -> int:
    """How many :func:`plot_style` blocks enclose the caller (1 while a figure is written)."""
    return _open_styles


def write_figure(build: Callable[[], Figure | None], path: Path) -> list[Path]:
    """Build a figure and write it as PNG to ``path`` (atomically), both inside the plot style.
    ``[]`` when ``build`` returns ``None`` (the run lacks what the figure needs)."""
    with plot_style():
        fig = build()
        if fig is None:
            return []
        try:
            write_atomic(Path(path), lambda handle: fig.savefig(handle, dpi=DPI, format="png"))
        finally:
            fig.clear()  # release artists; the figure was never registered with pyplot
    return [Path(path)]


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.03, hspace=0.03)
    return fig


@dataclass
class Grid:
    """A figure of ``count`` facets, row by row; slots past ``count`` are left empty."""

    fig: Figure
    axes: list[Any]
    nrows: int
    ncols: int

    def legend(self, handles: list) -> None:
        """The legend in the first empty slot of the grid, else below the facets."""
        count = len(self.axes)
        if count < self.nrows * self.ncols:
            gs = self.axes[0].get_subplotspec().get_gridspec()
            ax = self.fig.add_subplot(gs[count // self.ncols, count % self.ncols:])
            ax.axis("off")
            ax.legend(handles=handles, loc="center left", borderaxespad=0.0)
        else:
            self.fig.legend(handles=handles, loc="outside lower center",
                            ncols=min(len(handles), 4))

    def first_column(self) -> list[Any]:
        return [ax for i, ax in enumerate(self.axes) if i % self.ncols == 0]

    def bottom_row(self) -> list[Any]:
        return self.axes[-self.ncols:]


def grid(count: int, width: float, height: float, *, max_cols: int = 4,
         extra_height: float = 0.0) -> Grid:
    """``count`` facets of ``width`` x ``height`` inches, up to ``max_cols`` per row, plus
    ``extra_height`` inches (room for a title)."""
    ncols = min(max_cols, max(count, 1))
    nrows = max(math.ceil(count / ncols), 1)
    fig = new_figure(ncols * width, nrows * height + extra_height)
    gs = fig.add_gridspec(nrows, ncols)
    axes = [fig.add_subplot(gs[i // ncols, i % ncols]) for i in range(count)]
    return Grid(fig, axes, nrows, ncols)


def no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
        spine.set_color("0.6")


def note(ax, text: str) -> None:
    """A panel with no picture: say why in its middle."""
    no_ticks(ax)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, color=FAIL_COLOR,
            transform=ax.transAxes)


def palette(flows: Sequence[str], bases: Sequence[str]) -> dict[tuple[str, str], tuple]:
    """One colour per (flow, base): a hue per flow, darker to lighter shades per base."""
    import seaborn as sns

    hues = sns.color_palette("colorblind", max(len(flows), 1))
    shades = np.linspace(0.30, 0.62, len(bases)) if len(bases) > 1 else [None]
    colors = {}
    for flow, hue in zip(flows, hues, strict=False):  # hues has one colour even for no flows
        h, light, s = colorsys.rgb_to_hls(*hue)
        for base, shade in zip(bases, shades, strict=False):  # shades is [None] for no bases
            colors[(flow, base)] = hue if shade is None else colorsys.hls_to_rgb(h, shade, s)
    return colors


def label(flow: str, base: str) -> str:
    return f"{flow} · {base}"
