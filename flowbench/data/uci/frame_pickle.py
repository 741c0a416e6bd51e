"""Reading a pickled pandas ``DataFrame`` without pandas' unpickler, and without running code.

GAS ships as ``gas/ethylene_CO.pickle``, a DataFrame pickled by a 2017 pandas (0.1x/0.2x, most
likely under Python 2). ``pandas.read_pickle`` of pandas >= 2.0 no longer maps that era's class
paths (``pandas.core.internals.BlockManager``, ``pandas.indexes.base._new_Index``, ...), and any
pickle can run code when loaded. This module reads the pickle's *structure* instead: a restricted
unpickler resolves the pandas classes it names to inert stand-ins that only record their
arguments and state, numpy's array reconstruction is allowed as in the CIFAR-10 reader, and
anything else is refused. The recorded pieces are then assembled into column names and one
float64 array.

Two layouts of a DataFrame pickle are understood, which between them cover pandas 0.15 to 3.x:

* ``DataFrame`` built empty, then given the state ``{"_data" or "_mgr": BlockManager, ...}``;
  the ``BlockManager`` built empty, then given the state ``(axes, values, items, extra)`` whose
  ``extra["0.14.1"]`` holds ``{"axes": [columns, index], "blocks": [{"values", "mgr_locs"}]}``
  (pandas' own format since 0.14.1, written up to pandas 1.x);
* the ``BlockManager`` called with ``(blocks, axes)``, each block ``_unpickle_block(values,
  placement, ndim)`` (pandas 2.x and 3.x).

Index objects are ``_new_Index(cls, {"data": ..., "name": ...})`` (``start``/``stop``/``step``
for a ``RangeIndex``); column names may be an object array or a pandas ``StringArray``. A block's
values are ``(n_columns_in_block, n_rows)``. Python 2 strings are decoded as latin-1, as numpy
requires for arrays pickled by Python 2.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..files import NUMPY_PICKLE_GLOBALS, DataFileError

_NUMPY = NUMPY_PICKLE_GLOBALS | {("builtins", "slice"), ("builtins", "object")}


class _Recorded:
    """Stands in for a pandas class: keeps the arguments it was built with and its state."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Recorded:
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Frame(_Recorded):
    """``pandas.DataFrame``."""


class _Manager(_Recorded):
    """``BlockManager``."""


class _Block(_Recorded):
    """One block: ``_unpickle_block(values, placement, ndim)``."""


class _Placement(_Recorded):
    """``BlockPlacement(indexer)``."""


class _IndexClass(_Recorded):
    """An Index class named by ``_new_Index(cls, attributes)``."""


class _RangeIndexClass(_IndexClass):
    """``RangeIndex``."""


class _Index(_Recorded):
    """``_new_Index(cls, attributes)``: an index's class and attributes."""


class _Backed(_Recorded):
    """An NDArray-backed pandas array (``StringArray``): its state holds the ndarray."""


class _Dtype(_Recorded):
    """A pandas extension dtype (``StringDtype``): only recorded."""


def _new_index(cls: Any, attributes: Any) -> _Index:
    if not (isinstance(cls, type) and issubclass(cls, _IndexClass)) \
            or not isinstance(attributes, dict):
        raise pickle.UnpicklingError("unexpected arguments to _new_Index")
    return _Index(cls, attributes)


def _unpickle_backed(cls: Any, checksum: Any = None, state: Any = None) -> _Backed:
    if cls is not _Backed:
        raise pickle.UnpicklingError("unexpected NDArrayBacked class")
    backed = _Backed()
    if state is not None:
        backed.state = state
    return backed


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 pickles), for the stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, _Recorded)) or base is not object:
        raise pickle.UnpicklingError("copyreg._reconstructor of an unexpected class")
    return cls.__new__(cls)


_FRAME_MODULES = ("pandas", "pandas.core.frame")
_MANAGER_MODULES = ("pandas.core.internals", "pandas.core.internals.managers",
                    "pandas._libs.internals")
_INDEX_MODULES = ("pandas", "pandas.core.index", "pandas.indexes.base", "pandas.indexes.numeric",
                  "pandas.indexes.range", "pandas.core.indexes.base",
                  "pandas.core.indexes.numeric", "pandas.core.indexes.range")
_INDEX_NAMES = ("Index", "Int64Index", "UInt64Index", "Float64Index")

_PANDAS: dict[tuple[str, str], Any] = {
    **{(module, "DataFrame"): _Frame for module in _FRAME_MODULES},
    **{(module, "BlockManager"): _Manager for module in _MANAGER_MODULES},
    **{(module, name): _IndexClass for module in _INDEX_MODULES for name in _INDEX_NAMES},
    **{(module, "RangeIndex"): _RangeIndexClass for module in _INDEX_MODULES},
    **{(module, "_new_Index"): _new_index for module in _INDEX_MODULES},
    ("pandas._libs.internals", "_unpickle_block"): _Block,
    ("pandas.core.internals.blocks", "new_block"): _Block,
    ("pandas._libs.internals", "BlockPlacement"): _Placement,
    ("pandas._libs.lib", "BlockPlacement"): _Placement,
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"): _unpickle_backed,
    ("pandas.arrays", "StringArray"): _Backed,
    ("pandas.core.arrays.string_", "StringArray"): _Backed,
    ("pandas", "StringDtype"): _Dtype,
    ("pandas.core.arrays.string_", "StringDtype"): _Dtype,
    ("copyreg", "_reconstructor"): _reconstructor,
}


