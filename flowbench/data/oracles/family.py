"""The record every high-dimensional oracle family fills in, and the seeding shared by all.

A *family* is a recipe for a density in any dimension D >= ``min_dim``; its *density* for one D
is a fixed object (rotations, mixture parameters, ... drawn once from a generator seeded by the
family's name and D alone), so every data seed samples the same density.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

#: first word of the SeedSequence that draws a density's fixed parameters
PARAMETER_STREAM = 0x0AC1E
#: first word of the SeedSequence that draws a dataset's samples
SAMPLE_STREAM = 0x5A3B1E
#: first word of the SeedSequence of a Monte Carlo entropy estimate
ENTROPY_STREAM = 0xE4712


class OracleDensity(Protocol):
    """One family's density in one dimension.

    ``log_prob`` takes finite float64 points ``(N, dim)`` and returns the exact log-density
    ``(N,)``; input checks and NaN/inf rows are handled by :func:`flowbench.data.oracles.log_prob`.
    """

    dim: int

    @property
    def entropy(self) -> float: ...

    @property
    def entropy_method(self) -> str: ...

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def log_prob(self, x: np.ndarray) -> np.ndarray: ...

    def info(self) -> dict: ...


@dataclass(frozen=True)
class OracleFamily:
    """A density family with an exact oracle in every dimension ``dim >= min_dim``.

    ``build(dim, rng)`` makes the family's density for ``dim``; ``rng`` is the generator of
    :func:`parameter_rng` and is the only randomness the density's parameters may use.
    ``description`` is one line saying what the family tests; ``oracle_method`` says how
    ``log_prob`` is computed.
    """

    name: str
    description: str
    reference: str
    min_dim: int
    oracle_method: str
    build: Callable[[int, np.random.Generator], OracleDensity]

    def __post_init__(self) -> None:
        if not callable(self.build):
            raise TypeError(f"oracle family {self.name!r}: build must be callable")
        if "-" in self.name or not self.name:
            raise ValueError(f"oracle family name {self.name!r} must be non-empty, without '-'")

    def check_dim(self, dim: int) -> int:
        """``dim`` as an int, or ValueError naming it and the valid range."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < self.min_dim:
            raise ValueError(
                f"oracle family {self.name!r}: dim must be an integer >= {self.min_dim}, "
                f"got {dim!r}"
            )
        return int(dim)

    def density(self, dim: int) -> OracleDensity:
        """The family's density in ``dim`` dimensions (built once per process)."""
        return _build(self, self.check_dim(dim))

    def sample(self, dim: int, n: int, seed: int) -> np.ndarray:
        """``n`` i.i.d. points, float64 ``(n, dim)``, fully determined by (family, dim, seed)."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return self.density(dim).sample(int(n), sample_rng(self.name, self.check_dim(dim), seed))

    def log_prob(self, dim: int, x: np.ndarray) -> np.ndarray:
        """Exact log-density, float64 ``(N,)``; NaN rows give NaN, rows with an inf give -inf."""
        density = self.density(dim)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != density.dim:
            raise ValueError(f"expected points of shape (N, {density.dim}), got {x.shape}")
        finite = np.isfinite(x).all(1)
        out = np.where(np.isnan(x).any(1), np.nan, -np.inf)
        if finite.any():
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                val = density.log_prob(x[finite])
            # Finite input, so NaN can only come from overflow at points so remote (|x| ~ 1e150)
            # that the density underflows anyway.
            out[finite] = np.where(np.isnan(val), -np.inf, val)
        return out

    def entropy(self, dim: int) -> float:
        """The density's differential entropy in nats."""
        return self.density(dim).entropy


@functools.cache
def _build(family: OracleFamily, dim: int) -> OracleDensity:
    return family.build(dim, parameter_rng(family.name, dim))


def _family_word(name: str) -> int:
    # crc32, not hash(): the same on every run and machine (hash() of a str is salted).
    return zlib.crc32(name.encode())


def parameter_seed(name: str, dim: int) -> list[int]:
    """The SeedSequence entropy of a density's fixed parameters: the family and D only."""
    return [PARAMETER_STREAM, _family_word(name), int(dim)]


def parameter_rng(name: str, dim: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(parameter_seed(name, dim)))


def entropy_seed(name: str, dim: int) -> list[int]:
    """The SeedSequence entropy of a density's Monte Carlo entropy estimate (family and D)."""
    return [ENTROPY_STREAM, _family_word(name), int(dim)]


def sample_rng(name: str, dim: int, seed: int) -> np.random.Generator:
    """The generator of one dataset's samples: (family, D, seed), apart from the parameters'."""
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    words = [SAMPLE_STREAM, _family_word(name), int(dim), int(seed)]
    return np.random.default_rng(np.random.SeedSequence(words))


def haar_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly (Haar) distributed orthogonal matrix with determinant +1.

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q (Mezzadri 2007, How to
    generate random matrices from the classical compact groups), then one column flipped if
    needed so that det = +1.
    """
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
