"""The ``mnist`` / ``cifar10`` suites at the papers' sizes, their ``-small`` CPU variants, and the
papers' published bits/dim.

Recipes, as far as the papers state them:

* NICE (Dinh, Krueger & Bengio 2015, arXiv:1410.8516, section 5.1 and Table 1): MNIST, 4
  additive couplings whose conditioners are ReLU MLPs of 5 hidden layers x 1000 units, a
  diagonal scaling, a standard logistic prior; data dequantised with uniform noise and rescaled to
  [0, 1] (no logit); Adam with learning rate 1e-3.
* RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803, section 4.1): multiscale
  architecture, ResNet conditioners; for CIFAR-10 8 residual blocks of 64 feature maps and one
  downscaling (flowbench ``scales=2``); batch normalisation; Adam, learning rate 1e-3, batch 64,
  L2 weight decay 5e-5; logit preprocessing with alpha = 0.05; horizontal flips on CIFAR-10.
* Glow (Kingma & Dhariwal 2018, arXiv:1807.03039, section 5 and the hyperparameter table of its
  appendix; openai/glow README commands): CIFAR-10 with L = 3 levels of K = 32 steps, 512-channel
  conditioners, affine couplings, invertible 1x1 convolutions, Adam with learning rate 1e-3 and a
  linear warm-up (10 epochs in the official code), minibatch 512 (8 GPUs x 64), 8-bit data.

What flowbench cannot express is listed in each suite's ``notes`` (``flowbench list``).
"""

from __future__ import annotations

import math

from flowbench import PublishedResult, SuiteSpec

#: train-split sizes of flowbench's MNIST and CIFAR-10 (flowbench.data.images)
TRAIN_SIZE = {"mnist": 50_000, "cifar10": 45_000}
#: paper-size suites train each cell for about this many passes over the train split
EPOCHS = 100


def _steps(dataset: str, batch_size: int, epochs: float = EPOCHS) -> int:
    return math.ceil(epochs * TRAIN_SIZE[dataset] / batch_size)


# --- published numbers (bits/dim on the test set; lower is better) -----------------------------

#: (784 ln 256 - 1980.50) / (784 ln 2): NICE's MNIST log-likelihood converted, see PUBLISHED
NICE_MNIST_BPD = round((784 * math.log(256) - 1980.50) / (784 * math.log(2)), 2)

PUBLISHED = {
    "mnist": (
        PublishedResult("NICE (converted)", NICE_MNIST_BPD,
                        "Dinh, Krueger & Bengio 2015 (NICE), Table 1: test log-likelihood 1980.50 "
                        "nats on MNIST dequantised with uniform noise and rescaled to [0, 1]; "
                        "as 8-bit bits/dim: (784 ln 256 - 1980.50) / (784 ln 2)"),
        PublishedResult("Real NVP", 1.06, "Grathwohl et al. 2019 (FFJORD), Table 2"),
        PublishedResult("Glow", 1.05, "Grathwohl et al. 2019 (FFJORD), Table 2 (Glow's own "
                                      "code pads MNIST to 32x32)"),
        PublishedResult("FFJORD", 0.99, "Grathwohl et al. 2019 (FFJORD), Table 2"),
    ),
    "cifar10": (
        PublishedResult("Real NVP", 3.49, "Dinh, Sohl-Dickstein & Bengio 2017 (Real NVP), "
                                          "Table 1"),
        PublishedResult("Glow", 3.35, "Kingma & Dhariwal 2018 (Glow), Table 2"),
        PublishedResult("FFJORD", 3.40, "Grathwohl et al. 2019 (FFJORD), Table 2"),
    ),
}


# --- architectures ------------------------------------------------------------------------------

NICE_MNIST = {"layers": 4, "width": 1000, "depth": 5, "activation": "relu"}
REALNVP_PAPER = {"scales": 2, "hidden": 64, "blocks": 8, "batchnorm": True}
#: Glow's conditioner has no residual blocks: conv -> ReLU -> (1x1 conv ->) ReLU -> zero conv
GLOW_CIFAR = {"levels": 3, "steps": 32, "hidden": 512, "blocks": 0, "lu": True}
GLOW_MNIST = {**GLOW_CIFAR, "levels": 2}  # 28 = 4 x 7: two squeezes at most

#: what every paper-size image cell shares: evaluation in memory-sized chunks
EVAL = {"eval_every": 1000, "eval_batch_size": 500, "init_batch_size": 512}
MEASURE = {"references": False, "speed_batch": 256, "speed_repeats": 3,
           "logdet_dims": (2, 8, 32), "linear_channels": (4, 16, 64)}


