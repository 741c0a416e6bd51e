"""The subcommands: each turns parsed arguments into a call of the Python API, prints progress
and results, and returns the exit code."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..registry import KIND_TITLES, KINDS, PluginError, Registry, load_registry
from ..storage import shown
from .common import EXIT_CELLS_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError, names, say, seeds


def load_plugins(args: argparse.Namespace) -> Registry:
    try:
        registry = load_registry(args.plugins, strict=args.strict, warn=False)
    except PluginError as error:
        raise UsageError("plugin problems (--strict):\n  " + "\n  ".join(
            str(p) for p in error.problems)) from None
    for problem in registry.problems:
        say(f"warning: {problem}; skipped (--strict makes this fatal)")
    return registry


def _parse_setting(text: str) -> tuple[str, Any]:
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()  # a bare word such as relu


def cmd_check(args: argparse.Namespace, registry: Registry) -> int:
    import torch

    from ..device import resolve_device
    from ..testing import check_registered, summarise

    torch.set_num_threads(1)
    registry.get("flow", args.flow)
    registry.get("base", args.base)
    try:
        shape = tuple(int(d) for d in args.shape.split(","))
    except ValueError:
        raise UsageError(f"--shape takes integers like 2 or 3,4,4; got {args.shape!r}") from None
    hparams = dict(_parse_setting(item) for item in args.set)
    device = resolve_device(args.device)
    report = check_registered(args.flow, args.base, shape, registry=registry, seed=args.seed,
                              hparams=hparams, device=device)
    lines = report.results if args.verbose else summarise(report)
    print(f"flowbench check {args.flow} --base {args.base} --shape {args.shape}"
          f"{''.join(f' --set {s}' for s in args.set)} (float64, seed {args.seed}, "
          f"on {device})")
    for line in lines:
        print(line)
    failures = summarise(type(report)(report.failures)) if report.failures else []
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for line in failures:
            print(f"  {line}")
        return EXIT_CELLS_FAILED
    print(f"\nall {len(lines)} checks passed")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, registry: Registry) -> int:
    records = registry.as_records()
    if args.json:
        print(json.dumps({
            "items": records,
            "plugins": registry.plugins,
            "problems": [vars(p) for p in registry.problems],
        }, indent=2))
        return EXIT_OK
    import pandas as pd

    from ..report.tables import text_table

    for kind in KINDS:
        rows = [r for r in records if r["kind"] == kind]
        if kind == "family" and not rows:
            continue
        print(f"{KIND_TITLES[kind]} ({len(rows)}):")
        if rows:
            frame = pd.DataFrame(rows)[["name", "plugin", "description"]]
            print("  " + text_table(frame).replace("\n", "\n  "))
            _print_notes(rows)
        print()
    if registry.problems:
        print(f"{len(registry.problems)} plugin problem(s), see the warnings above")
    return EXIT_OK


def _print_notes(rows: list[dict[str, Any]]) -> None:
    """Each item's ``notes`` (suites: where they depart from their papers), wrapped."""
    import textwrap

    for row in rows:
        if row.get("notes"):
            print(textwrap.fill(f"{row['name']}: {row['notes']}", width=100,
                                initial_indent="\n  ", subsequent_indent="    "))


def _cell_line(record: dict[str, Any], done: int, total: int) -> str:
    if record["status"] != "ok":
        text = record.get("message", "")
    elif record.get("test_bpd") is not None:
        text = f"test NLL {record['test_bpd']:.4f} bits/dim"
    else:
        text = f"test NLL {record['test_nll']:.4f} nats"
    return (f"[{done}/{total}] {record['dataset']} {record['flow']}/{record['base']} "
            f"seed {record['seed']}: {record['status']}, {text} "
            f"({record.get('wall_seconds', 0):.1f} s)")


