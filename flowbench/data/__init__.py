"""Dataset records and helpers (splits, preprocessing with log-det, oracles)."""

from .dataset import Dataset, as_float32, split_tensor

__all__ = ["Dataset", "as_float32", "split_tensor"]
