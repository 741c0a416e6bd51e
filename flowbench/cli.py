"""``flowbench`` command line: ``list`` what is registered, ``run`` a suite, ``report`` runs,
``check`` a flow.

Exit codes: 0 every cell ok (every check passed); 1 some cell failed or diverged (some check
failed); 2 usage error (bad name, bad option, broken plugin with ``--strict``); 130 interrupted
(finished cells are kept; re-run to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .registry import KINDS, PluginError, Registry, UnknownNameError, load_registry

EXIT_OK, EXIT_CELLS_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _process_age() -> float:
    """Seconds since this process started (Linux ``/proc``), so start-up and imports count;
    elsewhere 0."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
        return max(0.0, time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


def _say(message: str) -> None:
    print(f"flowbench: {message}", file=sys.stderr, flush=True)


def _names(values: Sequence[str] | None) -> list[str] | None:
    """``--flows a,b --flows c`` -> ``[a, b, c]``."""
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def _seeds(values: Sequence[str] | None) -> list[int] | None:
    names = _names(values)
    if names is None:
        return None
    try:
        return [int(name) for name in names]
    except ValueError:
        raise UsageError(f"--seeds takes integers like 0,1,2; got {','.join(values)!r}") from None


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "-p", "--plugin", action="append", dest="plugins", metavar="PLUGIN",
        default=default if suppress else [],
        help="load a plugin without installing it: a path to a .py file or a module name "
             "(repeatable)")
    parser.add_argument(
        "--strict", action="store_true", default=default if suppress else False,
        help="make any plugin problem (import error, bad spec, duplicate name) fatal")
    parser.add_argument(
        "--data-dir", type=Path, default=default,
        help="where datasets you already have live (MNIST, Fashion-MNIST, CIFAR-10 files); "
             "the same as setting FLOWBENCH_DATA_DIR")