def _check_flags(args: argparse.Namespace) -> None:
    """The execution flags, checked with their own names before anything starts."""
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    if getattr(args, "threads", 1) < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.backend == "dask" and not args.scheduler:
        raise UsageError("--backend dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    if args.scheduler and args.backend != "dask":
        raise UsageError("--scheduler is for --backend dask")
    if getattr(args, "cell_timeout", None) is not None and args.cell_timeout <= 0:
        raise UsageError(f"--cell-timeout must be positive, got {args.cell_timeout}")
    every = getattr(args, "checkpoint_every", 0.0)
    if not (math.isfinite(every) and every >= 0):
        raise UsageError(f"--checkpoint-every must be >= 0 minutes (0: never), got {every}")
    if getattr(args, "trials", 1) < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if getattr(args, "storage", None) and args.command == "run" and not args.tuned:
        raise UsageError("--storage is for --tuned runs (and for `flowbench tune`)")


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    from tqdm.auto import tqdm

    from ..backends import default_jobs
    from ..report.tables import format_nll_table, nll_summary
    from ..runs import run_suite
    from . import STARTED

    _check_flags(args)
    if args.compile:
        from ..compile import compile_unavailable_reason

        reason = compile_unavailable_reason()
        if reason is not None:
            say(f"--compile: {reason}; cells will train eagerly")
    # disable=None: a bar on a terminal; one line per finished cell in logs and pipes
    bar = tqdm(unit="cell", dynamic_ncols=True, disable=None, desc=args.suite)

    def on_record(record: dict[str, Any], done: int, total: int) -> None:
        line = _cell_line(record, done, total)
        if bar.disable:
            say(line)
            return
        bar.total, bar.n = total, done
        bar.refresh()
        bar.set_postfix_str(f"{record['dataset']} {record['flow']}/{record['base']}: "
                            f"{record['status']}")
        if record["status"] != "ok":
            tqdm.write(line, file=sys.stderr)

    def message(text: str) -> None:
        if bar.disable:
            say(text)
        else:
            tqdm.write(f"flowbench: {text}", file=sys.stderr)

    try:
        run = run_suite(
            args.suite, datasets=names(args.datasets), flows=names(args.flows),
            bases=names(args.bases), seeds=seeds(args.seeds), steps=args.steps, out=args.out,
            results_dir=args.results_dir, fresh=args.fresh, jobs=args.jobs,
            threads=args.threads, retry_failed=args.retry_failed, measure=not args.no_measure,
            report=not args.no_report, tuned=args.tuned, storage=args.storage,
            compile=args.compile, backend=args.backend, scheduler=args.scheduler,
            cell_timeout=args.cell_timeout, registry=registry, say=message,
            device=args.device, precision=args.precision,
            on_record=on_record, checkpoint_every=args.checkpoint_every,
            progress=not bar.disable and (args.jobs or default_jobs()) == 1, started=STARTED)
    finally:
        bar.close()
    print(format_nll_table(nll_summary(run.records)))
    print(f"\nrun folder: {run.folder}  (results.csv, cells.jsonl, config.json, metadata.json)")
    if run.report is not None:
        print(f"report: {run.report} (and report.md, figures/, tables/ beside it)")
    say(f"wall {sum(run.phase_seconds.values()):.0f} s: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in run.phase_seconds.items()))
    if run.interrupted:
        say(f"interrupted: {len(run.records)}/{len(run.plan.cells)} cells finished and saved; "
             "run the same command again to resume")
        return EXIT_INTERRUPTED
    if run.not_ok:
        say(f"{len(run.not_ok)} cell(s) did not finish ok: " + ", ".join(
            f"{r['cell_id']} ({r['status']}: {r.get('message', '')})" for r in run.not_ok[:5])
            + (" ..." if len(run.not_ok) > 5 else ""))
        return EXIT_CELLS_FAILED
    return EXIT_OK


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def cmd_tune(args: argparse.Namespace, registry: Registry) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from ..report.tables import text_table
    from ..runs import tune_suite

    _check_flags(args)
    bar = tqdm(desc="studies", unit="task", dynamic_ncols=True, disable=None)

    def on_study(summary: dict[str, Any]) -> None:
        if bar.disable:
            say(f"{summary['study']}: best val NLL {summary['best_val_nll']:.4f} "
                 f"({summary['complete']} complete, {summary['pruned']} pruned, "
                 f"{summary['failed']} failed; {summary['seconds']:.0f} s)")
        else:
            bar.update(1)
            bar.set_postfix_str(summary["study"])

    try:
        tuning = tune_suite(
            args.suite, datasets=names(args.datasets), flows=names(args.flows),
            bases=names(args.bases), trials=args.trials, timeout=args.timeout,
            storage=args.storage, pruner=args.pruner, steps=args.steps,
            results_dir=args.results_dir, jobs=args.jobs, backend=args.backend,
            scheduler=args.scheduler, registry=registry, say=say, on_study=on_study,
            device=args.device, precision=args.precision)
    finally:
        bar.close()
    if tuning.interrupted:
        say("interrupted: finished trials are in the storage, unfinished ones marked failed; "
             "run the same command to continue")
        return EXIT_INTERRUPTED
    print(text_table(pd.DataFrame([{
        "study": s["study"], "complete": s["complete"], "pruned": s["pruned"],
        "failed": s["failed"], "best val NLL": round(s["best_val_nll"], 4),
        "best settings": ", ".join(
            f"{k}={_short(v)}"
            for k, v in {**s["flow_hparams"], **s["base_hparams"], **s["train"]}.items()),
    } for s in tuning.studies])))
    if tuning.summary_csv is not None:
        print(f"\nstudies: {tuning.storage}  (summary: {tuning.summary_csv})")
    print(f"train with the best settings: flowbench run --suite {args.suite} --tuned"
          + (f" --storage {shown(args.storage)}" if args.storage else ""))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, registry: Registry) -> int:
    from ..runs import write_report

    try:
        result = write_report(args.runs, args.out, figures=not args.no_figures,
                              figure_kinds=names(args.figures),
                              figure_datasets=names(args.figure_datasets))
    except ValueError as error:  # unknown figure kinds and the like (a damaged file says more)
        raise UsageError(str(error)) from None
    print(f"report: {result.html} (and report.md, figures/, tables/ beside it)")
    return EXIT_OK


