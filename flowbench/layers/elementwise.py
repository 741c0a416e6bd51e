"""Element-wise and per-feature affine layers.

- ``DiagonalScaling`` — the diagonal scaling layer closing a NICE model (Dinh, Krueger & Bengio
  2015, arXiv:1410.8516, section 3.3): ``z = x * exp(log_scale)``; lets a volume-preserving stack of
  additive couplings give more weight to some dimensions.
- ``ActNorm`` — activation normalisation from Glow (Kingma & Dhariwal 2018, arXiv:1807.03039,
  section 3.1): per-feature ``z = (x + bias) * exp(log_scale)`` with a data-dependent
  initialisation that makes the first batch zero-mean, unit-variance per feature.
- ``FixedAffine`` — a non-trainable element-wise affine map, used for preprocessing (e.g.
  standardising data) so its log-det still counts and NLL stays in the original data space.
- ``Logit`` — RealNVP's logit transform of [0, 1]-valued data, with its log-det.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Transform, per_pixel


def _per_feature(param: Tensor, x: Tensor) -> Tensor:
    """View a ``(C,)`` parameter so it broadcasts over ``(N, C, *spatial)``."""
    return param.view(1, -1, *([1] * (x.dim() - 2)))


class DiagonalScaling(Transform):
    """NICE's diagonal scaling ``z = x * exp(log_scale)``, one scale per element of the event."""

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(event_shape))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logabsdet = self.log_scale.sum().expand(x.shape[0])
        return x * torch.exp(self.log_scale), logabsdet

    def inverse(self, z: Tensor) -> Tensor:
        return z * torch.exp(-self.log_scale)


class ActNorm(Transform):
    """Glow's actnorm over dimension 1 (features of vectors, channels of images).

    The first forward pass on a batch of at least two examples sets ``bias = -mean`` and
    ``log_scale = -log(std)``. Whether that happened is the ``initialized`` buffer, saved in the
    state dict, so a reloaded model keeps its trained values instead of re-initialising on the
    next batch (a known bug where the flag is a plain Python attribute).
    """

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))
        # Python mirror of the buffer, so a trained layer's forward reads no tensor (no sync,
        # no graph break under torch.compile); reset whenever a state dict is loaded
        self._known_initialized = False

    def _load_from_state_dict(self, *args, **kwargs):
        self._known_initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set bias and scale so that ``x`` comes out zero-mean, unit-variance per feature."""
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        self.bias.copy_(-flat.mean(dim=1))
        self.log_scale.copy_(-torch.log(flat.std(dim=1) + self.eps))
        self.initialized.fill_(True)
        self._known_initialized = True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self._known_initialized:
            if bool(self.initialized):
                self._known_initialized = True
            elif x.shape[0] >= 2:
                self.initialize(x)
        z = (x + _per_feature(self.bias, x)) * torch.exp(_per_feature(self.log_scale, x))
        logabsdet = per_pixel(self.log_scale.sum(), x).expand(x.shape[0])
        return z, logabsdet

    def inverse(self, z: Tensor) -> Tensor:
        return z * torch.exp(-_per_feature(self.log_scale, z)) - _per_feature(self.bias, z)


class FixedAffine(Transform):
    """``z = (x - loc) / scale`` element-wise with fixed (buffer) parameters of the event shape."""

    def __init__(self, loc: Tensor, scale: Tensor):
        super().__init__()
        scale = torch.as_tensor(scale, dtype=torch.get_default_dtype())
        if not bool((scale > 0).all()):
            raise ValueError("FixedAffine needs strictly positive scales")
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.get_default_dtype()))
        self.register_buffer("log_scale", torch.log(scale))

    @classmethod
    def standardize(cls, data: Tensor, min_scale: float = 1e-6) -> "FixedAffine":
        """Per-element standardisation fitted on ``data`` (N, *event_shape)."""
        data = data.to(torch.get_default_dtype())
        return cls(data.mean(dim=0), data.std(dim=0).clamp_min(min_scale))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z * torch.exp(self.log_scale) + self.loc


class Logit(Transform):
    """``z = logit(alpha + (1 - 2 alpha) x)`` element-wise, for data in [0, 1].

    The logit transform RealNVP applies to (dequantised, rescaled) pixels (Dinh et al. 2017,
    section 4.1): it maps the bounded data to the real line; ``alpha`` keeps the ends finite.
    Its log-det counts, so NLL stays in the data's original units.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(q) - torch.log1p(-q)
        logabsdet = math.log(1 - 2 * self.alpha) - torch.log(q) - torch.log1p(-q)
        return z, logabsdet.reshape(x.shape[0], -1).sum(dim=1)

    def inverse(self, z: Tensor) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
