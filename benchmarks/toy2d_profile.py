"""Where the wall time of ``flowbench run --suite toy2d`` goes.

    python benchmarks/toy2d_profile.py                      # runs the suite into a temp folder
    python benchmarks/toy2d_profile.py RUN_DIR [RUN_DIR2]   # profiles finished run folders

Prints a markdown profile per run folder: the run's phases (start-up and imports, training and
evaluation, the log-det cost study, tables, report; recorded by ``flowbench run`` in
metadata.json, or for older folders inferred from file times), then, summed over cells (CPU
seconds of the workers), what each cell spent on set-up (data, oracle, building the flow),
optimisation steps, validation, final evaluation, speed measurement and the rest; the median
training step per flow; and the import time of the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _mtime(folder: Path, name: str) -> float | None:
    path = folder / name
    return path.stat().st_mtime if path.exists() else None


def phases(folder: Path, cells: list[dict]) -> tuple[dict[str, float], str]:
    sessions = json.loads((folder / "metadata.json").read_text())["sessions"]
    recorded = [s["phase_seconds"] for s in sessions if "phase_seconds" in s]
    if recorded:
        return recorded[-1], "recorded by flowbench run"
    # older run folders: the boundaries are the files each phase writes last
    start = _mtime(folder, "config.json")
    first = min(c["started_at"] for c in cells)
    last = max(c["started_at"] + c["wall_seconds"] for c in cells)
    cost_end = max(t for t in (_mtime(folder, "logdet_cost.jsonl"),
                               _mtime(folder, "linear_cost.jsonl"), last) if t)
    report_end = _mtime(folder, "report.html") or cost_end
    inferred = {"start-up (after config.json)": 0.0, "references before first cell": first - start,
                "training and evaluation": last - first, "cost study": cost_end - last,
                "report": report_end - cost_end}
    return inferred, "inferred from file times (start-up not included)"


def cell_profile(cells: list[dict]) -> dict[str, float]:
    parts = {"set-up": "setup_seconds", "optimisation steps": "train_seconds",
             "validation (model selection)": "eval_seconds",
             "final evaluation": "final_eval_seconds", "speed measurement": "speed_seconds"}
    total = sum(c["wall_seconds"] for c in cells)
    out = {}
    for label, key in parts.items():
        if any(key in c for c in cells):
            out[label] = sum(c.get(key, 0.0) or 0.0 for c in cells)
    out["other (serialisation, bookkeeping)"] = total - sum(out.values())
    out["all cells"] = total
    return out


def profile(folder: Path) -> str:
    cells = [json.loads(line) for line in (folder / "cells.jsonl").read_text().splitlines()
             if line.strip()]
    run_phases, source = phases(folder, cells)
    wall = sum(run_phases.values())
    lines = [f"## {folder}", "", f"Phases ({source}): {wall:.1f} s wall", "",
             "| phase | seconds | share |", "|---|---|---|"]
    lines += [f"| {name} | {seconds:.1f} | {seconds / wall:.0%} |"
              for name, seconds in run_phases.items()]
    references = [json.loads(line) for line in (folder / "references.jsonl").read_text()
                  .splitlines()] if (folder / "references.jsonl").exists() else []
    fitted = sum(r.get("fit_seconds", 0.0) or 0.0 for r in references)
    lines += ["", f"Cells ({len(cells)}; CPU seconds summed over workers; references fitted in "
                  f"{fitted:.1f} s besides):", "",
              "| part | seconds | share |", "|---|---|---|"]
    parts = cell_profile(cells)
    for name, seconds in parts.items():
        lines.append(f"| {name} | {seconds:.1f} | {seconds / parts['all cells']:.0%} |")
    lines += ["", "| flow | cells | optimisation s | median step ms |", "|---|---|---|---|"]
    for flow in dict.fromkeys(c["flow"] for c in cells):
        mine = [c for c in cells if c["flow"] == flow and c.get("train_step_seconds_median")]
        lines.append(f"| {flow} | {len(mine)} | {sum(c['train_seconds'] for c in mine):.1f} | "
                     f"{1e3 * statistics.median(c['train_step_seconds_median'] for c in mine):.3f}"
                     " |")
    return "\n".join(lines) + "\n"


def import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import flowbench.cli, torch"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="finished run folders")
    args = parser.parse_args()
    runs = args.runs
    if not runs:
        out = Path(tempfile.mkdtemp(prefix="toy2d-profile-")) / "run"
        start = time.perf_counter()
        subprocess.run(["flowbench", "run", "--suite", "toy2d", "--out", str(out)], check=True,
                       env={**os.environ})
        print(f"flowbench run --suite toy2d: {time.perf_counter() - start:.1f} s wall\n")
        runs = [out]
    for folder in runs:
        print(profile(folder))
    print(f"import flowbench.cli and torch in a fresh interpreter: {import_seconds():.2f} s")


if __name__ == "__main__":
    main()
