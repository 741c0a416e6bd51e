"""One flowbench builder per zuko flow family that defines a density on vectors (R^D).

Each ``build_<family>(event_shape, **hparams)`` constructs the zuko flow with zuko's own
constructor arguments and defaults (``transforms``, ``hidden_features``, ``bins``, ...), keeps
its transform (data -> latent) and drops its base (:func:`flowbench_zuko.adapter.from_zuko`).
Two kinds of arguments differ in form only: ``activation`` is a name (``"relu"``, ``"elu"``,
...) where zuko takes a module class, and a monotonic network's ``network`` dict is flattened to
``network_hidden_features``. Keyword defaults here are zuko 1.6's; the registered defaults are
read from these signatures (``flowbench.specs.defaults_of``).

Left out: ``NCSF`` (circular splines: a density on the torus [-pi, pi]^D, not on R^D) and
``GMM`` (a mixture distribution, not a transform one can put a base under).
"""

from __future__ import annotations

from typing import Any, Sequence

import zuko

from flowbench.layers import Compose

from .adapter import activation as activation_class
from .adapter import from_zuko, hidden


def features_of(event_shape: Sequence[int], family: str) -> int:
    """D for a vector event shape ``(D,)``; images and scalars are refused by name."""
    if len(event_shape) != 1 or int(event_shape[0]) < 1:
        raise ValueError(f"zuko-{family} models vectors (D,); got event shape "
                         f"{tuple(event_shape)}")
    return int(event_shape[0])


def positive(name: str, value: Any, family: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"zuko-{family}: {name} must be a positive integer, got {value!r}")
    return int(value)


def mlp(hidden_features: Any, activation: str) -> dict[str, Any]:
    """zuko's MLP keyword arguments from flowbench's hyperparameters."""
    return {"hidden_features": hidden(hidden_features),
            "activation": activation_class(activation)}


def autoregressive(family: str, transforms: int, passes: int | None, residual: bool,
                   hidden_features: Any, activation: str) -> dict[str, Any]:
    """Keyword arguments shared by zuko's masked autoregressive families (MADE conditioners)."""
    kwargs = {"transforms": positive("transforms", transforms, family),
              "residual": bool(residual), **mlp(hidden_features, activation)}
    if passes is not None:
        kwargs["passes"] = positive("passes", passes, family)
    return kwargs


def build_maf(
    event_shape: tuple[int, ...], transforms: int = 3, randperm: bool = False,
    passes: int | None = None, hidden_features: Any = (64, 64), activation: str = "relu",
    residual: bool = False,
) -> Compose:
    """zuko ``MAF``: affine (monotonic, scale-clamped) autoregressive layers with MADE
    conditioners, orders alternating ascending / descending (Papamakarios et al. 2017,
    arXiv:1705.07057). ``passes=2`` makes each layer a coupling."""
    features = features_of(event_shape, "maf")
    return from_zuko(zuko.flows.MAF(features, randperm=bool(randperm), **autoregressive(
        "maf", transforms, passes, residual, hidden_features, activation)))


def build_nsf(
    event_shape: tuple[int, ...], bins: int = 8, slope: float = 1e-3, transforms: int = 3,
    randperm: bool = False, passes: int | None = None, hidden_features: Any = (64, 64),
    activation: str = "relu", residual: bool = False,
) -> Compose:
    """zuko ``NSF``: autoregressive monotonic rational-quadratic splines on [-5, 5] with linear
    tails (Durkan et al. 2019, Neural Spline Flows, arXiv:1906.04068)."""
    features = features_of(event_shape, "nsf")
    return from_zuko(zuko.flows.NSF(
        features, bins=positive("bins", bins, "nsf"), slope=float(slope),
        randperm=bool(randperm),
        **autoregressive("nsf", transforms, passes, residual, hidden_features, activation)))


def build_realnvp(
    event_shape: tuple[int, ...], transforms: int = 3, randmask: bool = False,
    hidden_features: Any = (64, 64), activation: str = "relu",
) -> Compose:
    """zuko ``RealNVP``: affine couplings on alternating (or random) masks (Dinh, Sohl-Dickstein &
    Bengio 2017, Density estimation using Real NVP, arXiv:1605.08803)."""
    features = features_of(event_shape, "realnvp")
    return from_zuko(zuko.flows.RealNVP(
        features, transforms=positive("transforms", transforms, "realnvp"),
        randmask=bool(randmask), **mlp(hidden_features, activation)))


