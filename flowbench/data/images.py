"""Image datasets: discrete pixel values with fixed, seeded train/val/test splits.

Every loader returns a :class:`~flowbench.data.dataset.Dataset` with ``kind="image"``,
``event_shape=(C, H, W)`` and ``levels=L``, whose ``train``/``val``/``test`` are float32 tensors
``(N, C, H, W)`` holding the *integer* pixel values ``0 .. L-1``: no scaling and no noise.
Dequantisation and scaling happen later, inside a model's preprocessing, so every NLL stays in
the units of the original discrete data (nats per image; :func:`bits_per_dim` converts). The true
density is unknown: ``log_prob`` and ``entropy`` are ``None``.

Datasets:

* ``digits``: scikit-learn's ``load_digits()`` (the UCI optical digits: 1797 images 8x8, values
  0..16, so ``levels=17``; it ships inside scikit-learn, nothing is downloaded). Split
  1197 / 300 / 300 (train / val / test), stratified by class: each class is shuffled with the
  seed and cut in proportion (largest remainders make the totals exact), then each split is
  shuffled. The class labels are kept in ``info["labels"]``.
* ``mnist``, ``fashion_mnist``: the standard IDX files (``train-images-idx3-ubyte`` and
  ``t10k-images-idx3-ubyte``, gzipped or not); ``levels=256``, ``(1, 28, 28)``.
* ``cifar10``: the standard python version (``cifar-10-batches-py/data_batch_1`` ..
  ``data_batch_5`` and ``test_batch`` pickles); ``levels=256``, ``(3, 32, 32)``.

For the last three, the validation split is carved at random (seeded) from the official training
files and the test split is the official test file, in its own order. They are never downloaded:
they are read from a directory given as ``data_dir`` or, when that is ``None``, by the
environment variable ``FLOWBENCH_DATA_DIR`` (the CLI's ``--data-dir``). With ``<dir>`` that
directory, the files are looked for in, in order:

* MNIST: ``<dir>/mnist/``, ``<dir>/MNIST/raw/`` (torchvision's layout), ``<dir>/``;
* Fashion-MNIST: ``<dir>/fashion_mnist/``, ``<dir>/FashionMNIST/raw/``, ``<dir>/``;
* CIFAR-10: ``<dir>/cifar-10-batches-py/``, ``<dir>/cifar10/cifar-10-batches-py/``,
  ``<dir>/cifar10/``, ``<dir>/``.

The first folder holding every file wins, and ``info["files"]`` records the paths read. MNIST and
Fashion-MNIST use the same file names, so IDX files lying directly in ``<dir>`` are taken as
whichever of the two was asked for: keep them in ``mnist/`` and ``fashion_mnist/`` when both are
about. Missing files raise :class:`FileNotFoundError` naming the dataset, the folders searched, the
exact file names expected and how to set the path; a file that is there but cannot be read raises
:class:`~flowbench.data.files.DataFileError` (a ``ValueError``) naming it.

The formats are parsed here with numpy: IDX is a big-endian header (two zero bytes, a type code,
the number of dimensions, then each size as a uint32) followed by the raw array; gzip is detected
from the file's first bytes, whatever its name. The CIFAR pickles are read by a restricted
unpickler that builds numpy arrays and plain containers only (a pickle can otherwise run code).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .dataset import Dataset
from .files import DATA_DIR_ENV as DATA_DIR_ENV  # re-exported: the variable images are found by
from .files import NUMPY_PICKLE_GLOBALS, DataFileError, find_files

DIGITS_LEVELS = 17
DIGITS_SPLIT = (1197, 300, 300)  # train / val / test, out of 1797

IDX_TRAIN_IMAGES = "train-images-idx3-ubyte"
IDX_TEST_IMAGES = "t10k-images-idx3-ubyte"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"

#: default validation sizes carved from the official training files
MNIST_N_VAL = 10000  # 50000 / 10000 / 10000
CIFAR_N_VAL = 5000  # 45000 / 5000 / 10000

DESCRIPTIONS: dict[str, str] = {
    "digits": "scikit-learn's 8x8 handwritten digits (1797 images, 17 grey levels), "
              "1197/300/300 class-stratified split",
    "mnist": "MNIST handwritten digits, 28x28, 256 grey levels, from local IDX files "
             "(50000/10000 train/val from the official train set, official 10000 test)",
    "fashion_mnist": "Fashion-MNIST clothing images, 28x28, 256 grey levels, from local IDX files "
                     "(50000/10000 train/val from the official train set, official 10000 test)",
    "cifar10": "CIFAR-10 colour images, 3x32x32, 256 levels, from the local python pickles "
               "(45000/5000 train/val from data_batch_1..5, official test_batch)",
}


# --- helpers ------------------------------------------------------------------------------------


def bits_per_dim(nll_nats: float, event_shape: int | Sequence[int]) -> float:
    """Convert an NLL in nats per example to bits per dimension: ``nll / (D ln 2)`` with ``D``
    the number of elements of ``event_shape`` (e.g. ``C * H * W``)."""
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    dim = math.prod(int(d) for d in shape)
    if dim <= 0:
        raise ValueError(f"event_shape must have a positive number of elements, got {shape}")
    return float(nll_nats) / (dim * math.log(2.0))


def _check_count(label: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _image_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer shares of ``total`` proportional to ``weights`` that sum exactly to ``total``
    (Hamilton's method; ties broken by index)."""
    quota = total * weights / weights.sum()
    shares = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - shares), kind="stable")
    shares[order[: total - int(shares.sum())]] += 1
    return shares