def _execution(parser: argparse.ArgumentParser, cell_timeout: bool = True) -> None:
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="local worker processes (default: CPU cores)")
    parser.add_argument("--backend", choices=("local", "dask"), default="local",
                        help="local processes (default) or a Dask cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address for --backend dask, e.g. tcp://host:8786")
    if cell_timeout:
        parser.add_argument("--cell-timeout", type=float, metavar="SECONDS",
                            help="a cell still training after this long is recorded as "
                                 "'timeout' and the run goes on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowbench",
        description="Benchmark normalizing-flow architectures (NICE, RealNVP, Glow, plugins) "
                    "against each other.",
        epilog="examples:\n  flowbench list\n  flowbench run --suite toy2d\n"
               "  flowbench run --suite toy2d --flows realnvp --datasets two_moons --seeds 0\n"
               "  flowbench run --suite digits\n"
               "  flowbench tune --suite toy2d --trials 20 && flowbench run --suite toy2d --tuned\n"
               "  flowbench report results/RUN_A results/RUN_B\n"
               "  flowbench -p my_flow.py check myflow\n"
               "  flowbench -p my_flow.py run --suite toy2d --flows myflow",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowbench {__version__}")
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="show registered flows, bases, datasets, suites")
    _common(listing, suppress=True)
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser(
        "run", help="train and evaluate a suite; resumes an unfinished run of the same command",
        description="Train every dataset x flow x base x seed cell of a suite, record each as it "
                    "finishes, and print the NLL table. Running the same command again resumes: "
                    "finished cells are not retrained.",
    )
    _common(run, suppress=True)
    run.add_argument("--suite", required=True, help="suite name (see `flowbench list`)")
    run.add_argument("--datasets", action="append", metavar="A,B", help="only these datasets")
    run.add_argument("--flows", action="append", metavar="A,B", help="only these flows")
    run.add_argument("--bases", action="append", metavar="A,B", help="only these bases")
    run.add_argument("--seeds", action="append", metavar="0,1,2", help="model seeds to run")
    run.add_argument("--steps", type=int, help="training steps per cell (overrides the suite)")
    run.add_argument("--out", type=Path,
                     help="run folder (default: results/<suite>-<timestamp>, or the latest "
                          "folder under --results-dir holding this same run, to resume it)")
    run.add_argument("--results-dir", type=Path, default=Path("results"),
                     help="where default run folders go (default: ./results)")
    run.add_argument("--fresh", action="store_true",
                     help="start a new run folder even if a matching run exists")
    run.add_argument("--retry-failed", action="store_true",
                     help="re-run cells recorded as failed (diverged cells stay as they are)")
    run.add_argument("--no-measure", action="store_true",
                     help="skip the reference baselines and the log-det cost study this time "
                          "(per-cell speed is still measured; a later run without this flag "
                          "adds them to the same run folder)")
    run.add_argument("--no-report", action="store_true",
                     help="skip writing report.md / report.html / figures at the end")
    run.add_argument("--tuned", action="store_true",
                     help="train each cell with its study's best settings (see `flowbench tune`)")
    run.add_argument("--storage", help="Optuna storage of the studies for --tuned (default: "
                                       "RESULTS_DIR/<suite>-tuning/optuna.journal)")
    run.add_argument("--compile", action="store_true",
                     help="train through torch.compile (faster steps after a compile of "
                          "seconds per architecture; a separate run, since compiled arithmetic "
                          "differs in the last bits; falls back to eager with a message where "
                          "compilation is unavailable)")
    _execution(run)
    run.add_argument("--threads", type=int, default=1,
                     help="torch threads per cell (default 1: tiny models gain nothing from "
                          "more, and results then match for any --jobs)")

    report = commands.add_parser(
        "report", help="write report.md, report.html, figures and tables for runs",
        description="With one run folder: its report (NLL, speed and log-det tables, figures), "
                    "written into the folder. With several: a comparison against the first "
                    "(aligned cells, deltas, differences beyond the seed spread), written to "
                    "--out (default: FIRST/comparison).",
    )
    _common(report, suppress=True)
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    report.add_argument("--out", type=Path, help="where to write the report")
    report.add_argument("--no-figures", action="store_true", help="tables only (faster)")
    report.add_argument("--figures", action="append", metavar="KIND,...",
                        help="only these figure kinds: nll_spread, speed_vs_nll, "
                             "learning_curves, density_grid, samples_vs_data, flow_steps, "
                             "logdet_cost")
    report.add_argument("--figure-datasets", action="append", metavar="A,B",
                        help="per-dataset figures only for these datasets")

    tune = commands.add_parser(
        "tune", help="Optuna studies per dataset x flow x base, on validation NLL",
        description="One study per (dataset, flow, base) of the suite, named "
                    "SUITE/DATASET/FLOW/BASE: seeded TPE over the flow's and base's search "
                    "spaces and the suite's training space, pruning on validation NLL during "
                    "training; the test split is never used. Re-running continues the studies "
                    "up to --trials finished trials each; several tuners (on one or many "
                    "machines) can share one --storage.",
    )
    _common(tune, suppress=True)
    tune.add_argument("--suite", required=True)
    tune.add_argument("--datasets", action="append", metavar="A,B")
    tune.add_argument("--flows", action="append", metavar="A,B")
    tune.add_argument("--bases", action="append", metavar="A,B")
    tune.add_argument("--trials", type=int, default=20,
                      help="finished trials wanted per study (default 20)")
    tune.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="stop adding trials to a study after this long")
    tune.add_argument("--storage", help="Optuna storage: a journal file path (default: "
                                        "RESULTS_DIR/<suite>-tuning/optuna.journal) or a "
                                        "database URL such as postgresql://user@host/db")
    tune.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    tune.add_argument("--steps", type=int, help="override the suite's training steps")
    tune.add_argument("--results-dir", type=Path, default=Path("results"))
    _execution(tune, cell_timeout=False)

    check = commands.add_parser(
        "check", help="run the conformance checks on a flow (yours, with -p, or a built-in)",
        description="Invertibility and log-det against the brute-force Jacobian (float64; the "
                    "whole flow and every layer; at initialisation, after training steps and "
                    "after a random perturbation), normalisation and sampling in 2-D, state-dict "
                    "reload into a differently seeded build, and determinism under a seed. One "
                    "line per check with its error and tolerance; exit 1 if any fails.",
    )
    _common(check, suppress=True)
    check.add_argument("flow", help="flow name (see `flowbench list`)")
    check.add_argument("--base", default="normal", help="base distribution (default: normal)")
    check.add_argument("--shape", default="2", metavar="D[,...]",
                       help="event shape, e.g. 2 or 5 (default 2: adds the density checks)")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a hyperparameter, e.g. --set layers=2 (repeatable)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("-v", "--verbose", action="store_true",
                       help="one line per layer, not just the worst per check")
    return parser


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

    from .api import HyperparameterError
    from .testing import check_registered, summarise

    torch.set_num_threads(1)
    registry.get("flow", args.flow)
    registry.get("base", args.base)
    try:
        shape = tuple(int(d) for d in args.shape.split(","))
    except ValueError:
        raise UsageError(f"--shape takes integers like 2 or 3,4,4; got {args.shape!r}") from None
    hparams = dict(_parse_setting(item) for item in args.set)
    try:
        report = check_registered(args.flow, args.base, shape, registry=registry,
                                  seed=args.seed, hparams=hparams)
    except HyperparameterError as error:
        raise UsageError(str(error)) from None
    lines = report.results if args.verbose else summarise(report)
    print(f"flowbench check {args.flow} --base {args.base} --shape {args.shape}"
          f"{''.join(f' --set {s}' for s in args.set)} (float64, seed {args.seed})")
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


