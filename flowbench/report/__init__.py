"""Tables (and, later, figures and documents) built from a run's records."""

from .tables import format_nll_table, nll_summary

__all__ = ["format_nll_table", "nll_summary"]