#: Python 2 module names of the globals allowed here (a find_class override sees them unmapped)
_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _FrameUnpickler(pickle.Unpickler):
    """Builds numpy arrays, builtin containers and the inert stand-ins above; refuses the rest."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PYTHON2_MODULES.get(module, module)  # what fix_imports would map
        if (module, name) in _PANDAS:
            return _PANDAS[(module, name)]
        if (module, name) in _NUMPY:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a data pickle (only pandas DataFrames of "
            "numbers are read)")


def _fail(path: Path, problem: str) -> DataFileError:
    return DataFileError(f"{path}: not a readable pickled pandas DataFrame: {problem}")


def _labels(index: Any, path: Path, what: str) -> list[Any] | range:
    """An index stand-in's labels (a RangeIndex's as a range)."""
    if not isinstance(index, _Index):
        raise _fail(path, f"its {what} are not a pandas Index")
    cls, attributes = index.args
    if issubclass(cls, _RangeIndexClass):
        try:
            return range(int(attributes.get("start", 0)), int(attributes["stop"]),
                         int(attributes.get("step", 1)))
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"its {what} are a RangeIndex without start/stop") from None
    data = attributes.get("data")
    if isinstance(data, _Backed):
        state = data.state if isinstance(data.state, tuple) else (data.state,)
        arrays = [part for part in state if isinstance(part, np.ndarray)]
        data = arrays[0] if arrays else None
    if not isinstance(data, np.ndarray) or data.ndim != 1:
        raise _fail(path, f"its {what} hold no 1-D array")
    if data.dtype != object:
        return range(len(data)) if what == "row labels" else data.tolist()
    return [label.decode("latin-1") if isinstance(label, bytes) else label
            for label in data.tolist()]


def _placement(value: Any, count: int) -> list[int]:
    if isinstance(value, _Placement):
        value = value.args[0] if value.args else None
    if isinstance(value, slice):
        return list(range(*value.indices(count)))
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        return [int(v) for v in value]
    raise TypeError(f"block placement {value!r}")


def _manager_parts(manager: _Manager, path: Path) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """(axes, [(values, placement), ...]) of either layout."""
    state = manager.state
    if isinstance(state, tuple) and len(state) >= 4 and isinstance(state[3], dict) \
            and "0.14.1" in state[3]:
        extra = state[3]["0.14.1"]
        try:
            return list(extra["axes"]), [(b["values"], b["mgr_locs"]) for b in extra["blocks"]]
        except (KeyError, TypeError):
            raise _fail(path, "its BlockManager state lacks axes or blocks") from None
    if len(manager.args) == 2:
        blocks, axes = manager.args
        if all(isinstance(b, _Block) and len(b.args) >= 2 for b in blocks):
            return list(axes), [(b.args[0], b.args[1]) for b in blocks]
    raise _fail(path, "its BlockManager is in a layout older than pandas 0.14.1 or unknown")


def read_frame_pickle(path: str | Path) -> tuple[list[Any], np.ndarray]:
    """The column labels and the values (float64, ``(rows, columns)``) of the pandas DataFrame
    pickled in ``path`` (gzip-compressed or not). Raises :class:`DataFileError` naming the file
    for a truncated or corrupted pickle, one that is not a DataFrame, or non-numeric columns."""
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if compressed else open)(path, "rb") as handle:
            obj = _FrameUnpickler(handle, encoding="latin1").load()
    except EOFError:
        raise _fail(path, "the pickle data ends early (a truncated file?)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OSError, MemoryError, RecursionError) as error:
        if isinstance(error, OSError) and not compressed:
            raise
        problem = str(error) or type(error).__name__
        if "truncated" in problem:
            problem += " (a truncated file?)"
        raise _fail(path, problem) from None
    if not isinstance(obj, _Frame) or not isinstance(obj.state, dict):
        raise _fail(path, f"it holds a {type(obj).__name__}, not a DataFrame")
    manager = obj.state.get("_mgr", obj.state.get("_data"))
    if not isinstance(manager, _Manager):
        raise _fail(path, "its DataFrame has no BlockManager")
    axes, blocks = _manager_parts(manager, path)
    if len(axes) != 2:
        raise _fail(path, f"its BlockManager has {len(axes)} axes, not 2")
    columns = list(_labels(axes[0], path, "columns"))
    n_rows = len(_labels(axes[1], path, "row labels"))
    values = np.full((n_rows, len(columns)), np.nan)
    filled = np.zeros(len(columns), dtype=int)
    for block_values, placement in blocks:
        if isinstance(block_values, _Backed) or not isinstance(block_values, np.ndarray):
            raise _fail(path, "a block holds something other than a numpy array (text?)")
        if block_values.dtype.kind not in "biuf":
            raise _fail(path, f"a block holds {block_values.dtype} values, not numbers")
        block = np.atleast_2d(block_values)
        try:
            locs = _placement(placement, len(columns))
        except TypeError as error:
            raise _fail(path, str(error)) from None
        if block.shape != (len(locs), n_rows) or any(not 0 <= i < len(columns) for i in locs):
            raise _fail(path, f"a block of shape {block.shape} does not fit {len(locs)} of "
                              f"{len(columns)} columns and {n_rows} rows")
        values[:, locs] = block.T
        np.add.at(filled, locs, 1)
    if not (filled == 1).all():
        raise _fail(path, "its blocks do not cover every column exactly once")
    return columns, values

