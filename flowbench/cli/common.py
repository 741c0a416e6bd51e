"""What every part of the command line shares: exit codes, the usage error, one-line messages,
and reading comma-separated name lists."""

from __future__ import annotations

import sys
from typing import Sequence

EXIT_OK, EXIT_CELLS_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def say(message: str) -> None:
    print(f"flowbench: {message}", file=sys.stderr, flush=True)


def names(values: Sequence[str] | None) -> list[str] | None:
    """``--flows a,b --flows c`` -> ``[a, b, c]``."""
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def seeds(values: Sequence[str] | None) -> list[int] | None:
    found = names(values)
    if found is None:
        return None
    try:
        return [int(name) for name in found]
    except ValueError:
        raise UsageError(f"--seeds takes integers like 0,1,2; got {','.join(values)!r}") from None


