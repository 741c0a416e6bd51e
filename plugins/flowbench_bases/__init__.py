"""Built-in plugin: base distributions (standard normal, standard logistic, learnable diagonal
Gaussian, the fixed bimodal base of the two-moons exercise, a learnable Gaussian mixture)."""

from __future__ import annotations

from flowbench import BaseSpec, hookimpl
from flowbench.distributions import (
    DiagonalNormal, StandardLogistic, StandardNormal, bimodal, learnable_mixture,
)
from flowbench.specs import defaults_of


@hookimpl
def flowbench_register_bases() -> list[BaseSpec]:
    return [
        BaseSpec(
            name="normal", build=StandardNormal, defaults=defaults_of(StandardNormal),
            description="standard normal N(0, I)",
            reference="Dinh et al. 2015; Rezende & Mohamed 2015",
        ),
        BaseSpec(
            name="logistic", build=StandardLogistic, defaults=defaults_of(StandardLogistic),
            description="standard logistic, independent per dimension (NICE's MNIST prior)",
            reference="Dinh, Krueger & Bengio 2015, arXiv:1410.8516, Table 1",
        ),
        BaseSpec(
            name="diag", build=DiagonalNormal, defaults=defaults_of(DiagonalNormal),
            description="diagonal Gaussian with learnable mean and scales",
        ),
        BaseSpec(
            name="bimodal", build=bimodal,
            description="fixed mixture of two Gaussians at ±separation/2 on the first axis",
            reference="the 'swap the base' two-moons exercise",
            defaults=defaults_of(bimodal),
            search_space=lambda trial: {
                "separation": trial.suggest_float("separation", 2.0, 6.0),
                "scale": trial.suggest_float("scale", 0.3, 1.0),
            },
        ),
        BaseSpec(
            name="gmm", build=learnable_mixture,
            description="learnable mixture of K diagonal Gaussians",
            reference="Papamakarios et al. 2021, arXiv:1912.02762, sec. 2.3.3",
            defaults=defaults_of(learnable_mixture),
            search_space=lambda trial: {
                "components": trial.suggest_int("components", 2, 32, log=True),
                "init_spread": trial.suggest_float("init_spread", 0.5, 2.0),
            },
        ),
    ]