def build_nice(
    event_shape: tuple[int, ...], transforms: int = 3, randmask: bool = False,
    hidden_features: Any = (64, 64), activation: str = "relu",
) -> Compose:
    """zuko ``NICE``: additive (volume-preserving) couplings (Dinh, Krueger & Bengio 2014, NICE,
    arXiv:1410.8516); zuko has no final diagonal scaling layer."""
    features = features_of(event_shape, "nice")
    return from_zuko(zuko.flows.NICE(
        features, transforms=positive("transforms", transforms, "nice"),
        randmask=bool(randmask), **mlp(hidden_features, activation)))


def build_naf(
    event_shape: tuple[int, ...], transforms: int = 3, randperm: bool = False, signal: int = 16,
    network_hidden_features: Any = (64, 64), passes: int | None = None,
    hidden_features: Any = (64, 64), activation: str = "relu", residual: bool = False,
) -> Compose:
    """zuko ``NAF``: autoregressive monotonic neural networks (positive weights) modulated by a
    ``signal`` vector, soft-clipped between layers (Huang et al. 2018, Neural Autoregressive
    Flows, arXiv:1804.00779). Inverse by bisection on [-10, 10]."""
    features = features_of(event_shape, "naf")
    return from_zuko(zuko.flows.NAF(
        features, randperm=bool(randperm), signal=positive("signal", signal, "naf"),
        network={"hidden_features": hidden(network_hidden_features, "network_hidden_features")},
        **autoregressive("naf", transforms, passes, residual, hidden_features, activation)))


def build_unaf(
    event_shape: tuple[int, ...], transforms: int = 3, randperm: bool = False, signal: int = 16,
    network_hidden_features: Any = (64, 64), passes: int | None = None,
    hidden_features: Any = (64, 64), activation: str = "relu", residual: bool = False,
) -> Compose:
    """zuko ``UNAF``: autoregressive unconstrained monotonic networks, the integral of a positive
    network computed by quadrature (Wehenkel & Louppe 2019, Unconstrained Monotonic Neural
    Networks, arXiv:1908.05164). Inverse by bisection on [-10, 10]."""
    features = features_of(event_shape, "unaf")
    return from_zuko(zuko.flows.UNAF(
        features, randperm=bool(randperm), signal=positive("signal", signal, "unaf"),
        network={"hidden_features": hidden(network_hidden_features, "network_hidden_features")},
        **autoregressive("unaf", transforms, passes, residual, hidden_features, activation)))


def build_sospf(
    event_shape: tuple[int, ...], degree: int = 4, polynomials: int = 3, slope: float = 1e-3,
    transforms: int = 3, randperm: bool = False, passes: int | None = None,
    hidden_features: Any = (64, 64), activation: str = "relu", residual: bool = False,
) -> Compose:
    """zuko ``SOSPF``: autoregressive sum-of-squares polynomials (Jaini, Selby & Yu 2019,
    Sum-of-Squares Polynomial Flow, arXiv:1905.02325). Inverse by bisection on [-10, 10]."""
    features = features_of(event_shape, "sospf")
    return from_zuko(zuko.flows.SOSPF(
        features, degree=positive("degree", degree, "sospf"),
        polynomials=positive("polynomials", polynomials, "sospf"), slope=float(slope),
        randperm=bool(randperm),
        **autoregressive("sospf", transforms, passes, residual, hidden_features, activation)))


def build_bpf(
    event_shape: tuple[int, ...], degree: int = 16, transforms: int = 3, randperm: bool = False,
    passes: int | None = None, hidden_features: Any = (64, 64), activation: str = "relu",
    residual: bool = False,
) -> Compose:
    """zuko ``BPF``: autoregressive Bernstein polynomials on [-5, 5], linearly extrapolated
    outside (Ramasinghe et al. 2021, Robust normalizing flows using Bernstein-type polynomials,
    arXiv:2102.03509). Inverse by bisection on [-10, 10]."""
    features = features_of(event_shape, "bpf")
    return from_zuko(zuko.flows.BPF(
        features, degree=positive("degree", degree, "bpf"), randperm=bool(randperm),
        **autoregressive("bpf", transforms, passes, residual, hidden_features, activation)))


