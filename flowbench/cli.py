"""``flowbench`` command line: ``list`` what is registered, ``run`` a suite, ``tune`` it,
``report`` runs, ``check`` a flow. Argument parsing, progress printing and exit codes around
``flowbench.run_suite``, ``flowbench.tune_suite`` and ``flowbench.write_report``.

Exit codes: 0 every cell ok (every check passed); 1 some cell failed or diverged (some check
failed); 2 usage error (bad name, bad option, damaged or busy run folder, unusable storage,
broken plugin with ``--strict``); 130 interrupted (finished cells are kept; re-run to resume).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports: start-up counts them

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

from . import __version__  # noqa: E402
from .backends import BACKENDS  # noqa: E402
from .pruners import PRUNERS  # noqa: E402
from .registry import KINDS, PluginError, Registry, load_registry  # noqa: E402
from .storage import ACCEPTED  # noqa: E402

EXIT_OK, EXIT_CELLS_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


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


def figure_kinds() -> list[str]:
    from .report.figures import FIGURE_KINDS

    return list(FIGURE_KINDS)


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "-p", "--plugin", action="append", dest="plugins", metavar="PLUGIN",
        default=default if suppress else [],
        help="load a plugin without installing it: a path to a .py file, a suite file (.toml) "
             "or a module name (repeatable)")
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
    parser.add_argument("--backend", choices=BACKENDS, default="local",
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
    run.add_argument("--suite", required=True,
                     help="suite name (see `flowbench list`) or a suite file, path/to/suite.toml")
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
                        help=f"only these figure kinds: {', '.join(figure_kinds())}")
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
    tune.add_argument("--suite", required=True,
                      help="suite name (see `flowbench list`) or a suite file, path/to/suite.toml")
    tune.add_argument("--datasets", action="append", metavar="A,B")
    tune.add_argument("--flows", action="append", metavar="A,B")
    tune.add_argument("--bases", action="append", metavar="A,B")
    tune.add_argument("--trials", type=int, default=20,
                      help="finished trials wanted per study (default 20)")
    tune.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="stop adding trials to a study after this long")
    tune.add_argument("--storage", help="Optuna storage (default: "
                                        "RESULTS_DIR/<suite>-tuning/optuna.journal): "
                                        + ACCEPTED)
    tune.add_argument("--pruner", choices=tuple(PRUNERS), default="median",
                      help="; ".join(f"{name}: {what}" for name, what in PRUNERS.items()))
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

    from .testing import check_registered, summarise

    torch.set_num_threads(1)
    registry.get("flow", args.flow)
    registry.get("base", args.base)
    try:
        shape = tuple(int(d) for d in args.shape.split(","))
    except ValueError:
        raise UsageError(f"--shape takes integers like 2 or 3,4,4; got {args.shape!r}") from None
    hparams = dict(_parse_setting(item) for item in args.set)
    report = check_registered(args.flow, args.base, shape, registry=registry, seed=args.seed,
                              hparams=hparams)
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
    if getattr(args, "trials", 1) < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if getattr(args, "storage", None) and args.command == "run" and not args.tuned:
        raise UsageError("--storage is for --tuned runs (and for `flowbench tune`)")


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    from tqdm.auto import tqdm

    from .backends import default_jobs
    from .report.tables import format_nll_table, nll_summary
    from .runs import run_suite

    _check_flags(args)
    if args.compile:
        from .compile import compile_unavailable_reason

        reason = compile_unavailable_reason()
        if reason is not None:
            _say(f"--compile: {reason}; cells will train eagerly")
    # disable=None: a bar on a terminal; one line per finished cell in logs and pipes
    bar = tqdm(unit="cell", dynamic_ncols=True, disable=None, desc=args.suite)

    def on_record(record: dict[str, Any], done: int, total: int) -> None:
        line = _cell_line(record, done, total)
        if bar.disable:
            _say(line)
            return
        bar.total, bar.n = total, done
        bar.refresh()
        bar.set_postfix_str(f"{record['dataset']} {record['flow']}/{record['base']}: "
                            f"{record['status']}")
        if record["status"] != "ok":
            tqdm.write(line, file=sys.stderr)

    def say(text: str) -> None:
        if bar.disable:
            _say(text)
        else:
            tqdm.write(f"flowbench: {text}", file=sys.stderr)

    try:
        run = run_suite(
            args.suite, datasets=_names(args.datasets), flows=_names(args.flows),
            bases=_names(args.bases), seeds=_seeds(args.seeds), steps=args.steps, out=args.out,
            results_dir=args.results_dir, fresh=args.fresh, jobs=args.jobs,
            threads=args.threads, retry_failed=args.retry_failed, measure=not args.no_measure,
            report=not args.no_report, tuned=args.tuned, storage=args.storage,
            compile=args.compile, backend=args.backend, scheduler=args.scheduler,
            cell_timeout=args.cell_timeout, registry=registry, say=say, on_record=on_record,
            progress=not bar.disable and (args.jobs or default_jobs()) == 1, started=STARTED)
    finally:
        bar.close()
    print(format_nll_table(nll_summary(run.records)))
    print(f"\nrun folder: {run.folder}  (results.csv, cells.jsonl, config.json, metadata.json)")
    if run.report is not None:
        print(f"report: {run.report} (and report.md, figures/, tables/ beside it)")
    _say(f"wall {sum(run.phase_seconds.values()):.0f} s: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in run.phase_seconds.items()))
    if run.interrupted:
        _say(f"interrupted: {len(run.records)}/{len(run.plan.cells)} cells finished and saved; "
             "run the same command again to resume")
        return EXIT_INTERRUPTED
    if run.not_ok:
        _say(f"{len(run.not_ok)} cell(s) did not finish ok: " + ", ".join(
            f"{r['cell_id']} ({r['status']}: {r.get('message', '')})" for r in run.not_ok[:5])
            + (" ..." if len(run.not_ok) > 5 else ""))
        return EXIT_CELLS_FAILED
    return EXIT_OK


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def cmd_tune(args: argparse.Namespace, registry: Registry) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from .report.tables import text_table
    from .runs import tune_suite

    _check_flags(args)
    bar = tqdm(desc="studies", unit="task", dynamic_ncols=True, disable=None)

    def on_study(summary: dict[str, Any]) -> None:
        if bar.disable:
            _say(f"{summary['study']}: best val NLL {summary['best_val_nll']:.4f} "
                 f"({summary['complete']} complete, {summary['pruned']} pruned, "
                 f"{summary['failed']} failed; {summary['seconds']:.0f} s)")
        else:
            bar.update(1)
            bar.set_postfix_str(summary["study"])

    try:
        tuning = tune_suite(
            args.suite, datasets=_names(args.datasets), flows=_names(args.flows),
            bases=_names(args.bases), trials=args.trials, timeout=args.timeout,
            storage=args.storage, pruner=args.pruner, steps=args.steps,
            results_dir=args.results_dir, jobs=args.jobs, backend=args.backend,
            scheduler=args.scheduler, registry=registry, say=_say, on_study=on_study)
    finally:
        bar.close()
    if tuning.interrupted:
        _say("interrupted: finished trials are in the storage, unfinished ones marked failed; "
             "run the same command to continue")
        return EXIT_INTERRUPTED
    print(text_table(pd.DataFrame([{
        "study": s["study"], "complete": s["complete"], "pruned": s["pruned"],
        "failed": s["failed"], "best val NLL": round(s["best_val_nll"], 4),
        "best settings": ", ".join(f"{k}={_short(v)}" for k, v in
                                   {**s["flow_hparams"], **s["base_hparams"], **s["train"]}.items()),
    } for s in tuning.studies])))
    if tuning.summary_csv is not None:
        print(f"\nstudies: {tuning.storage}  (summary: {tuning.summary_csv})")
    print(f"train with the best settings: flowbench run --suite {args.suite} --tuned"
          + (f" --storage {args.storage}" if args.storage else ""))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, registry: Registry) -> int:
    from .runs import write_report

    try:
        result = write_report(args.runs, args.out, figures=not args.no_figures,
                              figure_kinds=_names(args.figures),
                              figure_datasets=_names(args.figure_datasets))
    except ValueError as error:  # unknown figure kinds and the like (a damaged file says more)
        raise UsageError(str(error)) from None
    print(f"report: {result.html} (and report.md, figures/, tables/ beside it)")
    return EXIT_OK


def _hint(error: BaseException, args: argparse.Namespace) -> str:
    """What to do, in the command line's words, for errors whose library message cannot name
    the flags."""
    from .runlock import RunLocked
    from .store import DamagedFile, ReadOnlyRun, StoreError
    from .tune import StudyMissing

    if isinstance(error, StudyMissing):
        return (f"; run `flowbench tune --suite {args.suite}`"
                + (f" --storage {args.storage}" if getattr(args, "storage", None) else "")
                + " first")
    if args.command == "run" and isinstance(error, (DamagedFile, ReadOnlyRun, RunLocked,
                                                    StoreError)):
        return " (--out DIR picks another folder; --fresh starts a new one)"
    if args.command == "report" and isinstance(error, (RunLocked, ReadOnlyRun)):
        return " (--out DIR writes the report elsewhere)"
    return ""


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "this input cannot work": one line, exit 2, never a traceback."""
    from .api import HyperparameterError
    from .backends import BackendError
    from .plan import PlanError
    from .registry import UnknownNameError
    from .runlock import RunLocked
    from .specs import SpecError
    from .storage import StorageError
    from .store import StoreError
    from .suitefile import SuiteFileError
    from .tune import StudyMissing

    return (UsageError, UnknownNameError, PlanError, SpecError, SuiteFileError, StoreError,
            RunLocked, StorageError, BackendError, StudyMissing, HyperparameterError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.data_dir is not None:  # workers inherit the environment
        os.environ["FLOWBENCH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    handler = {"list": cmd_list, "run": cmd_run, "report": cmd_report, "check": cmd_check,
               "tune": cmd_tune}[args.command]
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            registry = _load_registry(args)
            return handler(args, registry)
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if not isinstance(error, _usage_errors()):
            raise
        _say(f"error: {error}{_hint(error, args)}")
        return EXIT_USAGE


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    """Warnings as one ``flowbench: warning: ...`` line, not a source listing."""
    _say(f"warning: {message}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
