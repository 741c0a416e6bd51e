"""The five MAF tabular datasets (flowbench.data.uci) on small files written in the archive's
formats: a .npy, a pickled pandas DataFrame (as pandas 3 writes it, and in the layout of a
pandas 0.20 / Python 2 pickle), CSV files with a header line, an HDF5 file. Each loader is
checked against an independent re-statement of the MAF preprocessing written here with numpy
(and Counter, as the MAF code counts); then the errors for missing, truncated and corrupted
files, h5py missing, and a real `flowbench run` stopping with exit 2 before training.

The real archive's shapes are checked when FLOWBENCH_TEST_UCI_DIR names a folder holding it.
"""

from __future__ import annotations

import copyreg
import json
import os
import pickle
import struct
import subprocess
import sys
import types
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flowbench.data import uci
from flowbench.data.files import DATA_DIR_ENV, DataFileError, MissingReader
from flowbench.data.uci import gas, hepmass
from flowbench.data.uci.frame_pickle import read_frame_pickle
from flowbench.specs import DatasetSpec, PublishedResult

REAL_DIR_ENV = "FLOWBENCH_TEST_UCI_DIR"


@pytest.fixture(autouse=True)
def fresh_cache():
    uci.clear_cache()
    yield
    uci.clear_cache()


def _split(data: np.ndarray):
    """The MAF code's cut: test last 10%, validation last 10% of the rest."""
    n_test = int(0.1 * len(data))
    rest, test = data[:-n_test], data[-n_test:]
    n_val = int(0.1 * len(rest))
    return rest[:-n_val], rest[-n_val:], test


def _close(tensor: torch.Tensor, expected: np.ndarray) -> None:
    assert tensor.dtype == torch.float32
    assert tensor.shape == expected.shape
    np.testing.assert_allclose(tensor.numpy(), expected.astype(np.float32), rtol=1e-6, atol=1e-6)


# --- POWER ------------------------------------------------------------------------------------