def _load_registry(args: argparse.Namespace) -> Registry:
    try:
        registry = load_registry(args.plugins, strict=args.strict, warn=False)
    except PluginError as error:
        raise UsageError("plugin problems (--strict):\n  " + "\n  ".join(
            str(p) for p in error.problems)) from None
    for problem in registry.problems:
        _say(f"warning: {problem}; skipped (--strict makes this fatal)")
    return registry


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

    from .report.tables import text_table

    for kind in KINDS:
        rows = [r for r in records if r["kind"] == kind]
        print(f"{kind}s ({len(rows)}):")
        if rows:
            frame = pd.DataFrame(rows)[["name", "plugin", "description"]]
            print("  " + text_table(frame).replace("\n", "\n  "))
        print()
    if registry.problems:
        print(f"{len(registry.problems)} plugin problem(s), see the warnings above")
    return EXIT_OK


def _find_matching_run(results_dir: Path, suite: str, config_hash: str) -> Path | None:
    from .store import RunStore

    candidates = []
    for folder in results_dir.glob(f"{suite}-*"):
        store = RunStore(folder)
        if store.exists():
            try:
                if store.read_config().get("config_hash") == config_hash:
                    candidates.append(folder)
            except (OSError, ValueError):
                continue
    return max(candidates, key=lambda p: p.name) if candidates else None


def _choose_folder(args: argparse.Namespace, plan: Any, config: dict[str, Any]) -> tuple[Path, bool]:
    """(folder, resuming)."""
    from .store import RunStore

    if args.out is not None:
        store = RunStore(args.out)
        if store.exists():
            existing = store.read_config()
            if existing.get("config_hash") != config["config_hash"]:
                differing = sorted(k for k in config if k not in ("plugins",)
                                   and existing.get(k) != config[k] and k != "config_hash")
                raise UsageError(
                    f"{args.out} holds a different run (differs in: {', '.join(differing)}); "
                    "choose another --out, or repeat that run's options to resume it")
            return args.out, True
        if args.out.exists() and any(args.out.iterdir()):
            raise UsageError(f"{args.out} exists, is not empty and is not a flowbench run "
                             "folder; choose another --out")
        return args.out, False
    if not args.fresh:
        match = _find_matching_run(args.results_dir, plan.suite, config["config_hash"])
        if match is not None:
            return match, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = args.results_dir / f"{plan.suite}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = args.results_dir / f"{plan.suite}-{stamp}-{suffix}"
    return folder, False