# --- digits ---------------------------------------------------------------------------------


def load_digits(
    seed: int = 0, n_val: int = DIGITS_SPLIT[1], n_test: int = DIGITS_SPLIT[2]
) -> Dataset:
    """scikit-learn's 8x8 digits (values 0..16, ``levels=17``), split class-stratified.

    The val and test sizes are shared among the 10 classes in proportion to the class sizes
    (largest remainders); every remaining image is train (1197 with the defaults). Within each
    class the images are shuffled with ``seed`` before cutting, and each split is then shuffled.
    ``info["labels"]`` holds each split's class labels (lists of ints, in split order).
    """
    from sklearn import datasets as sk_datasets

    seed = _check_count("seed", seed)
    n_val = _check_count("n_val", n_val)
    n_test = _check_count("n_test", n_test)
    bunch = sk_datasets.load_digits()
    images = np.asarray(bunch.images)  # (1797, 8, 8) float64 holding 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    n = images.shape[0]
    if n_val + n_test > n - 1:
        raise ValueError(f"n_val + n_test must leave at least one train image of {n}, "
                         f"got {n_val} + {n_test}")
    if not (np.all(images == np.round(images)) and images.min() >= 0
            and images.max() <= DIGITS_LEVELS - 1):
        raise ValueError("scikit-learn's digits are not integers in 0..16 any more")

    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    sizes = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    val_share = _largest_remainder(n_val, sizes)
    test_share = _largest_remainder(n_test, sizes)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c, n_v, n_t in zip(classes, val_share, test_share, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        parts["val"].append(idx[:n_v])
        parts["test"].append(idx[n_v : n_v + n_t])
        parts["train"].append(idx[n_v + n_t :])
    index = {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}

    split = {name: _image_tensor(images[idx][:, None]) for name, idx in index.items()}
    return Dataset(
        name="digits",
        train=split["train"],
        val=split["val"],
        test=split["test"],
        event_shape=(1, 8, 8),
        kind="image",
        levels=DIGITS_LEVELS,
        description=DESCRIPTIONS["digits"],
        info={
            "seed": seed,
            "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten "
                      "digits, 8x8 downsampled; bundled with scikit-learn)",
            "split": {name: int(idx.size) for name, idx in index.items()},
            "split_method": "stratified by class (largest-remainder shares), numpy "
                            "default_rng(seed)",
            "labels": {name: labels[idx].tolist() for name, idx in index.items()},
            "class_counts": {name: np.bincount(labels[idx], minlength=classes.size).tolist()
                             for name, idx in index.items()},
        },
    )


# --- reading files ------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """A file's content, gunzipped if it starts with the gzip magic bytes."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataFileError(f"{path}: gzip data is truncated or corrupted ({error})") from None
    return raw


# --- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------

_IDX_TYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzipped or not): magic ``0x00 0x00 <type> <ndim>``, then ``ndim``
    big-endian uint32 sizes, then the array in C order."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataFileError(f"{path}: not an IDX file (magic bytes {data[:4]!r})")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: IDX header truncated")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = math.prod(shape)
    if len(data) != header + count * dtype.itemsize:
        raise DataFileError(
            f"{path}: IDX header says shape {shape} ({header + count * dtype.itemsize} bytes in "
            f"all) but the file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)


def _idx_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFileError(f"{path}: expected uint8 images (N, H, W), got {images.dtype} "
                            f"{images.shape}")
    return images[:, None]  # (N, 1, H, W)


# --- CIFAR-10 pickles ------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers only; anything else is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in NUMPY_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def _cifar_batch(path: Path) -> np.ndarray:
    try:
        batch = _ArrayUnpickler(io.BytesIO(_read_bytes(path)), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataFileError(f"{path}: not a CIFAR-10 python batch ({error})") from None
    data = None
    if isinstance(batch, dict):
        data = batch.get(b"data", batch.get("data"))
    if data is None:
        raise DataFileError(f"{path}: not a CIFAR-10 python batch (no b'data' entry)")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFileError(f"{path}: expected b'data' uint8 (N, 3072), got {data.dtype} "
                            f"{data.shape}")
    return data.reshape(-1, 3, 32, 32)  # rows are 1024 red, 1024 green, 1024 blue, row-major


# --- shared split logic ---------------------------------------------------------------------


def _file_dataset(
    name: str, train_images: np.ndarray, test_images: np.ndarray, seed: int, n_val: int,
    max_train: int | None, files: dict[str, Path], folder: Path,
) -> Dataset:
    seed = _check_count("seed", seed)
    n_val = _check_count("n_val", n_val)
    n_all = train_images.shape[0]
    if n_val >= n_all:
        raise ValueError(f"dataset {name!r}: n_val={n_val} leaves no train images of {n_all}")
    if max_train is not None:
        max_train = _check_count("max_train", max_train, minimum=1)
    perm = np.random.default_rng(seed).permutation(n_all)
    val_idx = perm[:n_val]
    train_idx = perm[n_val:] if max_train is None else perm[n_val : n_val + max_train]
    event_shape = tuple(int(d) for d in train_images.shape[1:])
    if tuple(test_images.shape[1:]) != event_shape:
        raise DataFileError(f"dataset {name!r}: train images are {event_shape} but test images "
                            f"are {tuple(test_images.shape[1:])}")
    return Dataset(
        name=name,
        train=_image_tensor(train_images[train_idx]),
        val=_image_tensor(train_images[val_idx]),
        test=_image_tensor(test_images),
        event_shape=event_shape,
        kind="image",
        levels=256,
        description=DESCRIPTIONS[name],
        info={
            "seed": seed,
            "folder": str(folder),
            "files": {key: str(path) for key, path in files.items()},
            "split": {"train": int(train_idx.size), "val": int(val_idx.size),
                      "test": int(test_images.shape[0])},
            "split_method": "val drawn from the official train files with numpy "
                            "default_rng(seed); test = the official test file in its order"
                            + ("" if max_train is None else f"; train capped at {max_train}"),
            "n_official_train": int(n_all),
        },
    )


def _load_idx_dataset(name: str, subdirs: Sequence[str], seed: int, data_dir, n_val: int,
                      max_train: int | None) -> Dataset:
    folder, files = find_files(name, data_dir, subdirs, (IDX_TRAIN_IMAGES, IDX_TEST_IMAGES),
                                allow_gz=True)
    train = _idx_images(files[IDX_TRAIN_IMAGES])
    test = _idx_images(files[IDX_TEST_IMAGES])
    return _file_dataset(name, train, test, seed, n_val, max_train, files, folder)


def load_mnist(seed: int = 0, data_dir: str | os.PathLike | None = None, n_val: int = MNIST_N_VAL,
               max_train: int | None = None) -> Dataset:
    """MNIST from local IDX files (see the module docstring for where they are looked for).

    Train/val: the 60000 official training images, ``n_val`` of them drawn (seeded) for
    validation; test: the 10000 official test images. ``max_train`` keeps only that many train
    images (for quick runs; val and test are unchanged).
    """
    return _load_idx_dataset("mnist", ("mnist", "MNIST/raw", ""), seed, data_dir, n_val,
                             max_train)


def load_fashion_mnist(seed: int = 0, data_dir: str | os.PathLike | None = None,
                       n_val: int = MNIST_N_VAL, max_train: int | None = None) -> Dataset:
    """Fashion-MNIST from local IDX files; splits as :func:`load_mnist`."""
    return _load_idx_dataset("fashion_mnist", ("fashion_mnist", "FashionMNIST/raw", ""), seed,
                             data_dir, n_val, max_train)


def load_cifar10(seed: int = 0, data_dir: str | os.PathLike | None = None,
                 n_val: int = CIFAR_N_VAL, max_train: int | None = None) -> Dataset:
    """CIFAR-10 from the local python pickles (``data_batch_1..5``, ``test_batch``).

    Train/val: the 50000 images of the five training batches, ``n_val`` drawn (seeded) for
    validation; test: the 10000 of ``test_batch``. ``max_train`` as in :func:`load_mnist`.
    """
    names = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
    subdirs = ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10", "")
    folder, files = find_files("cifar10", data_dir, subdirs, names, allow_gz=False)
    train = np.concatenate([_cifar_batch(files[f]) for f in CIFAR_TRAIN_FILES])
    test = _cifar_batch(files[CIFAR_TEST_FILE])
    return _file_dataset("cifar10", train, test, seed, n_val, max_train, files, folder)


IMAGE_DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}
