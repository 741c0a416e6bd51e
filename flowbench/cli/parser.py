"""The ``flowbench`` argument parser: every subcommand and option, with the choices read from the
code that implements them (backends, pruners, figure kinds, storage forms)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..backends import BACKENDS
from ..pruners import PRUNERS
from ..specs import PRECISIONS
from ..storage import ACCEPTED


def figure_kinds() -> list[str]:
    from ..report.figures import FIGURE_KINDS

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
        help="where datasets you already have live (MNIST, Fashion-MNIST, CIFAR-10 files; the "
             "MAF paper's UCI/BSDS300 archive); "
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


def _device(parser: argparse.ArgumentParser, precision: bool = True) -> None:
    parser.add_argument(
        "--device", metavar="DEVICE", default=None,
        help="auto, cpu, cuda or cuda:N (default: the suite's choice, auto for image suites: "
             "CUDA when available, else CPU; cpu for suites of tiny models, which train "
             "faster as one CPU process per core). A GPU run is a separate run")
    if precision:
        parser.add_argument(
            "--precision", choices=PRECISIONS, default=None,
            help="fp32 (default): float32 throughout; tf32: CUDA matmuls and convolutions "
                 "may round inputs to TensorFloat-32; bf16: the conditioner networks run in "
                 "bfloat16 autocast (log-dets, base densities and NLLs stay float32). A "
                 "separate run")


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
               "  flowbench report results/reference/toy2d results/toy2d-TIMESTAMP\n"
               "  flowbench run --suite my-suite.toml\n"
               "  flowbench -p my_flow.py check myflow\n"
               "  flowbench -p my_flow.py run --suite toy2d --flows myflow\n\n"
               "exit codes: 0 all ok; 1 some cell failed or diverged (or a check failed); 2 the "
               "command cannot work as given\n(bad name or option, damaged or busy run folder, "
               "unusable storage), said before anything trains; 130 interrupted",
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
    run.add_argument("--checkpoint-every", type=float, default=10.0, metavar="MINUTES",
                     help="save a training cell's full state to RUN/checkpoints/ this often "
                          "(default 10; 0: never) and at Ctrl-C; running the same command "
                          "again continues the cell from it, with exactly the numbers of an "
                          "uninterrupted run. Not part of a cell's settings. With --backend "
                          "dask a cell resumes on another worker only if the run folder is on a "
                          "filesystem shared with it; otherwise it starts over there")
    _device(run)
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
                    "machines) can share one --storage. Trials are not checkpointed (unlike "
                    "`run`'s cells): Ctrl-C fails the trials in flight.",
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
    _device(tune)

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
    _device(check, precision=False)
    check.add_argument("-v", "--verbose", action="store_true",
                       help="one line per layer, not just the worst per check")
    return parser