def _check_execution(args: argparse.Namespace) -> int:
    """Validate the shared execution options; the number of local workers."""
    from .runner import default_jobs

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1 or getattr(args, "threads", 1) < 1:
        raise UsageError(f"--jobs and --threads must be >= 1, got {jobs} and "
                         f"{getattr(args, 'threads', 1)}")
    if args.backend == "dask" and not args.scheduler:
        raise UsageError("--backend dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    if args.scheduler and args.backend != "dask":
        raise UsageError("--scheduler is for --backend dask")
    if getattr(args, "cell_timeout", None) is not None and args.cell_timeout <= 0:
        raise UsageError(f"--cell-timeout must be positive, got {args.cell_timeout}")
    return jobs


def _storage(args: argparse.Namespace, suite: str) -> str:
    from .tune import default_storage

    return args.storage or default_storage(args.results_dir, suite)


def _check_datasets(registry: Registry, plan: Any) -> None:
    """Load every dataset of the plan once, so missing files stop the run before any training."""
    from .api import load_dataset

    for name in plan.datasets:
        try:
            load_dataset(name, plan.data_seed, registry=registry)
        except FileNotFoundError as error:
            raise UsageError(str(error)) from None


def _tuned_plan(args: argparse.Namespace, registry: Registry, plan: Any) -> Any:
    """The plan with every cell's settings replaced by its study's best trial."""
    import dataclasses

    from .runner import plan_run
    from .tune import StudyMissing, best_settings

    storage = _storage(args, plan.suite)
    combos = [(d, f, b) for d in plan.datasets for f in plan.flows for b in plan.bases]
    try:
        best = best_settings(storage, plan.suite, combos)
    except StudyMissing as error:
        raise UsageError(str(error)) from None
    tuned = plan_run(registry, args.suite, list(plan.datasets), list(plan.flows),
                     list(plan.bases), list(plan.seeds), args.steps,
                     measure=not args.no_measure, tuned=best, compile=args.compile)
    studies = {summary["study"]: summary for summary in best.values()}
    return dataclasses.replace(tuned, tuning={"storage": storage, "studies": studies})


def cmd_tune(args: argparse.Namespace, registry: Registry) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from .report.tables import text_table
    from .runner import BackendError, PlanError, plan_run, run_tasks
    from .store import write_atomic
    from .tune import study_tasks, time_and_run

    jobs = _check_execution(args)
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    try:
        plan = plan_run(registry, args.suite, _names(args.datasets), _names(args.flows),
                        _names(args.bases), None, args.steps, measure=False)
    except PlanError as error:
        raise UsageError(str(error)) from None
    _check_datasets(registry, plan)
    suite = registry.spec("suite", args.suite)
    if not suite.train_space and not any(registry.spec("flow", f).search_space
                                         for f in plan.flows):
        raise UsageError(f"nothing to tune: the flows {list(plan.flows)} have no search_space "
                         f"and suite {args.suite!r} has no train_space")
    storage = _storage(args, plan.suite)
    tasks = study_tasks(plan, storage, args.trials, args.timeout, args.pruner,
                        workers=jobs if args.backend == "local" else 1)
    names = list(dict.fromkeys(task.name for task in tasks))
    where = f"dask {args.scheduler}" if args.backend == "dask" else \
        f"{min(jobs, len(tasks))} worker(s)"
    _say(f"tuning {len(names)} studies ({args.trials} trials each) in {storage}, {where}")
    bar = tqdm(total=len(tasks), desc="studies", unit="task", dynamic_ncols=True, disable=None)
    latest: dict[str, dict[str, Any]] = {}
    try:
        for _, summary in run_tasks([("study", time_and_run, (task,)) for task in tasks],
                                    plan.plugins, jobs, False, args.backend, args.scheduler):
            if summary["trials"] >= latest.get(summary["study"], {}).get("trials", -1):
                latest[summary["study"]] = summary
            line = (f"{summary['study']}: best val NLL {summary['best_val_nll']:.4f} "
                    f"({summary['complete']} complete, {summary['pruned']} pruned, "
                    f"{summary['failed']} failed; {summary['seconds']:.0f} s)")
            if bar.disable:
                _say(line)
            else:
                bar.update(1)
                bar.set_postfix_str(summary["study"])
    except BackendError as error:
        raise UsageError(str(error)) from None
    except KeyboardInterrupt:
        _say("interrupted: finished trials are in the storage; run the same command to continue")
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    summaries = [latest[name] for name in names if name in latest]
    frame = pd.DataFrame([{
        "study": s["study"], "complete": s["complete"], "pruned": s["pruned"],
        "failed": s["failed"], "best val NLL": round(s["best_val_nll"], 4),
        "best settings": ", ".join(f"{k}={_short(v)}" for k, v in
                                   {**s["flow_hparams"], **s["base_hparams"], **s["train"]}.items()),
    } for s in summaries])
    print(text_table(frame))
    if "://" not in storage or storage.startswith("sqlite"):
        csv = Path(storage.replace("sqlite:///", "")).with_name("studies.csv")
        write_atomic(csv, pd.DataFrame(summaries).to_csv(index=False))
        print(f"\nstudies: {storage}  (summary: {csv})")
    print(f"train with the best settings: flowbench run --suite {args.suite} --tuned"
          + (f" --storage {args.storage}" if args.storage else ""))
    return EXIT_OK


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    from tqdm.auto import tqdm

    from . import metadata
    from .report.tables import format_nll_table, nll_summary
    from .runner import BackendError, PlanError, execute, measure_costs, plan_run
    from .store import RunStore

    jobs = _check_execution(args)
    import torch

    torch.set_num_threads(args.threads)  # in-process cells and the cost measurements
    try:
        plan = plan_run(registry, args.suite, _names(args.datasets), _names(args.flows),
                        _names(args.bases), _seeds(args.seeds), args.steps,
                        measure=not args.no_measure, compile=args.compile)
        if args.compile:
            from .compile import compile_unavailable_reason

            reason = compile_unavailable_reason()
            if reason is not None:
                _say(f"--compile: {reason}; cells will train eagerly")
        if args.tuned:
            plan = _tuned_plan(args, registry, plan)
        elif args.storage:
            raise UsageError("--storage is for --tuned runs (and for `flowbench tune`)")
    except PlanError as error:
        raise UsageError(str(error)) from None
    _check_datasets(registry, plan)
    config = {**plan.config(), "config_hash": plan.config_hash()}
    folder, resuming = _choose_folder(args, plan, config)
    store = RunStore(folder)
    if not resuming:
        store.write_config(config)
    store.add_session_metadata(metadata.collect({"jobs": jobs, "threads": args.threads}))
    already = {r["cell_id"] for r in store.records()}
    done_before = sum(c.cell_id in already for c in plan.cells)
    _say(f"{'resuming' if resuming else 'new'} run {folder}: {len(plan.cells)} cells "
         f"({done_before} already finished), {min(jobs, len(plan.cells))} worker(s)")

    # disable=None: a bar on a terminal; one line per finished cell in logs and pipes
    bar = tqdm(total=len(plan.cells), initial=done_before, desc=f"{plan.suite}", unit="cell",
               dynamic_ncols=True, disable=None)
    quiet_bar = bar.disable

    def report(record: dict[str, Any], done: int, total: int) -> None:
        if record["status"] != "ok":
            text = record.get("message", "")
        elif record.get("test_bpd") is not None:
            text = f"test NLL {record['test_bpd']:.4f} bits/dim"
        else:
            text = f"test NLL {record['test_nll']:.4f} nats"
        line = (f"[{done}/{total}] {record['dataset']} {record['flow']}/{record['base']} "
                f"seed {record['seed']}: {record['status']}, {text} "
                f"({record.get('wall_seconds', 0):.1f} s)")
        if quiet_bar:
            _say(line)
        else:
            bar.update(1)
            bar.set_postfix_str(f"{record['dataset']} {record['flow']}/{record['base']}: "
                                f"{record['status']}")
            if record["status"] != "ok":
                tqdm.write(line, file=sys.stderr)

    phases = {"start-up": _process_age()}
    clock = time.perf_counter()

    def phase_done(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock
        clock = now

    interrupted = False
    try:
        records = execute(plan, store, jobs=jobs, threads=args.threads,
                          retry_failed=args.retry_failed, progress=not quiet_bar and jobs == 1,
                          on_record=report, cell_timeout=args.cell_timeout,
                          backend=args.backend, scheduler=args.scheduler)
        bar.close()
        phase_done("training and evaluation")
        measure_costs(plan, store, registry, on_progress=lambda text: _say(f"measuring {text}"))
        phase_done("cost study")
    except BackendError as error:
        raise UsageError(str(error)) from None
    except KeyboardInterrupt:
        interrupted = True
        wanted = {c.cell_id for c in plan.cells}
        records = [r for r in store.records() if r["cell_id"] in wanted]
    finally:
        bar.close()

    store.write_table(records)
    summary = nll_summary(records)
    print(format_nll_table(summary))
    print(f"\nrun folder: {folder}  (results.csv, cells.jsonl, config.json, metadata.json)")
    phase_done("tables")
    if not interrupted and not args.no_report and records:
        page = _write_report([folder], None, figures=True)
        print(f"report: {page} (and report.md, figures/, tables/ beside it)")
        phase_done("report")
    store.update_session_metadata({"phase_seconds": phases})
    _say(f"wall {sum(phases.values()):.0f} s: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in phases.items()))
    if interrupted:
        _say(f"interrupted: {len(records)}/{len(plan.cells)} cells finished and saved; "
             "run the same command again to resume")
        return EXIT_INTERRUPTED
    bad = [r for r in records if r["status"] != "ok"]
    if bad:
        _say(f"{len(bad)} cell(s) did not finish ok: " + ", ".join(
            f"{r['cell_id']} ({r['status']}: {r.get('message', '')})" for r in bad[:5])
            + (" ..." if len(bad) > 5 else ""))
        return EXIT_CELLS_FAILED
    return EXIT_OK


def _write_report(runs: Sequence[Path], out: Path | None, figures: bool,
                  kinds: list[str] | None = None, datasets: list[str] | None = None) -> Path:
    from .report.build import write_report

    try:
        result = write_report(runs, out, figures=figures, figure_kinds=kinds,
                              figure_datasets=datasets)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return result.html


def cmd_report(args: argparse.Namespace, registry: Registry) -> int:
    from .store import RunStore

    for run in args.runs:
        if not RunStore(run).exists():
            raise UsageError(f"{run} is not a flowbench run folder (no config.json); "
                             "give folders written by `flowbench run`")
    page = _write_report(args.runs, args.out, not args.no_figures, _names(args.figures),
                         _names(args.figure_datasets))
    print(f"report: {page} (and report.md, figures/, tables/ beside it)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.data_dir is not None:  # workers inherit the environment
        os.environ["FLOWBENCH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    try:
        registry = _load_registry(args)
        handler = {"list": cmd_list, "run": cmd_run, "report": cmd_report,
                   "check": cmd_check, "tune": cmd_tune}[args.command]
        return handler(args, registry)
    except (UsageError, UnknownNameError) as error:
        _say(f"error: {error}")
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
