"""Image datasets: digits splits, the IDX and CIFAR-10 readers on tiny synthetic files, where the
files are looked for, the error when they are absent, and bits per dimension."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from flowbench.data import images
from flowbench.data.images import (
    DATA_DIR_ENV, DESCRIPTIONS, IMAGE_DATASETS, bits_per_dim, load_cifar10, load_digits,
    load_fashion_mnist, load_mnist, read_idx,
)


def _rows(t: torch.Tensor) -> list[bytes]:
    """Each image as bytes (a hashable key), sorted: a multiset of images."""
    return sorted(row.tobytes() for row in t.reshape(t.shape[0], -1).numpy().astype(np.uint8))


def _check_image_record(data, name, shape, levels):
    assert data.name == name and data.kind == "image"
    assert data.event_shape == shape and data.levels == levels
    assert data.log_prob is None and data.entropy is None and not data.has_oracle
    assert DESCRIPTIONS[name] in data.description
    for split in data.splits().values():
        assert split.dtype == torch.float32 and tuple(split.shape[1:]) == shape
        assert torch.equal(split, split.round())
        assert split.min() >= 0 and split.max() <= levels - 1


# --- digits ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def sk_digits():
    from sklearn.datasets import load_digits as sk_load

    return sk_load()


def test_digits_record(digits):
    _check_image_record(digits, "digits", (1, 8, 8), 17)
    assert [len(s) for s in digits.splits().values()] == [1197, 300, 300]
    assert digits.info["split"] == {"train": 1197, "val": 300, "test": 300}
    # Pixel values use the whole range 0..16.
    assert set(torch.unique(digits.train).tolist()) == set(range(17))


def test_digits_splits_partition_the_data(digits, sk_digits):
    all_images = torch.cat([digits.train, digits.val, digits.test])
    assert _rows(all_images) == _rows(torch.as_tensor(sk_digits.images))
    # Disjoint: no image of one split (by position in the original data) is in another. Some
    # digits images are exact duplicates of each other, so compare multiplicities.
    from collections import Counter

    counts = Counter(_rows(torch.as_tensor(sk_digits.images)))
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        ca = Counter(_rows(digits.splits()[a]))
        cb = Counter(_rows(digits.splits()[b]))
        for key in set(ca) & set(cb):
            assert ca[key] + cb[key] <= counts[key]


def test_digits_labels_and_class_balance(digits, sk_digits):
    by_image: dict[bytes, set[int]] = {}
    for image, label in zip(sk_digits.images, sk_digits.target, strict=True):
        by_image.setdefault(image.astype(np.uint8).tobytes(), set()).add(int(label))
    totals = np.bincount(sk_digits.target)
    for name, split in digits.splits().items():
        labels = digits.info["labels"][name]
        assert len(labels) == split.shape[0]
        for image, label in zip(split.numpy().astype(np.uint8), labels, strict=True):
            assert label in by_image[image.reshape(8, 8).tobytes()]
        counts = np.bincount(labels, minlength=10)
        assert counts.tolist() == digits.info["class_counts"][name]
        # Stratified: each class's share is its proportional share, rounded.
        expected = totals * split.shape[0] / totals.sum()
        assert np.all(np.abs(counts - expected) < 1), (name, counts, expected)


def test_digits_deterministic_per_seed(digits):
    again = load_digits(seed=0)
    for a, b in zip(digits.splits().values(), again.splits().values(), strict=True):
        assert torch.equal(a, b)
    other = load_digits(seed=1)
    assert not torch.equal(other.val, digits.val)
    assert _rows(torch.cat([other.train, other.val, other.test])) == _rows(
        torch.cat([digits.train, digits.val, digits.test]))


def test_digits_custom_sizes_and_errors():
    data = load_digits(seed=3, n_val=100, n_test=200)
    assert [len(s) for s in data.splits().values()] == [1497, 100, 200]
    with pytest.raises(ValueError, match="n_val"):
        load_digits(n_val=-1)
    with pytest.raises(ValueError, match="train image"):
        load_digits(n_val=1000, n_test=797)


# --- IDX files (MNIST, Fashion-MNIST) --------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool, code: int = 0x08) -> Path:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _idx_pair(folder: Path, gz: bool, seed: int, n_train: int = 30, n_test: int = 7):
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte", train, gz)
    write_idx(folder / "t10k-images-idx3-ubyte", test, gz)
    return train, test


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", array, gz)), array)
    ints = np.array([[1, -2, 70000], [3, 4, -5]], dtype=">i4")
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", ints, gz, code=0x0C)), ints)


def test_read_idx_detects_gzip_by_content_and_rejects_bad_files(tmp_path):
    array = np.ones((2, 4, 4), dtype=np.uint8)
    gz = write_idx(tmp_path / "x", array, gz=True)
    renamed = gz.rename(tmp_path / "no_suffix")
    assert np.array_equal(read_idx(renamed), array)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 4, 4) + b"\x00" * 5)
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\).*48 bytes.*21 bytes"):
        read_idx(bad)
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw", ""])
def test_load_mnist_from_data_dir(tmp_path, gz, layout):
    train, test = _idx_pair(tmp_path / layout if layout else tmp_path, gz, seed=0)
    data = load_mnist(seed=0, data_dir=tmp_path, n_val=10)
    _check_image_record(data, "mnist", (1, 28, 28), 256)
    assert [len(s) for s in data.splits().values()] == [20, 10, 7]
    # val is carved from the train file, test is the test file in its own order
    assert _rows(torch.cat([data.train, data.val])) == _rows(torch.as_tensor(train))
    assert torch.equal(data.test, torch.as_tensor(test, dtype=torch.float32)[:, None])
    assert Path(data.info["folder"]) == (tmp_path / layout if layout else tmp_path)
    assert all(p.endswith(".gz") == gz for p in data.info["files"].values())


def test_idx_split_is_seeded_and_max_train(tmp_path):
    _idx_pair(tmp_path / "mnist", gz=True, seed=1)
    a = load_mnist(seed=5, data_dir=tmp_path, n_val=10)
    b = load_mnist(seed=5, data_dir=str(tmp_path), n_val=10)
    c = load_mnist(seed=6, data_dir=tmp_path, n_val=10)
    assert torch.equal(a.val, b.val) and torch.equal(a.train, b.train)
    assert not torch.equal(a.val, c.val)
    small = load_mnist(seed=5, data_dir=tmp_path, n_val=10, max_train=4)
    assert torch.equal(small.val, a.val) and torch.equal(small.train, a.train[:4])
    assert torch.equal(small.test, a.test)
    with pytest.raises(ValueError, match="n_val"):
        load_mnist(data_dir=tmp_path, n_val=30)


def test_env_var_and_separate_fashion_folder(tmp_path, monkeypatch):
    mnist_train, _ = _idx_pair(tmp_path / "mnist", gz=False, seed=2)
    fashion_train, fashion_test = _idx_pair(tmp_path / "fashion_mnist", gz=True, seed=3,
                                            n_train=25, n_test=4)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    mnist = load_mnist(n_val=5)
    fashion = load_fashion_mnist(n_val=5)
    _check_image_record(fashion, "fashion_mnist", (1, 28, 28), 256)
    assert _rows(torch.cat([mnist.train, mnist.val])) == _rows(torch.as_tensor(mnist_train))
    assert _rows(torch.cat([fashion.train, fashion.val])) == _rows(torch.as_tensor(fashion_train))
    assert len(fashion.test) == 4
    # An explicit data_dir wins over the environment variable.
    other = tmp_path / "other"
    _idx_pair(other / "FashionMNIST" / "raw", gz=False, seed=4, n_train=12, n_test=2)
    assert len(load_fashion_mnist(data_dir=other, n_val=2).test) == 2


# --- CIFAR-10 ----------------------------------------------------------------------------------


def _cifar_batch(path: Path, data: np.ndarray, protocol: int) -> None:
    batch = {b"batch_label": b"synthetic", b"labels": list(range(len(data))),
             b"data": data, b"filenames": [b"img%d.png" % i for i in range(len(data))]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


def _cifar_files(folder: Path, protocol: int = 2, per_batch: int = 4, n_test: int = 3):
    rng = np.random.default_rng(7)
    batches = [rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8) for _ in range(5)]
    for i, batch in enumerate(batches, 1):
        _cifar_batch(folder / f"data_batch_{i}", batch, protocol)
    test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    _cifar_batch(folder / "test_batch", test, protocol)
    return np.concatenate(batches), test


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_load_cifar10(tmp_path, protocol):
    train, test = _cifar_files(tmp_path / "cifar-10-batches-py", protocol)
    data = load_cifar10(seed=0, data_dir=tmp_path, n_val=5)
    _check_image_record(data, "cifar10", (3, 32, 32), 256)
    assert [len(s) for s in data.splits().values()] == [15, 5, 3]
    # Rows are 1024 red, then green, then blue values, each 32 x 32 row-major.
    row = test[1]
    image = data.test[1].numpy()
    assert image[0, 0, 0] == row[0] and image[0, 0, 1] == row[1] and image[0, 1, 0] == row[32]
    assert image[1, 0, 0] == row[1024] and image[2, 31, 31] == row[3071]
    assert _rows(torch.cat([data.train, data.val])) == _rows(
        torch.as_tensor(train.reshape(-1, 3, 32, 32)))


def test_cifar10_env_var_and_batch_folder_itself(tmp_path, monkeypatch):
    folder = tmp_path / "somewhere"
    _cifar_files(folder)
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    data = load_cifar10(seed=1, n_val=2, max_train=6)
    assert [len(s) for s in data.splits().values()] == [6, 2, 3]


def test_cifar10_pickles_cannot_run_code(tmp_path):
    _cifar_files(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(ValueError, match="refusing"):
        load_cifar10(data_dir=tmp_path, n_val=2)


# --- absent files ------------------------------------------------------------------------------


@pytest.mark.parametrize("loader, name, files", [
    (load_mnist, "mnist", ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"]),
    (load_fashion_mnist, "fashion_mnist", ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"]),
    (load_cifar10, "cifar10", ["data_batch_1", "data_batch_5", "test_batch"]),
])
def test_absent_files_error(tmp_path, monkeypatch, loader, name, files):
    with pytest.raises(FileNotFoundError) as info:
        loader(data_dir=tmp_path / "empty")
    message = str(info.value)
    assert f"'{name}'" in message and str(tmp_path / "empty") in message
    for file in files:
        assert file in message
    assert "--data-dir" in message and DATA_DIR_ENV in message and "never download" in message
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=rf"'{name}'.*no data directory.*{DATA_DIR_ENV}"):
        loader()


def test_unreadable_files_raise_data_file_error(tmp_path):
    """A file that is there but cut short is a DataFileError (a ValueError naming the file),
    which stops a run before training like a missing file does."""
    from flowbench.data.files import DataFileError

    train, _ = _idx_pair(tmp_path / "mnist", gz=True, seed=8)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataFileError, match=rf"{path}: gzip data is truncated"):
        load_mnist(data_dir=tmp_path, n_val=2)
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", train[:, :, :20], gz=True)
    with pytest.raises(DataFileError, match=r"train images are \(1, 28, 20\) but test images"):
        load_mnist(data_dir=tmp_path, n_val=2)


def test_half_present_files_are_absent(tmp_path):
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8),
              gz=True)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(data_dir=tmp_path)


# --- registry of loaders, bits per dimension ---------------------------------------------------


def test_image_datasets_and_descriptions():
    assert set(IMAGE_DATASETS) == set(DESCRIPTIONS) == {"digits", "mnist", "fashion_mnist",
                                                        "cifar10"}
    assert IMAGE_DATASETS["digits"] is load_digits
    for text in DESCRIPTIONS.values():
        assert text and "\n" not in text
    assert images.DATA_DIR_ENV == "FLOWBENCH_DATA_DIR"


def test_bits_per_dim():
    assert bits_per_dim(64 * math.log(2), (1, 8, 8)) == pytest.approx(1.0)
    assert bits_per_dim(3072 * 8 * math.log(2), (3, 32, 32)) == pytest.approx(8.0)
    assert bits_per_dim(2 * math.log(2), 2) == pytest.approx(1.0)
    assert bits_per_dim(0.0, [1, 28, 28]) == 0.0
    with pytest.raises(ValueError, match=r"positive number of elements, got \(0, 8, 8\)"):
        bits_per_dim(1.0, (0, 8, 8))
