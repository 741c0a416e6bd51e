"""Reports of runs: tables, figures and documents built from a run folder's records.

``tables`` (numeric tables and the terminal NLL table), ``tails`` (cells whose mean one test
point dominates), ``numbers`` (how numbers are written), ``display`` (tables as people read them),
``figures`` (a package; its ``FIGURE_KINDS`` lists every kind), ``document`` (markdown and
self-contained HTML), ``sections`` (one run's report), ``compare`` (several runs), ``build``
(``write_report``), ``files`` (atomic writes), ``rundata`` (reading a run folder back).
"""

from .tables import format_nll_table, nll_summary

__all__ = ["format_nll_table", "nll_summary"]