def write_power(root: Path, n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = np.column_stack([rng.gamma(2.0, 0.5, n), rng.random(n) * 0.3, 240 + rng.normal(0, 3, n),
                           rng.gamma(2.0, 2.0, n), rng.integers(0, 40, (n, 3)),
                           rng.integers(0, 1440, n)]).astype(np.float64)
    (root / "power").mkdir(parents=True, exist_ok=True)
    np.save(root / "power" / "data.npy", raw)
    return raw


def test_power_reproduces_the_maf_preprocessing(tmp_path):
    raw = write_power(tmp_path)
    data = uci.load_uci("power", data_dir=tmp_path)
    # the re-statement: permute the rows (permutation(n) draws as shuffle does), keep columns
    # 0, 2, 4, 5, 6, 7, then draw the noise from the same generator in the MAF code's order
    rng = np.random.RandomState(42)
    kept = raw[rng.permutation(len(raw))][:, [0, 2, 4, 5, 6, 7]]
    voltage, active, meters = rng.rand(len(raw)), rng.rand(len(raw)), rng.rand(len(raw), 3)
    noisy = kept + np.column_stack([0.001 * active, 0.01 * voltage, meters, np.zeros(len(raw))])
    train, val, test = _split(noisy)
    both = np.concatenate([train, val])
    mean, std = both.mean(0), both.std(0)
    for tensor, part in zip(data.splits().values(), (train, val, test), strict=True):
        _close(tensor, (part - mean) / std)
    assert [len(s) for s in data.splits().values()] == [810, 90, 100]
    assert data.event_shape == (6,) and data.kind == "vector" and data.log_prob is None
    # the noise: below 0.001 (active power), 0.01 (voltage), 1 (meters), none on time
    undone = np.concatenate([data.train.double().numpy(), data.val.double().numpy()]) * std + mean
    added = undone - kept[: len(undone)]
    for column, scale in enumerate([0.001, 0.01, 1, 1, 1]):
        assert added[:, column].min() > -1e-4 and added[:, column].max() < scale + 1e-4
        assert added[:, column].max() > 0.9 * scale  # the noise is there, at its scale
    assert np.abs(added[:, 5]).max() < 1e-3
    np.testing.assert_allclose(data.info["standardisation"]["mean"], mean)


def test_power_info_seed_and_fixed_splits(tmp_path):
    write_power(tmp_path)
    a = uci.load_uci("power", seed=0, data_dir=tmp_path)
    b = uci.load_uci("power", seed=3, data_dir=tmp_path)
    for x, y in zip(a.splits().values(), b.splits().values(), strict=True):
        assert torch.equal(x, y)
    assert b.info["seed"] == 3 and "does not change" in b.info["split_method"]
    assert b.info["split"] == {"train": 810, "val": 90, "test": 100}
    assert b.info["split_of_the_real_files"] == {"train": 1659917, "val": 184435,
                                                 "test": 204928}
    assert b.info["files"] == {"data.npy": str(tmp_path / "power" / "data.npy")}
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        uci.load_uci("power", seed=-1, data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown UCI dataset 'powr'; valid choices: power, gas"):
        uci.load_uci("powr", data_dir=tmp_path)


def test_archive_layout_and_environment_variable(tmp_path, monkeypatch):
    write_power(tmp_path / "data", n=300)  # data.tar.gz unpacked in the folder: data/power/
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    data = uci.load_uci("power")
    assert data.info["folder"] == str(tmp_path / "data" / "power") and len(data.test) == 30


def test_preprocessed_splits_are_kept_per_process(tmp_path, monkeypatch):
    write_power(tmp_path)
    calls = []
    prepare = uci.power.prepare
    monkeypatch.setattr(uci.power, "prepare", lambda paths: calls.append(1) or prepare(paths))
    first = uci.load_uci("power", data_dir=tmp_path)
    again = uci.load_uci("power", seed=1, data_dir=str(tmp_path))
    assert len(calls) == 1 and again.train is first.train
    write_power(tmp_path, n=500, seed=1)  # a changed file is read again
    changed = uci.load_uci("power", data_dir=tmp_path)
    assert len(calls) == 2 and len(changed.test) == 50


# --- GAS --------------------------------------------------------------------------------------

SENSORS = [f"TGS26{t}_{i}" for t in ("00", "02", "10", "20") for i in range(1, 5)]
GAS_COLUMNS = ["Time", "Meth", "Eth", *SENSORS]


def gas_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """16 sensors built so the correlation step removes exactly 8 of them: four pairs and two
    triples of near-copies (one of each left); a pair correlated at about -0.99 stays (the MAF
    code does not take |corr|); Time and Eth are sensors rescaled, so they must go before
    correlations are counted."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8))
    noise = 0.02 * rng.normal(size=(n, 16))
    s = np.empty((n, 16))
    s[:, 0], s[:, 1] = base[:, 0], base[:, 0] + noise[:, 1]        # pair -> one removed
    s[:, 2], s[:, 3] = base[:, 1], base[:, 1] + noise[:, 3]        # pair
    s[:, 4], s[:, 5], s[:, 6] = base[:, 2], base[:, 2] + noise[:, 5], base[:, 2] + noise[:, 6]
    s[:, 7], s[:, 8] = base[:, 3], base[:, 3] + noise[:, 8]        # pair
    s[:, 9], s[:, 10] = base[:, 4], -base[:, 4] + 0.1 * noise[:, 10]  # anti-correlated: both stay
    s[:, 11], s[:, 12] = base[:, 5], base[:, 5] + noise[:, 12]     # pair
    s[:, 13] = base[:, 3] + noise[:, 13]                           # (7, 8, 13): a triple
    s[:, 14], s[:, 15] = base[:, 7], base[:, 7] + noise[:, 15]     # pair
    time = s[:, 13] * 3 + 7            # Time duplicates a sensor exactly
    meth, eth = rng.random(n) * 600, s[:, 9] * 2  # concentrations: dropped too
    values = np.column_stack([time, meth, eth, s * 100 + 1000])
    index = rng.permutation(4 * n)[:n]  # a random quarter of the rows, as the archive's file
    return pd.DataFrame(values, columns=pd.Index(GAS_COLUMNS, dtype=object), index=index)


def expected_gas(values: np.ndarray):
    """The re-statement, with numpy: drop the first three columns, then the first column with
    more than one correlation > 0.98 until none, then standardise (ddof=1) and split."""
    data = values[:, 3:]
    names = list(SENSORS)
    while True:
        counts = (np.corrcoef(data, rowvar=False) > 0.98).sum(axis=1)
        if not (counts > 1).any():
            break
        first = int(np.flatnonzero(counts > 1)[0])
        data = np.delete(data, first, axis=1)
        del names[first]
    data = (data - data.mean(0)) / data.std(0, ddof=1)
    return _split(data), names


def test_gas_reproduces_the_maf_preprocessing(tmp_path):
    frame = gas_frame()
    (tmp_path / "gas").mkdir()
    frame.to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    data = uci.load_uci("gas", data_dir=tmp_path)
    (train, val, test), names = expected_gas(frame.to_numpy())
    for tensor, part in zip(data.splits().values(), (train, val, test), strict=True):
        _close(tensor, part)
    assert data.event_shape == (8,) and [len(s) for s in data.splits().values()] == [486, 54, 60]
    assert data.info["columns"] == names
    assert data.info["columns_removed_for_correlation"] == [
        "TGS2600_1", "TGS2600_3", "TGS2602_1", "TGS2602_2", "TGS2602_4", "TGS2610_1",
        "TGS2610_4", "TGS2620_3"]
    assert "TGS2610_2" in names and "TGS2610_3" in names  # kept: corr -0.99 does not count


def test_gas_pickle_with_default_string_columns(tmp_path):
    frame = gas_frame(seed=1)
    frame.columns = list(GAS_COLUMNS)  # pandas 3's own string dtype unless pyarrow backs it
    if "pyarrow" in str(frame.columns.dtype):
        pytest.skip("pyarrow-backed string columns are not read")
    (tmp_path / "gas").mkdir()
    frame.to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    (train, _, _), _ = expected_gas(frame.to_numpy())
    _close(uci.load_uci("gas", data_dir=tmp_path).train, train)


# A pickle in the layout pandas 0.20 wrote under Python 2 (protocol 2): class paths of that era,
# Python 2 strings (BINSTRING), the BlockManager's state with its "0.14.1" entry, an Int64Index
# of row labels. Written from pandas' __getstate__/__reduce__ of that version.


class _LegacyObject:
    def __init__(self, state):
        self.state = state

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (type(self),), self.state


class _LegacyFrame(_LegacyObject):
    pass


class _LegacyManager(_LegacyObject):
    pass


class _LegacyIndex:
    def __init__(self, cls, data):
        self.cls, self.data = cls, data

    def __reduce_ex__(self, protocol):
        return _legacy_new_index, (self.cls, {b"data": self.data, b"name": None}), None


def _legacy_new_index(cls, attributes):  # pragma: no cover - only pickled by reference
    raise AssertionError


class _Int64Index:
    pass


class _ObjectIndex:
    pass


_LEGACY_GLOBALS = {
    _LegacyFrame: ("pandas.core.frame", "DataFrame"),
    _LegacyManager: ("pandas.core.internals", "BlockManager"),
    _legacy_new_index: ("pandas.core.indexes.base", "_new_Index"),
    _ObjectIndex: ("pandas.core.indexes.base", "Index"),
    _Int64Index: ("pandas.core.indexes.numeric", "Int64Index"),
}


class _Python2Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_global(self, obj, name=None):
        module, legacy_name = _LEGACY_GLOBALS.get(obj, (None, None))
        if module is not None:
            name = legacy_name
        else:
            name = name or getattr(obj, "__qualname__", obj.__name__)
            module = pickle.whichmodule(obj, name).replace("numpy._core", "numpy.core")
            module = {"builtins": "__builtin__", "copyreg": "copy_reg"}.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    def save_py2_str(self, obj):  # a Python 2 str: SHORT_BINSTRING / BINSTRING
        if len(obj) < 256:
            self.write(b"U" + struct.pack("<B", len(obj)) + obj)
        else:
            self.write(b"T" + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[types.FunctionType] = save_global


def write_legacy_pickle(path: Path, frame: pd.DataFrame) -> None:
    """``frame`` as pandas 0.20 pickled a DataFrame of two float64 blocks under Python 2."""
    names = np.array([name.encode() for name in frame.columns], dtype=object)
    columns = _LegacyIndex(_ObjectIndex, names)
    rows = _LegacyIndex(_Int64Index, np.asarray(frame.index, dtype=np.int64))
    values = frame.to_numpy().T.copy()
    blocks = [{b"values": values[:3], b"mgr_locs": slice(0, 3, 1)},
              {b"values": values[3:], b"mgr_locs": np.arange(3, values.shape[0])}]
    axes = [columns, rows]
    state = (axes, [b[b"values"] for b in blocks], [names[:3], names[3:]],
             {b"0.14.1": {b"axes": axes, b"blocks": blocks}})
    manager = _LegacyManager(state)
    with open(path, "wb") as handle:
        _Python2Pickler(handle, protocol=2).dump(
            _LegacyFrame({b"_data": manager, b"_typ": b"dataframe", b"_metadata": []}))


def test_gas_pickle_of_pandas_0_20_under_python_2(tmp_path):
    frame = gas_frame(seed=2)
    (tmp_path / "gas").mkdir()
    path = tmp_path / "gas" / "ethylene_CO.pickle"
    write_legacy_pickle(path, frame)
    assert b"pandas.core.internals\nBlockManager" in path.read_bytes()
    columns, values = read_frame_pickle(path)
    assert columns == GAS_COLUMNS and np.array_equal(values, frame.to_numpy())
    (train, val, test), _ = expected_gas(frame.to_numpy())
    data = uci.load_uci("gas", data_dir=tmp_path)
    _close(data.test, test)
    _close(data.val, val)


def test_gas_needs_its_columns(tmp_path):
    (tmp_path / "gas").mkdir()
    gas_frame().drop(columns="Meth").to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    with pytest.raises(DataFileError, match="no column 'Meth' in the DataFrame"):
        uci.load_uci("gas", data_dir=tmp_path)


def test_gas_correlation_step_alone():
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 4, 6, 8.1], "c": [4.0, 3, 2, 1],
                          "d": [1.0, -1, 1, -1]})
    left, removed = gas.drop_correlated(frame)
    assert removed == ["a"]  # a~b: the first goes; c = -a stays
    assert list(left.columns) == ["b", "c", "d"]


# --- HEPMASS ----------------------------------------------------------------------------------

FEATURES = [f"f{i}" for i in range(27)]


def hepmass_rows(n: int, seed: int) -> np.ndarray:
    """label + 27 features. Among the signal rows' features, six are discrete by the MAF rule
    (smallest value more than 5 times): f5 (number of jets), four b-tags, and f25 whose minimum
    is repeated 6 times; f26's minimum is repeated exactly 5 times and f24 repeats one value
    (not its minimum) many times: both stay."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 27)).round(6)
    x[:, 5] = rng.integers(1, 6, n) * 0.5
    for j in (9, 13, 17, 21):
        x[:, j] = np.where(rng.random(n) < 0.4, -1.2, 0.9)
    label = (np.arange(n) % 3 != 0).astype(float)
    signal = np.flatnonzero(label == 1)
    x[signal[:6], 25] = -9.0
    x[signal[:5], 26] = -9.0
    x[signal[10:60], 24] = 0.25
    x[label == 0, 26] = -20.0  # background rows: their repeats must not count
    return np.column_stack([label, x])


def _csv(path: Path, header: list[str], rows: np.ndarray) -> None:
    lines = [",".join(header)] + [",".join(f"{v:.6f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


#: the layouts of the two CSV files that the MAF code's reading fits (the archive's own could not
#: be inspected): the test file's header names one column more than the train file's header,
#: ``# label,f0,...,f26``, and read with index_col=False the test file gives one more column
HEPMASS_LAYOUTS = {
    # the test file alone has a mass column (1000 in every row)
    "mass_in_test": {"train_mass": False, "test_mass": True},
    # the test file's header names a column its rows do not have (read as NaN)
    "name_only": {"train_mass": False, "test_mass": False},
    # both files' rows end with the mass, which only the test header names: pandas drops the
    # train rows' last field (index_col=False), the MAF code drops the test file's last column
    "unnamed_mass_in_train": {"train_mass": True, "test_mass": True},
}


def write_hepmass(root: Path, layout: str = "mass_in_test", n_train: int = 330,
                  n_test: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The archive's two CSV files, ``1000_train.csv`` and ``1000_test.csv`` (see
    HEPMASS_LAYOUTS); returns their rows without any mass column."""
    folder = root / "hepmass"
    folder.mkdir(parents=True, exist_ok=True)
    train, test = hepmass_rows(n_train, 0), hepmass_rows(n_test, 1)
    header = ["# label", *FEATURES]
    with_mass = HEPMASS_LAYOUTS[layout]
    _csv(folder / "1000_train.csv", header,
         np.column_stack([train, np.full(n_train, 1000.0)]) if with_mass["train_mass"] else train)
    _csv(folder / "1000_test.csv", [*header, "mass"],
         np.column_stack([test, np.full(n_test, 1000.0)]) if with_mass["test_mass"] else test)
    return train, test


def expected_hepmass(train_rows: np.ndarray, test_rows: np.ndarray):
    """The re-statement, with numpy and Counter as the MAF code counts."""
    train = train_rows[train_rows[:, 0] == 1][:, 1:]
    test = test_rows[test_rows[:, 0] == 1][:, 1:28]
    mean, std = train.mean(0), train.std(0, ddof=1)
    train, test = (train - mean) / std, (test - mean) / std
    removed = []
    for j, feature in enumerate(train.T):
        count = Counter(feature)
        if [v for _, v in sorted(count.items())][0] > 5:
            removed.append(j)
    keep = [j for j in range(train.shape[1]) if j not in removed]
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * len(train))
    return (train[:-n_val], train[-n_val:], test), removed


@pytest.mark.parametrize("layout", list(HEPMASS_LAYOUTS))
def test_hepmass_reproduces_the_maf_preprocessing(tmp_path, layout):
    train_rows, test_rows = write_hepmass(tmp_path, layout)
    data = uci.load_uci("hepmass", data_dir=tmp_path)
    expected, removed = expected_hepmass(train_rows, test_rows)
    assert removed == [5, 9, 13, 17, 21, 25]
    for tensor, part in zip(data.splits().values(), expected, strict=True):
        _close(tensor, part)
    assert data.event_shape == (21,) and [len(s) for s in data.splits().values()] == [198, 22, 100]
    assert data.info["discrete_features"] == ["f5", "f9", "f13", "f17", "f21", "f25"]
    assert data.info["test_file_last_column_dropped"] == "mass"
    assert data.info["constant_features"] == []
    warned = "loss of data" in str(data.info["csv_warnings"].get("1000_train.csv"))
    assert warned == (layout == "unnamed_mass_in_train")


def test_hepmass_constant_feature_is_removed(tmp_path):
    """A hypothetical layout whose train file has a constant column (pandas: std 0): removed,
    as the MAF code's rule removes it when rounding leaves the deviation tiny but non-zero."""
    folder = tmp_path / "hepmass"
    folder.mkdir()
    train, test = hepmass_rows(330, 0), hepmass_rows(150, 1)
    train[:, 25], test[:, 25] = 3.0, 3.0  # f24 constant
    train[:, 26] = np.linspace(-2, 2, len(train))  # f25 no longer discrete
    header = ["# label", *FEATURES]
    _csv(folder / "1000_train.csv", header, train)
    _csv(folder / "1000_test.csv", [*header, "extra"], np.column_stack([test, test[:, :1]]))
    data = uci.load_uci("hepmass", data_dir=tmp_path)
    assert data.info["constant_features"] == ["f24"]
    assert data.info["discrete_features"] == ["f5", "f9", "f13", "f17", "f21"]
    assert data.event_shape == (21,) and torch.isfinite(data.train).all()


def test_hepmass_file_checks(tmp_path):
    write_hepmass(tmp_path)
    test_path = tmp_path / "hepmass" / "1000_test.csv"
    lines = test_path.read_text().splitlines()
    test_path.write_text("\n".join([lines[0].replace("f3,", "g3,")] + lines[1:]) + "\n")
    with pytest.raises(DataFileError, match=r"1000_test.csv: without its label and last column "
                                            r"it has the columns \[.*'g3'"):
        uci.load_uci("hepmass", data_dir=tmp_path)
    test_path.write_text("\n".join([lines[0]] + lines[1:4] + ["2" + lines[4][1:]]) + "\n")
    with pytest.raises(DataFileError, match=r"line 5: the label \(first column\) is 2.0"):
        uci.load_uci("hepmass", data_dir=tmp_path)
    assert hepmass.discrete_features(np.array([[0.0, 1], [0.0, 2], [1, 3]] * 3)) == [0]


# --- MINIBOONE and BSDS300 --------------------------------------------------------------------


def test_miniboone_reproduces_the_maf_preprocessing(tmp_path):
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(365, 43)) * rng.random(43) * 10 + rng.normal(size=43)
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    data = uci.load_uci("miniboone", data_dir=tmp_path)
    train, val, test = _split(raw)
    both = np.concatenate([train, val])
    for tensor, part in zip(data.splits().values(), (train, val, test), strict=True):
        _close(tensor, (part - both.mean(0)) / both.std(0))
    assert [len(s) for s in data.splits().values()] == [297, 32, 36]
    assert data.event_shape == (43,)


def write_bsds300(root: Path, sizes=(200, 30, 50), dtype=np.float32) -> dict[str, np.ndarray]:
    h5py = pytest.importorskip("h5py")

    rng = np.random.default_rng(4)
    arrays = {name: rng.normal(size=(n, 63)).astype(dtype)
              for name, n in zip(("train", "validation", "test"), sizes, strict=True)}
    (root / "BSDS300").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "BSDS300" / "BSDS300.hdf5", "w") as handle:
        for name, array in arrays.items():
            handle.create_dataset(name, data=array)
    return arrays


def test_bsds300_reads_the_three_datasets_as_they_are(tmp_path):
    arrays = write_bsds300(tmp_path)
    data = uci.load_uci("bsds300", data_dir=tmp_path)
    for tensor, name in zip(data.splits().values(), ("train", "validation", "test"),
                            strict=True):
        assert torch.equal(tensor, torch.from_numpy(arrays[name]))
    assert data.info["stored_dtype"] == {"train": "float32", "validation": "float32",
                                         "test": "float32"}


def test_bsds300_without_h5py_says_what_to_install(tmp_path, monkeypatch):
    write_bsds300(tmp_path)
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError
    with pytest.raises(MissingReader, match=r"needs the h5py package: pip install "
                                            r"'flowbench-nf\[tabular\]'"):
        uci.load_uci("bsds300", data_dir=tmp_path)


def test_wrong_dimension_is_refused(tmp_path):
    write_bsds300(tmp_path)
    import h5py

    with h5py.File(tmp_path / "BSDS300" / "BSDS300.hdf5", "a") as handle:
        del handle["test"]
        handle.create_dataset("test", data=np.zeros((5, 64)))
    with pytest.raises(DataFileError, match=r"leaves test examples of shape \(64,\), but the MAF "
                                            r"archive's files give \(63,\)"):
        uci.load_uci("bsds300", data_dir=tmp_path)


# --- missing and unreadable files -------------------------------------------------------------


@pytest.mark.parametrize("name", list(uci.UCI))
def test_missing_files_name_every_path_tried(tmp_path, monkeypatch, name):
    record = uci.UCI[name]
    with pytest.raises(FileNotFoundError) as info:
        uci.load_uci(name, data_dir=tmp_path)
    message = str(info.value)
    for relative in record.files:
        assert str(tmp_path / relative) in message
        assert str(tmp_path / "data" / relative) in message
    assert "--data-dir" in message and DATA_DIR_ENV in message and "never downloads" in message
    assert "zenodo.org/record/1161203" in message
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=rf"'{name}': no data directory given.*"
                                                rf"{DATA_DIR_ENV}=DIR"):
        uci.load_uci(name)


def _cut(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


@pytest.mark.parametrize("name", ["power", "miniboone"])
def test_npy_truncated_or_not_npy(tmp_path, name):
    if name == "power":
        write_power(tmp_path)
    else:
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "data.npy", np.zeros((100, 43)))
    path = tmp_path / name / "data.npy"
    _cut(path)
    with pytest.raises(DataFileError, match=rf"{path}: the .npy header says float64 "
                                            r"\(\d+, \d+\), \d+ bytes in all, but the file holds "
                                            r"\d+ bytes \(truncated\)"):
        uci.load_uci(name, data_dir=tmp_path)
    path.write_bytes(b"not an array at all")
    with pytest.raises(DataFileError, match=rf"{path}: not a .npy file"):
        uci.load_uci(name, data_dir=tmp_path)
    np.save(path, np.zeros(10))
    with pytest.raises(DataFileError, match=r"holds a 1-D array \(10,\), expected 2-D"):
        uci.load_uci(name, data_dir=tmp_path)


def test_power_with_the_wrong_columns(tmp_path):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((50, 7)))
    with pytest.raises(DataFileError, match="POWER's data.npy has 8 columns, this one 7"):
        uci.load_uci("power", data_dir=tmp_path)


