"""``flowbench`` command line: ``list`` what is registered, ``run`` a suite, ``tune`` it,
``report`` runs, ``check`` a flow. Argument parsing (``parser``), progress printing
(``commands``) and exit codes (here) around ``flowbench.run_suite``, ``flowbench.tune_suite`` and
``flowbench.write_report``.

Exit codes: 0 every cell ok (every check passed); 1 some cell failed or diverged (some check
failed); 2 usage error (bad name, bad option, damaged or busy run folder, unusable storage,
broken plugin with ``--strict``); 130 interrupted (finished cells are kept; re-run to resume).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports: start-up counts them

import argparse  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

from . import commands  # noqa: E402
from .common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, say  # noqa: E402
from .parser import build_parser  # noqa: E402


def _hint(error: BaseException, args: argparse.Namespace) -> str:
    """What to do, in the command line's words, for errors whose library message cannot name
    the flags."""
    from ..runlock import RunLocked
    from ..store import DamagedFile, ReadOnlyRun, StoreError
    from ..tune import StudyMissing

    if isinstance(error, StudyMissing):
        from ..storage import shown

        return (f"; run `flowbench tune --suite {args.suite}`"
                + (f" --storage {shown(args.storage)}" if getattr(args, "storage", None)
                   else "") + " first")
    if args.command == "run" and isinstance(error, (DamagedFile, ReadOnlyRun, RunLocked,
                                                    StoreError)):
        return " (--out DIR picks another folder; --fresh starts a new one)"
    if args.command == "report" and isinstance(error, (RunLocked, ReadOnlyRun)):
        return " (--out DIR writes the report elsewhere)"
    return ""


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "this input cannot work": one line, exit 2, never a traceback."""
    from ..api import HyperparameterError
    from ..backends import BackendError
    from ..device import DeviceError
    from ..plan import PlanError
    from ..registry import PluginError, UnknownNameError
    from ..runlock import RunLocked
    from ..specs import SpecError
    from ..storage import StorageError
    from ..store import StoreError
    from ..suitefile import SuiteFileError
    from ..tune import StudyMissing

    return (UsageError, UnknownNameError, PlanError, SpecError, SuiteFileError, StoreError,
            RunLocked, StorageError, BackendError, StudyMissing, HyperparameterError, PluginError,
            DeviceError)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # anywhere: parsing and loading plugins too
        say("interrupted")
        return EXIT_INTERRUPTED
    finally:
        # everything alive now lives until the interpreter ends: frozen, the collector skips it
        # at shutdown, which otherwise takes about a second once torch and pandas are loaded
        gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.data_dir is not None:  # workers inherit the environment
        os.environ["FLOWBENCH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    handler = getattr(commands, f"cmd_{args.command}")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            registry = commands.load_plugins(args)
            return handler(args, registry)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if not isinstance(error, _usage_errors()):
            raise
        say(f"error: {error}{_hint(error, args)}")
        return EXIT_USAGE


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    """Warnings as one ``flowbench: warning: ...`` line, not a source listing."""
    say(f"warning: {message}")




if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
