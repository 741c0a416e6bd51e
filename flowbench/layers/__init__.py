"""Invertible building blocks shared by every flow recipe (built-in or third-party).

Every layer maps data to latent in ``forward(x) -> (z, logabsdet)`` and back in ``inverse(z)``.
"""

from .base import Compose, Transform, event_size, flatten_layers, spatial_size, sum_except_batch
from .autoregressive import MADE, MaskedAutoregressiveAffine, MaskedLinear
from .conditioners import MLP, ACTIVATIONS, make_activation, mlp_factory
from .coupling import AdditiveCoupling, AffineCoupling, ConditionerFactory
from .elementwise import ActNorm, DiagonalScaling, FixedAffine, Logit
from .linear import InvertibleLinear, LUInvertibleLinear, random_rotation
from .partition import (
    PARTITION_KINDS, IndexPartition, MaskPartition, Partition, alternating_partition,
)
from .permutation import Permutation
from .precision import conditioned, conditioner_precision
from .convnets import NORMS, ResNet, ResidualBlock, resnet_factory
from .masks import channel_partition, checkerboard_mask
from .multiscale import Multiscale
from .normalization import BatchNormFlow
from .reshape import Flatten, Squeeze

__all__ = [
    "NORMS", "ResNet", "ResidualBlock", "resnet_factory", "channel_partition",
    "checkerboard_mask", "Multiscale", "BatchNormFlow", "Flatten", "Squeeze",
    "ACTIVATIONS", "ActNorm", "AdditiveCoupling", "AffineCoupling", "Compose",
    "ConditionerFactory", "DiagonalScaling", "FixedAffine", "IndexPartition", "InvertibleLinear",
    "LUInvertibleLinear", "Logit", "MADE", "MLP", "MaskPartition", "MaskedAutoregressiveAffine",
    "MaskedLinear", "PARTITION_KINDS", "Partition",
    "Permutation", "Transform", "alternating_partition",
    "event_size", "flatten_layers", "make_activation", "mlp_factory", "random_rotation",
    "spatial_size", "sum_except_batch", "conditioned", "conditioner_precision",
]
