"""zuko's transforms as flowbench transforms.

zuko builds a flow as a *lazy* module: calling ``flow.transform(c)`` returns a
``torch.distributions.Transform`` mapping data to latent (the direction flowbench uses), with
``call_and_ladj(x) -> (z, log|det dz/dx|)`` and ``.inv`` for latent -> data. The adapter builds
that transform once per call, unconditionally (``c=None``), and keeps nothing else of the zuko
flow: its base distribution is dropped, so any flowbench base (``normal``, ``bimodal``, ``gmm``,
...) goes with it.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from flowbench.layers import Compose, Transform

#: activation names the builders accept, and the torch modules zuko is given for them
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU,
}


class ZukoTransform(Transform):
    """One zuko lazy transform (``zuko.flows.LazyTransform``) as a flowbench ``Transform``.

    ``forward(x) -> (z, logabsdet)`` is zuko's ``call_and_ladj`` of ``lazy()``; ``inverse(z)`` is
    ``lazy().inv(z)``: analytic where zuko has a closed form, otherwise zuko's own numerical
    inverse (bisection for monotonic networks and polynomials, an ODE solve for CNF).
    """

    def __init__(self, lazy: nn.Module):
        super().__init__()
        self.lazy = lazy

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, ladj = self.lazy().call_and_ladj(x)
        if ladj.dim() > 1:  # an element-wise zuko transform (event_dim 0): sum per example
            ladj = ladj.flatten(1).sum(1)
        return z, ladj

    def inverse(self, z: Tensor) -> Tensor:
        return self.lazy().inv(z)

    def extra_repr(self) -> str:
        return type(self.lazy).__name__


def from_zuko(flow: Any) -> Compose:
    """The transform of a zuko ``Flow`` (data -> latent), one flowbench layer per zuko layer, so
    flowbench's per-layer checks see each of them. The zuko flow's base is not kept."""
    lazy = flow.transform
    layers = getattr(lazy, "transforms", None)  # LazyComposedTransform
    if layers is None:
        layers = [lazy]
    return Compose([ZukoTransform(layer) for layer in layers])


def activation(name: str) -> type[nn.Module]:
    """The torch activation module class for ``name``; a clear error for anything else."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid choices: "
                         f"{', '.join(ACTIVATIONS)}") from None


def hidden(value: Any, name: str = "hidden_features") -> tuple[int, ...]:
    """Hidden widths as a tuple of positive ints, from a sequence ``(64, 64)`` or the string
    form ``"64x64"`` the search spaces suggest (Optuna's categorical choices must be scalars)."""
    if isinstance(value, str):
        try:
            widths = tuple(int(part) for part in value.lower().split("x"))
        except ValueError:
            widths = ()
    elif isinstance(value, (list, tuple)):
        widths = tuple(value)
    else:
        widths = ()
    if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0
                             for w in widths):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints such as (64, 64) "
                         f"or a string such as '64x64', got {value!r}")
    return widths