def test_gas_pickle_truncated_or_corrupted(tmp_path):
    (tmp_path / "gas").mkdir()
    path = tmp_path / "gas" / "ethylene_CO.pickle"
    gas_frame().to_pickle(path)
    _cut(path)
    with pytest.raises(DataFileError, match=rf"{path}: not a readable pickled pandas DataFrame: "
                                            r".*\(a truncated file\?\)"):
        uci.load_uci("gas", data_dir=tmp_path)
    path.write_bytes(b"\x80\x04garbage that is no pickle")
    with pytest.raises(DataFileError, match=rf"{path}: not a readable pickled pandas DataFrame"):
        uci.load_uci("gas", data_dir=tmp_path)
    path.write_bytes(pickle.dumps({"a": [1, 2, 3]}))
    with pytest.raises(DataFileError, match="it holds a dict, not a DataFrame"):
        uci.load_uci("gas", data_dir=tmp_path)
    pd.DataFrame({"Time": ["a", "b"]}).to_pickle(path)
    with pytest.raises(DataFileError, match="not numbers|other than a numpy array"):
        uci.load_uci("gas", data_dir=tmp_path)


def test_gas_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    (tmp_path / "gas").mkdir()
    (tmp_path / "gas" / "ethylene_CO.pickle").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataFileError, match="refusing to load posix.getcwd|refusing to load"):
        uci.load_uci("gas", data_dir=tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda text: text.replace("\n1.000000,", "\n" + "1," * 40 + "1\n1.000000,", 2),
     r"not a readable CSV file \(Error tokenizing data. C error: Expected 28 fields in line \d+, "
     r"saw 41\)"),
    (lambda text: text.rstrip("\n")[:-20], r"line 331 has missing values \(a line cut short"),
    (lambda text: text + "1,2,3\n", r"line 332 has missing values"),
    (lambda text: text.replace("\n1.000000,", "\n1.000000,abc", 1).replace("abc-", "abc", 1),
     "not a number"),
    (lambda text: "", "not a readable CSV file"),
])
def test_csv_malformed_or_truncated(tmp_path, damage, message):
    write_hepmass(tmp_path)
    path = tmp_path / "hepmass" / "1000_train.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(DataFileError, match=rf"{path}: .*{message}"):
        uci.load_uci("hepmass", data_dir=tmp_path)


