"""Maximum-likelihood fitting of a ``Flow``: Adam on minibatches, validation-based model selection.

The loss is the mean negative log-likelihood in nats. Every ``eval_every`` steps the validation
NLL is measured; the best checkpoint is kept and restored at the end, and training stops early
after ``patience`` evaluations without improvement. A non-finite loss, gradient or validation NLL
stops the fit with status ``diverged`` — such numbers are never averaged into a result.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .checkpoint import CheckpointPolicy, rng_state, set_rng_state
from .compile import compile_log_prob, warn_eager
from .data.dequantise import DEQUANTISE_SEEDS, dequantised
from .device import matmul_precision
from .flat import FlatParameters
from .flow import Flow
from .layers.precision import conditioner_precision
from .specs import AUGMENTATIONS, TrainConfig


@dataclass
class FitResult:
    """What happened during ``fit``; ``history`` holds one row per validation evaluation."""

    status: str  # "ok" | "diverged" | "timeout"
    steps_done: int
    best_step: int
    best_val_nll: float
    train_seconds: float
    examples_seen: int = 0
    batch_size: int = 0
    #: (median, interquartile range) of one optimisation step's seconds, warm-up steps excluded
    step_seconds: tuple[float, float] = (float("nan"), float("nan"))
    history: list[dict[str, float]] = field(default_factory=list)
    message: str = ""
    #: whether training ran compiled (``TrainConfig.compile`` and compilation worked)
    compiled: bool = False
    #: seconds spent on validation (model selection), not counted in ``train_seconds``
    eval_seconds: float = 0.0
    #: the step of the checkpoint this fit continued from (0: it trained from the start)
    resumed_from_step: int = 0

    @property
    def examples_per_second(self) -> float:
        """Training throughput from the median step time after warm-up (validation excluded)."""
        median = self.step_seconds[0]
        return self.batch_size / median if median > 0 else float("nan")


@torch.no_grad()
def evaluate_nll(flow: Flow, data: Tensor, batch_size: int = 8192,
                 noise_seed: int | None = None) -> float:
    """Mean negative log-likelihood of ``data`` in nats per example (eval mode, float64 sum).
    With ``noise_seed`` the data are first dequantised with that fixed noise."""
    return per_point_nll(flow, data, batch_size, noise_seed, keep=False)[0]


@torch.no_grad()
def per_point_nll(flow: Flow, data: Tensor, batch_size: int = 8192,
                  noise_seed: int | None = None, keep: bool = True
                  ) -> tuple[float, Tensor | None]:
    """``(mean NLL, per-point NLLs)`` of ``data`` (float64; per-point only with ``keep``), the
    mean summed batch by batch exactly as :func:`evaluate_nll` does."""
    if noise_seed is not None:
        data = dequantised(data, noise_seed)
    was_training = flow.training
    flow.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    points = []
    try:
        for start in range(0, data.shape[0], batch_size):
            log_prob = flow.log_prob(data[start : start + batch_size]).double()
            total += log_prob.sum()
            if keep:
                points.append(-log_prob)
    finally:
        flow.train(was_training)
    return float(-total / data.shape[0]), torch.cat(points).cpu() if keep else None


@dataclass
class Optimiser:
    """Adam, the tensors to clip, and how to zero the gradients (see ``adam``)."""

    optimizer: torch.optim.Adam
    parameters: list[Tensor]
    zero_grad: Callable[[], None]

    def step(self) -> None:
        self.optimizer.step()

    def clip_gradients(self, max_norm: float) -> Tensor:
        """Scale the gradients to norm ``max_norm`` if they exceed it; return their norm.
        With one flat tensor this is one norm and, only when clipping, one multiplication."""
        if len(self.parameters) != 1 or self.parameters[0].grad is None:
            return torch.nn.utils.clip_grad_norm_(self.parameters, max_norm)
        grad = self.parameters[0].grad
        norm = torch.linalg.vector_norm(grad)
        if norm > max_norm:  # also false for NaN: the caller's finiteness check sees it
            grad.mul_(max_norm / (norm + 1e-6))
        return norm


def adam(module: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> Optimiser:
    """Adam over ``module``'s trainable parameters, as fast as the model allows.

    Where it can, the parameters become views of one flat tensor (``flowbench.flat``) and Adam
    is the fused kernel: the optimiser step, the gradient clip and the zeroing are then one
    operation each, instead of one per parameter tensor — for the small models flowbench
    compares, that per-tensor overhead was about a quarter of a training step."""
    flat = FlatParameters.of(module.parameters())
    params = [flat.flat] if flat is not None else [p for p in module.parameters()
                                                   if p.requires_grad]
    try:
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if flat is not None:
        return Optimiser(optimizer, params, flat.zero_grad)
    return Optimiser(optimizer, params, lambda: optimizer.zero_grad(set_to_none=True))


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """The learning-rate factor per step: cosine decay (or constant), times a linear warm-up
    over the first ``warmup_steps`` (Glow, arXiv:1807.03039, section 5)."""
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_factor(step, config.warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_factor(step, config.warmup_steps)
        * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps)))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` optimiser
    steps (step 0 is the first; never a zero learning rate), then 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def check_augment(augment: str, data: Tensor) -> None:
    """A clear ``ValueError`` for an unknown augmentation or one that needs images."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augment {augment!r}; valid choices: {', '.join(AUGMENTATIONS)}")
    if augment != "none" and data.dim() != 4:
        raise ValueError(f"augment={augment!r} needs image data (N, C, H, W), data kind 'image'; "
                         f"got data of shape {tuple(data.shape)} (vector data take 'none')")