def build_cnf(
    event_shape: tuple[int, ...], freqs: int = 3, atol: float = 1e-6, rtol: float = 1e-5,
    exact: bool = True, hidden_features: Any = (64, 64), activation: str = "elu",
) -> Compose:
    """zuko ``CNF``: a free-form Jacobian transform, an MLP vector field integrated from t = 0 to
    1 by an adaptive ODE solver with time features of ``freqs`` frequencies; ``exact`` traces
    the Jacobian exactly instead of Hutchinson's estimate (Chen et al. 2018, Neural ODEs,
    arXiv:1806.07366; Grathwohl et al. 2019, FFJORD, arXiv:1810.01367)."""
    features = features_of(event_shape, "cnf")
    if not (atol > 0 and rtol > 0):
        raise ValueError(f"zuko-cnf: atol and rtol must be positive, got {atol!r}, {rtol!r}")
    return from_zuko(zuko.flows.CNF(
        features, freqs=positive("freqs", freqs, "cnf"), atol=float(atol), rtol=float(rtol),
        exact=bool(exact), **mlp(hidden_features, activation)))


def build_gf(
    event_shape: tuple[int, ...], transforms: int = 3, components: int = 8,
) -> Compose:
    """zuko ``GF``: element-wise Gaussianization layers (a learnt mixture CDF of ``components``
    logistic-like kernels followed by the Gaussian quantile) between learnt rotations (Meng et
    al. 2020, Gaussianization Flows, arXiv:2003.01941). Inverse by bisection."""
    features = features_of(event_shape, "gf")
    return from_zuko(zuko.flows.GF(
        features, transforms=positive("transforms", transforms, "gf"),
        components=positive("components", components, "gf")))


#: family -> (builder, one-line description, paper)
FAMILIES: dict[str, tuple[Any, str, str]] = {
    "maf": (build_maf, "zuko MAF: masked autoregressive affine layers (MADE), alternating orders",
            "Papamakarios, Pavlakou & Murray 2017, arXiv:1705.07057"),
    "nsf": (build_nsf, "zuko NSF: autoregressive rational-quadratic splines on [-5, 5]",
            "Durkan, Bekasov, Murray & Papamakarios 2019, arXiv:1906.04068"),
    "realnvp": (build_realnvp, "zuko RealNVP: affine couplings on alternating masks",
                "Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803"),
    "nice": (build_nice, "zuko NICE: additive couplings on alternating masks",
             "Dinh, Krueger & Bengio 2014, arXiv:1410.8516"),
    "naf": (build_naf, "zuko NAF: autoregressive monotonic neural networks; bisection inverse",
            "Huang, Krueger, Lacoste & Courville 2018, arXiv:1804.00779"),
    "unaf": (build_unaf, "zuko UNAF: autoregressive integrals of positive networks; bisection "
             "inverse", "Wehenkel & Louppe 2019, arXiv:1908.05164"),
    "sospf": (build_sospf, "zuko SOSPF: autoregressive sum-of-squares polynomials; bisection "
              "inverse", "Jaini, Selby & Yu 2019, arXiv:1905.02325"),
    "bpf": (build_bpf, "zuko BPF: autoregressive Bernstein polynomials; bisection inverse",
            "Ramasinghe, Fernando, Khan & Barnes 2021, arXiv:2102.03509"),
    "cnf": (build_cnf, "zuko CNF: continuous flow, exact trace, adaptive ODE solver",
            "Chen et al. 2018, arXiv:1806.07366; Grathwohl et al. 2019, arXiv:1810.01367"),
    "gf": (build_gf, "zuko GF: element-wise Gaussianization layers between learnt rotations",
           "Meng, Song, Song & Ermon 2020, arXiv:2003.01941"),
}

#: zuko flows deliberately not registered, and why
LEFT_OUT: dict[str, str] = {
    "NCSF": "circular rational-quadratic splines: a density on the torus [-pi, pi]^D, not R^D",
    "GMM": "a Gaussian mixture distribution, not a transform (nothing to put a base under)",
}