def test_hdf5_truncated_or_corrupted(tmp_path):
    write_bsds300(tmp_path)
    path = tmp_path / "BSDS300" / "BSDS300.hdf5"
    _cut(path)
    with pytest.raises(DataFileError, match=rf"{path}: not a readable HDF5 file \(.*truncated"):
        uci.load_uci("bsds300", data_dir=tmp_path)
    path.write_bytes(b"no hdf5 here" * 50)
    with pytest.raises(DataFileError, match=rf"{path}: not a readable HDF5 file"):
        uci.load_uci("bsds300", data_dir=tmp_path)
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("train", data=np.zeros((3, 63)))
    with pytest.raises(DataFileError, match=r"no dataset 'validation' in the HDF5 file"):
        uci.load_uci("bsds300", data_dir=tmp_path)


# --- the records, as the plugin registers them ---------------------------------------------


def test_records_and_the_plugin_convention(tmp_path, monkeypatch):
    assert list(uci.UCI) == ["power", "gas", "hepmass", "miniboone", "bsds300"]
    dims = {"power": 6, "gas": 8, "hepmass": 21, "miniboone": 43, "bsds300": 63}
    write_power(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    for name, record in uci.UCI.items():
        spec = DatasetSpec(name=name, load=partial(uci.load_uci, name),
                           description=record.description, event_shape=(record.dim,),
                           kind="vector", reference=record.reference, published=record.published)
        spec.validate()
        assert record.dim == dims[name] and "\n" not in record.description
        assert all(isinstance(r, PublishedResult) for r in record.published)
        methods = {r.method: r for r in record.published}
        assert {"MAF (5)", "Real NVP (10)", "FFJORD", "RQ-NSF (AR)"} <= set(methods)
        assert all(len(path.split("/")) == 2 for path in record.files)
    maf5 = {r.method: r for r in uci.UCI["gas"].published}["MAF (5)"]
    assert maf5.nll == pytest.approx(-9.07) and "Table 1" in maf5.source
    bsds = {r.method: r.nll for r in uci.UCI["bsds300"].published}
    assert bsds["RQ-NSF (C)"] == pytest.approx(-157.54)
    loaded = DatasetSpec(name="power", load=partial(uci.load_uci, "power"),
                         description="x").load(0)  # the runner calls load(seed)
    assert loaded.event_shape == (6,) and loaded.info["folder"] == str(tmp_path / "power")


# --- through the command line -----------------------------------------------------------------

PLUGIN = '''
from functools import partial

from flowbench import DatasetSpec, hookimpl
from flowbench.data import uci


@hookimpl
def flowbench_register_datasets():
    return [DatasetSpec(name=name, load=partial(uci.load_uci, name),
                        description=record.description, event_shape=(record.dim,),
                        kind="vector", reference=record.reference, published=record.published)
            for name, record in uci.UCI.items()]
'''

SUITE = '''
name = "uci-cli-test"
description = "realnvp on power, a few steps"
datasets = ["power"]
flows = ["realnvp"]
bases = ["normal"]
seeds = [0]

[train]
steps = 5
'''


def _cli(tmp_path: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    from flowbench.registry import get_registry

    args = []
    if "power" not in get_registry().names("dataset"):  # until a plugin registers the datasets
        (tmp_path / "uci_plugin.py").write_text(PLUGIN)
        args = ["-p", str(tmp_path / "uci_plugin.py")]
    (tmp_path / "suite.toml").write_text(SUITE)
    return subprocess.run(
        [sys.executable, "-m", "flowbench.cli", *args, "run", "--suite",
         str(tmp_path / "suite.toml"), "--data-dir", str(data_dir), "--out",
         str(tmp_path / "run"), "-j", "1", "--no-report", *extra],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_stops_before_training_on_a_truncated_file(tmp_path):
    data_dir = tmp_path / "archive"
    write_power(data_dir)
    path = data_dir / "power" / "data.npy"
    _cut(path, 0.9)
    result = _cli(tmp_path, data_dir)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"dataset 'power': {path}: the .npy header says" in result.stderr
    assert "(truncated)" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing was started
    write_power(data_dir, n=2000)  # repaired: the same command trains, with the papers' rows
    result = _cli(tmp_path, data_dir, "--no-measure")
    assert result.returncode == 0, result.stderr
    assert "power realnvp/normal seed 0: ok" in result.stderr
    published = json.loads((tmp_path / "run" / "published.json").read_text())["published"]
    assert {"dataset": "power", "method": "MAF (5)", "nll": -0.14, "unit": "nats",
            "source": "Papamakarios et al. 2017 (MAF), Table 1"} in published


def test_cli_stops_before_training_on_a_missing_file(tmp_path):
    result = _cli(tmp_path, tmp_path / "nothing")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(tmp_path / "nothing" / "power" / "data.npy") in result.stderr
    assert not (tmp_path / "run").exists()


# --- the real archive ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(uci.UCI))
def test_real_files_give_the_published_shapes(name):
    root = os.environ.get(REAL_DIR_ENV)
    if not root:
        pytest.skip(f"set {REAL_DIR_ENV} to the folder holding the MAF archive's data")
    record = uci.UCI[name]
    try:
        data = uci.load_uci(name, data_dir=root)
    except FileNotFoundError:
        pytest.skip(f"{name}'s files are not under {root}")
    assert data.event_shape == (record.dim,)
    assert [tuple(s.shape) for s in data.splits().values()] == [
        (record.n_train, record.dim), (record.n_val, record.dim), (record.n_test, record.dim)]
    for split in data.splits().values():
        assert split.dtype == torch.float32 and torch.isfinite(split).all()
    if name != "bsds300":  # standardised with train (+ validation) statistics
        assert data.train.double().mean(0).abs().max() < 0.1