def augment_batch(batch: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    """``augment == "hflip"``: each image of ``batch`` (N, C, H, W) flipped along its width with
    probability 1/2, the coins drawn from ``generator`` (RealNVP, arXiv:1605.08803, section 4.1,
    flips CIFAR-10). ``"none"`` returns ``batch`` and draws nothing, so random streams stay as
    they were."""
    if augment == "none":
        return batch
    check_augment(augment, batch)
    flip = torch.rand(batch.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(batch.device).view(-1, 1, 1, 1)
    return torch.where(flip, batch.flip(-1), batch)


def fit(
    flow: Flow,
    train: Tensor,
    val: Tensor,
    config: TrainConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    description: str = "train",
    on_eval: Callable[[dict[str, float]], None] | None = None,
    timeout: float | None = None,
    dequantise: bool = False,
    checkpoint: CheckpointPolicy | None = None,
) -> FitResult:
    """Train ``flow`` in place by maximum likelihood and leave it at its best validation checkpoint.

    ``config`` defaults to ``TrainConfig()``.
    ``seed`` fixes the minibatch order (model initialisation is seeded by whoever built ``flow``).
    ``timeout`` (seconds, checked every step) stops training with status ``timeout``; an
    exception raised by ``on_eval`` (e.g. Optuna's ``TrialPruned``) propagates. With
    ``dequantise`` (integer-valued data) every minibatch gets fresh uniform noise and the
    validation split a fixed draw.
    ``on_eval`` is called with each history row (step, train_nll, val_nll, lr).
    With ``checkpoint`` the whole training state is saved now and then and at Ctrl-C, and a
    saved one is continued from: the result is then exactly that of an uninterrupted fit
    (``timeout`` counts the training time of earlier sessions too).
    """
    if config is None:
        config = TrainConfig()
    with arithmetic(config):
        return _fit(flow, train, val, config, seed, progress, description, on_eval, timeout,
                    dequantise, checkpoint)


def arithmetic(config: TrainConfig) -> contextlib.ExitStack:
    """The precision region of ``config`` (``flowbench.device``): TensorFloat-32 switched on or
    off for CUDA matmuls, and the conditioners' autocast dtype."""
    stack = contextlib.ExitStack()
    stack.enter_context(matmul_precision(config.precision))
    stack.enter_context(conditioner_precision(
        torch.bfloat16 if config.precision == "bf16" else None))
    return stack


def _fit(flow: Flow, train: Tensor, val: Tensor, config: TrainConfig, seed: int, progress: bool,
         description: str, on_eval: Callable[[dict[str, float]], None] | None,
         timeout: float | None, dequantise: bool,
         checkpoint: CheckpointPolicy | None = None) -> FitResult:
    device = torch.device(config.device)
    # the data move once per cell (a no-op when the caller already moved them)
    flow.to(device)
    train, val = train.to(device), val.to(device)
    check_augment(config.augment, train)
    # permutations come from a CPU generator on every device (then move once per epoch); the
    # dequantisation noise and flip coins are drawn where the batch is: on the CPU by that same
    # generator, as always, elsewhere by a generator on the device
    generator = torch.Generator().manual_seed(seed)
    noise = generator if device.type == "cpu" else \
        torch.Generator(device=device).manual_seed(seed)
    flow.train()
    with torch.no_grad():  # data-dependent initialisation (actnorm) on a generous batch
        init = torch.randperm(train.shape[0], generator=generator)[: config.init_batch_size]
        init = train[init.to(device)]
        flow(dequantised(init, seed) if dequantise else init)
    val_seed = DEQUANTISE_SEEDS["val"] if dequantise else None

    optimiser = adam(flow, config.lr, config.weight_decay)
    scheduler = _schedule(optimiser.optimizer, config)
    log_prob, compiled = flow.log_prob, False
    if config.compile:
        log_prob, reason = compile_log_prob(flow)
        compiled = reason is None
        if reason is not None:
            warn_eager(reason)
    resumed = checkpoint.load() if checkpoint is not None else None
    history: list[dict[str, float]] = []
    first_eval = time.perf_counter()
    best_val, best_step = (evaluate_nll(flow, val, config.eval_batch_size, val_seed)
                           if resumed is None else math.nan), 0
    first_eval_seconds = time.perf_counter() - first_eval
    best_state = copy.deepcopy(flow.state_dict())
    history.append({"step": 0, "train_nll": float("nan"), "val_nll": best_val, "lr": config.lr})
    status, message, evals_since_best = "ok", "", 0
    eval_seconds = 0.0  # validation inside the loop, kept out of train_seconds
    order, cursor = torch.randperm(train.shape[0], generator=generator).to(device), 0
    running, running_count, step, train_seconds = 0.0, 0, 0, 0.0
    step_seconds: list[float] = []
    resumed_from_step = resumed["step"] if resumed is not None else 0
    elapsed, saving_seconds = 0.0, 0.0  # loop seconds of earlier sessions; checkpoint writes

    def training_state() -> dict[str, Any]:
        """Everything the loop needs to go on exactly as if it had not stopped."""
        return {"flow": flow.state_dict(), "optimizer": optimiser.optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                "noise": noise.get_state(), "rng": rng_state(), "step": step,
                "cursor": cursor, "order": order.cpu(), "best_state": best_state,
                "best_val": best_val, "best_step": best_step,
                "evals_since_best": evals_since_best, "running": running,
                "running_count": running_count, "history": history,
                "step_seconds": step_seconds, "eval_seconds": eval_seconds,
                "first_eval_seconds": first_eval_seconds, "saving_seconds": saving_seconds,
                "elapsed": time.perf_counter() - start}

    if resumed is not None:
        flow.load_state_dict(resumed["flow"])
        optimiser.optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        generator.set_state(resumed["generator"])
        noise.set_state(resumed["noise"])  # the same generator on the CPU
        set_rng_state(resumed["rng"])
        order = resumed["order"].to(order.device)
        (step, cursor, best_state, best_val, best_step, evals_since_best, running, running_count,
         history, step_seconds, eval_seconds, first_eval_seconds, saving_seconds, elapsed) = (
            resumed[key] for key in (
                "step", "cursor", "best_state", "best_val", "best_step", "evals_since_best",
                "running", "running_count", "history", "step_seconds", "eval_seconds",
                "first_eval_seconds", "saving_seconds", "elapsed"))
    bar = tqdm(total=config.steps, initial=step, desc=description, leave=False,
               disable=not progress, dynamic_ncols=True)
    if checkpoint is not None:
        checkpoint.begin()
    try:
        if not math.isfinite(best_val):
            return FitResult("diverged", 0, 0, float("nan"), 0.0, 0, config.batch_size,
                             history=history,
                             message="validation NLL is not finite at initialisation")
        start = time.perf_counter() - elapsed
        deadline = start + timeout if timeout is not None else float("inf")
        first_step = step + 1
        for step in range(first_step, config.steps + 1):
            step_start = time.perf_counter()
            if step_start > deadline:
                status = "timeout"
                message = f"exceeded the time limit of {timeout:g} s at step {step}"
                break
            if cursor + config.batch_size > order.shape[0]:
                order = torch.randperm(train.shape[0], generator=generator).to(device)
                cursor = 0
            batch = augment_batch(train[order[cursor : cursor + config.batch_size]],
                                  config.augment, noise)
            if dequantise:
                batch = batch + torch.rand(batch.shape, generator=noise, dtype=batch.dtype,
                                           device=device)
            cursor += config.batch_size

            if compiled and step == first_step:
                loss, log_prob, compiled = _first_compiled_step(flow, log_prob, batch, optimiser)
            else:
                loss = _loss_and_gradients(log_prob, batch, optimiser)
            if not torch.isfinite(loss):
                status, message = "diverged", f"non-finite training loss at step {step}"
                break
            grad_norm = optimiser.clip_gradients(config.grad_clip)
            if not torch.isfinite(grad_norm):
                status, message = "diverged", f"non-finite gradient at step {step}"
                break
            optimiser.step()
            scheduler.step()
            running += float(loss.detach())
            running_count += 1
            step_seconds.append(time.perf_counter() - step_start)
            bar.update(1)

            if step % config.eval_every == 0 or step == config.steps:
                eval_start = time.perf_counter()
                val_nll = evaluate_nll(flow, val, config.eval_batch_size, val_seed)
                row = {"step": step, "train_nll": running / running_count, "val_nll": val_nll,
                       "lr": optimiser.optimizer.param_groups[0]["lr"]}
                history.append(row)
                if on_eval is not None:
                    on_eval(row)
                bar.set_postfix(val_nll=f"{val_nll:.4f}")
                running, running_count = 0.0, 0
                improved = math.isfinite(val_nll) and val_nll < best_val
                if improved:
                    best_val, best_step, evals_since_best = val_nll, step, 0
                    best_state = copy.deepcopy(flow.state_dict())
                else:
                    evals_since_best += 1
                eval_seconds += time.perf_counter() - eval_start
                if not math.isfinite(val_nll):
                    status, message = "diverged", f"non-finite validation NLL at step {step}"
                    break
                if config.patience and evals_since_best >= config.patience:
                    message = f"early stop at step {step}: no improvement since step {best_step}"
                    break
            if checkpoint is not None:
                saving_seconds += checkpoint.after_step(training_state)
        train_seconds = time.perf_counter() - start - eval_seconds - saving_seconds
    finally:
        bar.close()
        if checkpoint is not None:
            checkpoint.end()
    flow.load_state_dict(best_state)
    flow.eval()
    return FitResult(status, step, best_step, best_val, train_seconds,
                     step * config.batch_size, config.batch_size, _after_warmup(step_seconds),
                     history, message, compiled, first_eval_seconds + eval_seconds,
                     resumed_from_step)


def _loss_and_gradients(log_prob: Callable[[Tensor], Tensor], batch: Tensor,
                        optimiser: Optimiser) -> Tensor:
    """Mean NLL of ``batch``, with its fresh gradients (not applied yet)."""
    loss = -log_prob(batch).mean()
    optimiser.zero_grad()
    loss.backward()
    return loss


def _first_compiled_step(flow: Flow, log_prob: Callable[[Tensor], Tensor], batch: Tensor,
                         optimiser: Optimiser) -> tuple[Tensor, Callable[[Tensor], Tensor], bool]:
    """The first step compiles; if compilation fails, restore what the attempt touched (e.g.
    batch-norm running statistics) and go on eagerly: ``(loss, log_prob to use, compiled)``."""
    snapshot = copy.deepcopy(flow.state_dict())
    try:
        return _loss_and_gradients(log_prob, batch, optimiser), log_prob, True
    except Exception as error:  # noqa: BLE001 - any compiler failure
        flow.load_state_dict(snapshot)
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        warn_eager(f"compilation failed ({type(error).__name__}: {first_line})")
        return _loss_and_gradients(flow.log_prob, batch, optimiser), flow.log_prob, False


def _after_warmup(step_seconds: list[float], warmup: int = 20) -> tuple[float, float]:
    """Median and interquartile range of the step times after the first ``warmup`` steps."""
    timed = step_seconds[warmup:] if len(step_seconds) > 2 * warmup else step_seconds
    if not timed:
        return float("nan"), float("nan")
    q1, median, q3 = torch.tensor(timed, dtype=torch.float64).quantile(
        torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    return median, q3 - q1