def _train(dataset: str, flow: str, small: bool = False) -> dict:
    """The paper's optimiser settings for ``flow`` on ``dataset`` (steps: ``EPOCHS`` passes)."""
    if flow == "nice":
        recipe = {"batch_size": 256, "lr": 1e-3, "schedule": "constant"}
    elif flow == "realnvp":
        recipe = {"batch_size": 64, "lr": 1e-3, "schedule": "constant", "weight_decay": 5e-5,
                  **({"augment": "hflip"} if dataset == "cifar10" else {})}
    else:
        recipe = {"batch_size": 512, "lr": 1e-3, "schedule": "constant",
                  "warmup_steps": _steps(dataset, 512, epochs=10)}
    if small:
        return recipe
    return {**EVAL, **recipe, "steps": _steps(dataset, recipe["batch_size"])}


COMMON_NOTES = (
    "Differences from the papers: every cell trains for {epochs} epochs (the papers trained "
    "until convergence, Glow for thousands of epochs) and keeps its best validation checkpoint; "
    "Adam's betas are PyTorch's defaults; no weight normalisation, and the conditioners' "
    "batch norm (RealNVP) and actnorm (Glow) are absent (flowbench's ResNet is "
    "normalisation-free); coupling scales use flowbench's soft clamp (scale_bound 3) instead of "
    "RealNVP's tanh x scale or Glow's sigmoid; factored-out halves go to the base "
    "distribution (Glow's learned split prior and learned top prior are absent); RealNVP keeps "
    "the paper's logit preprocessing with alpha 0.05, Glow and NICE take pixels rescaled to "
    "[0, 1) without the logit (Glow centres them on 0: an affine shift, absorbed by actnorm); "
    "n_bits = 8 throughout; the validation split is carved from the official training files.")

MNIST_NOTES = (
    COMMON_NOTES.format(epochs=EPOCHS)
    + " MNIST: RealNVP's paper has no MNIST experiment, so its CIFAR-10 recipe is used "
    "(no flips: digits are not mirror-symmetric). Glow's code pads MNIST to 32x32x3 and uses "
    "L = 3; flowbench models the 1x28x28 digits with L = 2 (28 admits two squeezes), so Glow's "
    "1.05 is not an exact like-for-like number. NICE: Adam with beta2 = 0.01 and eps = 1e-4 "
    "and 1500 epochs in the paper, PyTorch's Adam defaults and a minibatch of 256 (the paper "
    "does not state one) here. Published NICE is converted from its log-likelihood in the "
    "[0, 1]-rescaled space (source column).")

CIFAR_NOTES = (
    COMMON_NOTES.format(epochs=EPOCHS)
    + " CIFAR-10: Glow's conditioner is conv3x3 -> ReLU -> conv3x3 (zero-initialised) here; the "
    "paper's has a 1x1 convolution and actnorm in the middle. Glow's official code also shifts "
    "images (data augmentation level 1); flowbench only flips, and only for RealNVP as its "
    "paper does. NICE is not in this suite: its CIFAR-10 model needs ZCA whitening, which "
    "flowbench does not provide.")

SMALL_NOTES = (
    "The paper suites' families scaled down for a 2-core CPU: one seed (a 2-core hour holds "
    "one cell per flow; the paper-size suites keep 3 seeds for a spread), small conditioners, "
    "the papers' batch sizes capped at 64, steps per flow {steps}. Projected from measured "
    "30-step runs (not a measured total): {timing}. A smoke-sized comparison, far from the "
    "papers' numbers; see the paper-size suite's notes for the recipes and differences.")

#: measured with ``flowbench run --suite mnist-small --steps 30 --no-report -j 2`` on the 2-core
#: development machine (load average about 5: other jobs shared the cores), random pixels in
#: format-faithful files; seconds per optimisation step (median) and per validation pass
MNIST_SMALL_TIMING = (
    "0.65 s/step RealNVP, 0.15 Glow, 0.026 NICE; a validation pass over 10000 images 55 s, "
    "10 s, 1 s; so about 52 min for RealNVP's cell on one worker, 37 min for NICE then Glow "
    "on the other: about 55 min in all with -j 2")
#: same machine for cifar10-small (Glow: as above; RealNVP: ``--flows realnvp --steps 30 -j 1``
#: from full-size format-faithful files, load average about 4)
CIFAR_SMALL_TIMING = (
    "Glow 0.28 s/step, a validation pass over 5000 images 8 s, the final evaluation of all "
    "splits 135 s; RealNVP 0.29 s/step, a validation pass 16 s, the final evaluation of all "
    "60000 images 192 s; so about 50 min for Glow's cell and 44 min for RealNVP's, side by "
    "side with -j 2: about 50-55 min in all")

MNIST_SMALL_FLOWS = {"nice": {"layers": 4, "width": 256, "depth": 3},
                     "realnvp": {"scales": 2, "hidden": 16, "blocks": 1},
                     "glow": {"levels": 2, "steps": 4, "hidden": 32, "blocks": 0}}
