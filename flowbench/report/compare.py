"""Compare runs: align their cells, give the differences, flag the ones beyond seed noise.

Cells are aligned by (dataset, flow, base) over seeds. ``delta`` is the other run's mean test NLL
minus the baseline's (nats; negative = the other run is better). A difference is *flagged* when it
exceeds the seed spread, ``sqrt((std_base^2 + std_other^2) / 2)`` of the two runs' test NLL over
seeds; with fewer than two ok seeds on either side there is no spread to compare with, and the
flag is left empty. Differences in machine or package versions are reported as warnings: speed,
and at times numbers, depend on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .rundata import RunData
from .numbers import fixed
from .tables import KEYS, nll_summary
from .tails import marked

METADATA_KEYS = ("host", "platform", "machine", "processor", "cpu_count", "python",
                 "torch_threads")


def compare(base: RunData, other: RunData) -> pd.DataFrame:
    """One row per (dataset, flow, base) present in both runs."""
    left = nll_summary(base.records)
    right = nll_summary(other.records)
    merged = left.merge(right, on=KEYS, suffixes=("_base", "_other"), how="inner")
    for side in ("base", "other"):  # records written before the tail fields: not flagged
        merged[f"tail_flagged_{side}"] = merged[f"tail_flagged_{side}"].fillna(0).astype(int)
    spread = np.sqrt((merged["test_nll_std_base"] ** 2 + merged["test_nll_std_other"] ** 2) / 2)
    delta = merged["test_nll_mean_other"] - merged["test_nll_mean_base"]
    result = pd.DataFrame({
        "dataset": merged["dataset"], "flow": merged["flow"], "base": merged["base"],
        "seeds_ok_base": merged["ok_base"], "seeds_ok_other": merged["ok_other"],
        "test_nll_base": merged["test_nll_mean_base"],
        "test_nll_other": merged["test_nll_mean_other"],
        "delta": delta, "seed_spread": spread,
        "tail_flagged_base": merged["tail_flagged_base"],
        "tail_flagged_other": merged["tail_flagged_other"],
        "tail_notes_base": merged["tail_notes_base"],
        "tail_notes_other": merged["tail_notes_other"],
    })
    result["beyond_spread"] = [
        ("yes" if abs(d) > s else "no") if np.isfinite(s) and np.isfinite(d) else ""
        for d, s in zip(delta, spread, strict=True)
    ]
    return result


def compare_display(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as people read it: NLLs and deltas in :mod:`.numbers` form, ``†`` on the
    side whose mean is dominated by a few test points (its sentences: :func:`compare_notes`)."""
    shown = pd.DataFrame({
        **{k: table[k] for k in KEYS + ["seeds_ok_base", "seeds_ok_other"]},
        "test_nll_base": [marked(fixed(v), f > 0) for v, f in
                          zip(table["test_nll_base"], table["tail_flagged_base"], strict=True)],
        "test_nll_other": [marked(fixed(v), f > 0) for v, f in
                           zip(table["test_nll_other"], table["tail_flagged_other"],
                               strict=True)],
        "delta": table["delta"].map(lambda v: fixed(v, signed=True)),
        "seed_spread": table["seed_spread"].map(fixed),
        "beyond_spread": table["beyond_spread"],
    })
    return shown.set_index(KEYS)


def compare_notes(table: pd.DataFrame, base: str, other: str) -> list[str]:
    """One sentence per flagged cell of either run, prefixed by the run's name."""
    notes = []
    for side, name in (("base", base), ("other", other)):
        for text in table[f"tail_notes_{side}"].fillna(""):
            notes += [f"{name}: {line}" for line in str(text).splitlines() if line]
    return notes


def unmatched(base: RunData, other: RunData) -> tuple[list[str], list[str]]:
    """Combinations only the baseline has, and only the other run has."""
    def combos(run: RunData) -> set[str]:
        return {f"{r['dataset']} {r['flow']}/{r['base']}" for r in run.records}
    a, b = combos(base), combos(other)
    return sorted(a - b), sorted(b - a)


def _last_session(run: RunData) -> dict[str, Any]:
    return run.metadata[-1] if run.metadata else {}


def metadata_warnings(runs: list[RunData]) -> list[str]:
    """One line per machine/package fact that differs between the runs' latest sessions."""
    warnings = []
    base = _last_session(runs[0])
    for run in runs[1:]:
        other = _last_session(run)
        for key in METADATA_KEYS:
            if base.get(key) != other.get(key):
                warnings.append(f"{key} differs: {runs[0].name} has {base.get(key)!r}, "
                                f"{run.name} has {other.get(key)!r}")
        packages_a, packages_b = base.get("packages", {}), other.get("packages", {})
        for name in sorted(set(packages_a) | set(packages_b)):
            if packages_a.get(name) != packages_b.get(name):
                warnings.append(f"package {name} differs: {runs[0].name} has "
                                f"{packages_a.get(name)}, {run.name} has {packages_b.get(name)}")
        if runs[0].config.get("train") != run.config.get("train"):
            warnings.append(f"training settings differ: {runs[0].name} "
                            f"{runs[0].config.get('train')}"
                            f" vs {run.name} {run.config.get('train')}")
    return warnings
