"""All trainable parameters of a model as views of one contiguous tensor.

The flows flowbench compares have dozens of small parameter tensors (glow on 2-D data: 88), and an
optimiser step or a gradient-norm clip pays a fixed cost per tensor — together about a quarter
of a training step at D = 2. With every parameter (and its gradient) a view into one flat
tensor, Adam, the clip and zeroing the gradients are one operation each. Element-wise updates are
the same arithmetic (the fused kernel may round a few elements differently, as its vectorised
and scalar paths fall on other elements); the flat gradient-norm is one reduction instead of a
norm of norms, so it can differ in the last bits (it only matters when clipping is active).

Gradients accumulate into the views in place (autograd adds into an existing ``.grad``), so the
gradients must be zeroed with ``zero_grad`` here, never set to ``None``.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


class FlatParameters:
    """Re-home ``parameters`` into one contiguous ``flat`` parameter with a contiguous gradient.

    The model keeps working unchanged (its parameters are now views of ``flat``); give
    ``[flat]`` to the optimiser. Parameters of mixed dtype or device cannot share one tensor:
    ``FlatParameters.of`` returns ``None`` for those models and training uses the tensors as they
    are.
    """

    def __init__(self, parameters: list[nn.Parameter]):
        total = sum(p.numel() for p in parameters)
        first = parameters[0]
        self.flat = nn.Parameter(torch.empty(total, dtype=first.dtype, device=first.device))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        with torch.no_grad():
            for parameter in parameters:
                size = parameter.numel()
                self.flat[offset : offset + size].copy_(parameter.reshape(-1))
                parameter.data = self.flat.data[offset : offset + size].view_as(parameter)
                parameter.grad = self.flat.grad[offset : offset + size].view_as(parameter)
                offset += size
        self.parameters = parameters

    @classmethod
    def of(cls, parameters: Iterable[nn.Parameter]) -> "FlatParameters | None":
        trainable = [p for p in parameters if p.requires_grad]
        if not trainable:
            return None
        kinds = {(p.dtype, p.device) for p in trainable}
        if len(kinds) != 1 or not trainable[0].is_floating_point():
            return None
        return cls(trainable)

    def zero_grad(self) -> None:
        assert self.flat.grad is not None
        self.flat.grad.zero_()

    @property
    def grad(self) -> Tensor:
        assert self.flat.grad is not None
        return self.flat.grad


__all__ = ["FlatParameters"]
