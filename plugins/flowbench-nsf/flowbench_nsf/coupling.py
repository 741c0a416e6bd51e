"""The rational-quadratic spline coupling layer of Neural Spline Flows.

Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline Flows" (NeurIPS), arXiv:1906.04068,
section 3.2 ("RQ-NSF (C)"): a coupling layer (Dinh et al. 2015/2017) whose element-wise map is the
monotonic rational-quadratic spline of :mod:`flowbench_nsf.spline`, with the spline's ``3K - 1``
parameters per transformed feature predicted by a conditioner network from the kept features.
"""

from __future__ import annotations

from flowbench.layers import Transform, sum_except_batch
from flowbench.layers.coupling import ConditionerFactory
from flowbench.layers.partition import Partition
from flowbench.layers.precision import conditioned
from torch import Tensor

from .spline import (
    DEFAULT_BOUND, DEFAULT_MIN_BIN_HEIGHT, DEFAULT_MIN_BIN_WIDTH, DEFAULT_MIN_DERIVATIVE,
    parameter_count, rational_quadratic_spline, split_parameters,
)


class RationalQuadraticCoupling(Transform):
    """``z = b*x + (1-b)*RQS(x; theta(b*x))``: a spline coupling (Durkan et al. 2019, RQ-NSF (C)).

    ``partition`` says which features condition and which are transformed (an ``IndexPartition``
    is the fast path: the conditioner sees only the kept features and predicts parameters only for
    the transformed ones; a ``MaskPartition`` works too). ``conditioner(in, out)`` builds the
    network, e.g. ``flowbench.layers.mlp_factory(width, depth, activation)``; it must output
    ``(3 * bins - 1) * partition.out_features`` numbers per example.

    With a conditioner whose last layer starts at zero (as ``mlp_factory``'s does) every spline
    parameter is 0 at initialisation, which this parameterisation maps to uniform bins and unit
    derivatives: the layer is exactly the identity (log-det 0) then.
    """

    def __init__(
        self,
        partition: Partition,
        conditioner: ConditionerFactory,
        bins: int = 8,
        bound: float = DEFAULT_BOUND,
        min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
        min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
        min_derivative: float = DEFAULT_MIN_DERIVATIVE,
    ):
        super().__init__()
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}")
        self.partition = partition
        self.bins = int(bins)
        self.bound = float(bound)
        self.min_bin_width = float(min_bin_width)
        self.min_bin_height = float(min_bin_height)
        self.min_derivative = float(min_derivative)
        self.params_per_feature = parameter_count(self.bins)
        self.conditioner = conditioner(
            partition.in_features, self.params_per_feature * partition.out_features
        )

    def _spline_parameters(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Spline parameters shaped like the transformed part plus a trailing ``3K - 1`` axis."""
        raw = conditioned(self.conditioner, self.partition.kept(x))
        # (N, P * F, ...) -> (N, P, F, ...): parameter-major, so a mask (F, ...) broadcasts
        raw = raw.unflatten(1, (self.params_per_feature, -1))
        raw = self.partition.active(raw)
        return split_parameters(raw.movedim(1, -1).contiguous(), self.bins)

    def _spline(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        widths, heights, derivatives = self._spline_parameters(x)
        out, logabsdet = rational_quadratic_spline(
            self.partition.transformed(x), widths, heights, derivatives, inverse=inverse,
            bound=self.bound, min_bin_width=self.min_bin_width,
            min_bin_height=self.min_bin_height, min_derivative=self.min_derivative,
        )
        # kept elements of a mask partition contribute nothing (their parameters are zero too)
        return self.partition.merge(x, out), self.partition.active(logabsdet)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, logabsdet = self._spline(x, inverse=False)
        return z, sum_except_batch(logabsdet)

    def inverse(self, z: Tensor) -> Tensor:
        # the kept part of z equals that of x, so the conditioner can be re-evaluated on z
        return self._spline(z, inverse=True)[0]

    def extra_repr(self) -> str:
        return f"bins={self.bins}, bound={self.bound}"


__all__ = ["RationalQuadraticCoupling"]