CIFAR_SMALL_FLOWS = {"realnvp": {"scales": 2, "hidden": 16, "blocks": 1},
                     "glow": {"levels": 2, "steps": 4, "hidden": 32, "blocks": 0}}
#: (steps, eval_every) per flow, chosen from the timings above
MNIST_SMALL_STEPS = {"nice": (20_000, 2000), "realnvp": (4000, 1000), "glow": (10_000, 1000)}
CIFAR_SMALL_STEPS = {"realnvp": (8000, 1000), "glow": (10_000, 1000)}
SMALL_EVAL = {"eval_batch_size": 1000, "init_batch_size": 256}
SMALL_MEASURE = {"references": False, "speed_batch": 256, "speed_repeats": 2,
                 "logdet_dims": (2, 8), "logdet_repeats": 2, "linear_channels": (4, 16)}


def _small_train(dataset: str, flow: str, steps: dict[str, tuple[int, int]]) -> dict:
    recipe = _train(dataset, flow, small=True)
    count, eval_every = steps[flow]
    # the papers' batch sizes, capped: one CPU thread per cell
    recipe["batch_size"] = min(recipe["batch_size"], 64)
    if "warmup_steps" in recipe:
        recipe["warmup_steps"] = count // 10
    return {**SMALL_EVAL, **recipe, "steps": count, "eval_every": eval_every}


def _steps_text(steps: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{flow} {count}" for flow, (count, _) in steps.items())


def _small_suite(dataset: str, flows: tuple[str, ...], steps: dict[str, tuple[int, int]],
                 flow_hparams: dict, preprocessing: dict, timing: str, bases: tuple[str, ...],
                 flow_bases: dict | None = None) -> SuiteSpec:
    """A paper suite scaled down for a 2-core CPU: one seed, the per-flow ``steps``, and
    notes that say so."""
    return SuiteSpec(
        name=f"{dataset}-small",
        description=f"the {dataset} suite scaled down for a 2-core CPU (about an hour), 1 seed",
        datasets=(dataset,), flows=flows, bases=bases, flow_bases=flow_bases or {}, seeds=(0,),
        train=SMALL_EVAL,
        flow_train={f: _small_train(dataset, f, steps) for f in flows},
        flow_hparams=flow_hparams, flow_preprocessing=preprocessing, measure=SMALL_MEASURE,
        notes=SMALL_NOTES.format(steps=_steps_text(steps), timing=timing),
    )


def suites() -> list[SuiteSpec]:
    """``mnist``, ``cifar10`` (papers' sizes, for a GPU) and ``mnist-small``, ``cifar10-small``."""
    mnist_flows = ("nice", "realnvp", "glow")
    cifar_flows = ("realnvp", "glow")
    nice_data = {"nice": {"logit": False}, "glow": {"logit": False}}
    cifar_data = {"glow": {"logit": False}}
    bases = {"nice": ("logistic",), "realnvp": ("normal",), "glow": ("normal",)}
    return [
        SuiteSpec(
            name="mnist",
            description="NICE, RealNVP and Glow on MNIST at the papers' sizes (GPU), bits/dim, "
                        "3 seeds; needs your MNIST files",
            datasets=("mnist",), flows=mnist_flows, bases=("normal", "logistic"),
            flow_bases=bases, seeds=(0, 1, 2),
            train=EVAL,
            flow_train={f: _train("mnist", f) for f in mnist_flows},
            flow_hparams={"nice": NICE_MNIST, "realnvp": REALNVP_PAPER, "glow": GLOW_MNIST},
            flow_preprocessing=nice_data, measure=MEASURE, notes=MNIST_NOTES,
        ),
        SuiteSpec(
            name="cifar10",
            description="RealNVP and Glow on CIFAR-10 at the papers' sizes (GPU), bits/dim, "
                        "3 seeds; needs your CIFAR-10 files",
            datasets=("cifar10",), flows=cifar_flows, bases=("normal",), seeds=(0, 1, 2),
            train=EVAL,
            flow_train={f: _train("cifar10", f) for f in cifar_flows},
            flow_hparams={"realnvp": REALNVP_PAPER, "glow": GLOW_CIFAR},
            flow_preprocessing=cifar_data, measure=MEASURE, notes=CIFAR_NOTES,
        ),
        _small_suite("mnist", mnist_flows, MNIST_SMALL_STEPS, MNIST_SMALL_FLOWS, nice_data,
                     MNIST_SMALL_TIMING, bases=("normal", "logistic"), flow_bases=bases),
        _small_suite("cifar10", cifar_flows, CIFAR_SMALL_STEPS, CIFAR_SMALL_FLOWS, cifar_data,
                     CIFAR_SMALL_TIMING, bases=("normal",)),
    ]
