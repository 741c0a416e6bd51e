"""Reports of runs: tables, figures and documents built from a run folder's records.

``tables`` (numeric tables and the terminal NLL table), ``tails`` (cells whose mean one test
point dominates), ``numbers`` (how numbers are written), ``display`` (tables as people read them),
``figures`` (a package; its ``FIGURE_KINDS`` lists every kind), ``document`` (markdown and
self-contained HTML), ``sections`` (one run's report), ``compare`` (several runs), ``build``
(``write_report``), ``files`` (atomic writes), ``rundata`` (reading a run folder back).
"""

from typing import Any

__all__ = ["format_nll_table", "nll_summary"]


def __getattr__(name: str) -> Any:
    # imported on first use, so `from flowbench.report.figures import FIGURE_KINDS` (the CLI's
    # --figures choices) does not load pandas
    if name in __all__:
        from . import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
