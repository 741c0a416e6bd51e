"""Batch normalisation as an invertible layer.

RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803, section 3.7) applies batch
normalisation to the coupling outputs; as a map of each example it is a per-feature affine map,
``z = (x - mean) / sqrt(var + eps) * exp(log_gamma) + beta``, with the log-det
``sum_c (log_gamma_c - 0.5 log(var_c + eps))`` times the elements per feature of one example
(``H * W`` for images). The layer keeps the training signal of the paper: in training mode the
statistics are the batch's (and gradients flow through them), in evaluation mode the running
averages.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform


def _per_feature(param: Tensor, x: Tensor) -> Tensor:
    return param.view(1, -1, *([1] * (x.dim() - 2)))


class BatchNormFlow(Transform):
    """Per-feature (dimension 1) batch normalisation with a learned log-scale and shift.

    - Training mode: mean and (biased) variance over every dimension but 1 of the batch; the
      running averages are updated as in ``nn.BatchNorm`` (``running = (1 - momentum) * running
      + momentum * batch``, the variance unbiased). The log-det uses the batch variance: it is the
      Jacobian of the map with the statistics held fixed — the usual training objective, not the
      exact Jacobian of the batch-coupled map.
    - Evaluation mode: the running averages; an exact, per-example invertible affine map.
    - ``inverse`` always uses the running averages, so it raises in training mode (the latent
      batch's statistics are not the ones forward used). Call ``eval()`` before sampling.

    ``running_mean`` and ``running_var`` are buffers (saved in the state dict).
    """

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if features < 1:
            raise ValueError(f"BatchNormFlow needs features >= 1, got {features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.features, self.momentum, self.eps = int(features), float(momentum), float(eps)
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def _check(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.features:
            raise ValueError(f"BatchNormFlow({self.features}) expects (N, {self.features}, ...), "
                             f"got {tuple(x.shape)}")

    def _batch_statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        dims = [0, *range(2, x.dim())]
        count = x.numel() // self.features
        if count < 2:
            raise ValueError("BatchNormFlow in training mode needs more than one value per "
                             f"feature, got input of shape {tuple(x.shape)}")
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            unbiased = var.detach() * (count / (count - 1))
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        return mean, var

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        if self.training:
            mean, var = self._batch_statistics(x)
        else:
            mean, var = self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = (x - _per_feature(mean, x)) * torch.exp(_per_feature(log_scale, x)) \
            + _per_feature(self.beta, x)
        per_example = x[0, 0].numel() if x.shape[0] else 1  # elements per feature of one example
        return z, (log_scale.sum() * per_example).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        if self.training:
            raise RuntimeError(
                "BatchNormFlow.inverse uses the running averages and cannot invert a training-"
                "mode forward (which used that batch's statistics); call .eval() first"
            )
        self._check(z)
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        return (z - _per_feature(self.beta, z)) * torch.exp(-_per_feature(log_scale, z)) \
            + _per_feature(self.running_mean, z)

    def extra_repr(self) -> str:
        return f"{self.features}, momentum={self.momentum}, eps={self.eps}"


__all__ = ["BatchNormFlow"]
