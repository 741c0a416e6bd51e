"""The dataset record every dataset plugin returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class Dataset:
    """Fixed train/val/test splits of one data source, plus its true density where known.

    ``log_prob`` is the *oracle*: the exact log-density of the generating process (float64 in,
    float64 ``(N,)`` out), so a model's test NLL can be compared with the best achievable.
    ``entropy`` is the generating density's differential entropy in nats. ``oracle_method`` and
    ``entropy_method`` say how each was obtained ("closed form", "quadrature ...").

    ``levels`` marks discrete data (e.g. pixel intensities ``0..levels-1``): training adds
    uniform dequantisation noise, and NLL is also reported in bits per dimension of the original
    discrete data.
    """

    name: str
    train: Tensor
    val: Tensor
    test: Tensor
    event_shape: tuple[int, ...]
    kind: str = "vector"
    log_prob: Callable[[Tensor], Tensor] | None = None
    entropy: float | None = None
    oracle_method: str | None = None
    entropy_method: str | None = None
    description: str = ""
    info: dict = field(default_factory=dict)
    levels: int | None = None

    @property
    def has_oracle(self) -> bool:
        return self.log_prob is not None

    def splits(self) -> dict[str, Tensor]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_tensor(
    data: Tensor, n_train: int, n_val: int, n_test: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Cut an already shuffled tensor into train/val/test of the given sizes."""
    if data.shape[0] < n_train + n_val + n_test:
        raise ValueError(
            f"need {n_train + n_val + n_test} examples for the splits, got {data.shape[0]}"
        )
    train = data[:n_train]
    val = data[n_train : n_train + n_val]
    test = data[n_train + n_val : n_train + n_val + n_test]
    return train.contiguous(), val.contiguous(), test.contiguous()


def as_float32(array) -> Tensor:
    return torch.as_tensor(array, dtype=torch.float32)
