"""flowbench's RealNVP against peer libraries: the same architecture, timed side by side.

Every implementation is 8 affine couplings over alternating halves of the features, each with one
conditioner MLP ``D/2 -> 64 -> 64 -> 2 * D/2`` (ReLU, zero-initialised output layer where the
library allows it), and a standard-normal base. All are trained with the same optimiser
(``torch.optim.Adam``, lr 1e-3), the same minibatches (batch 256) and one torch thread, and timed
in one process, round-robin (every round times every implementation once, so drift in the
machine's speed hits them all alike); the tables report medians over rounds as ratios to
flowbench. ``hand`` is a minimal hand-written split coupling: the floor any library pays on top of
the arithmetic.

Measured per dimension D: training steps/s (forward, log-det, backward, Adam step), ``log_prob``
examples/s and sampling examples/s (no gradients); on two_moons (D = 2) each model's test NLL after
the same number of training steps. Peers are optional::

    pip install -e .[peers]     # zuko, nflows, normflows
    python benchmarks/peers.py                  # writes benchmarks/peers.md
    python benchmarks/peers.py --compile        # adds flowbench with torch.compile

Libraries that are not installed are skipped with a message, never silently.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

import flowbench
from flowbench.compile import compile_log_prob
from flowbench.train import adam

LAYERS, WIDTH, BATCH, LR = 8, 64, 256, 1e-3
PEERS = ("zuko", "nflows", "normflows")


@dataclass
class Model:
    """What the timing loop needs from an implementation."""

    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]
    #: flowbench's own optimiser set-up (``flowbench.train.adam``: one fused step over one flat
    #: parameter tensor); every other row uses ``torch.optim.Adam`` as a user of that library would
    own_optimiser: bool = False


def _mlp(n_in: int, n_out: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(n_in, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
                        nn.Linear(WIDTH, n_out))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class HandCoupling(nn.Module):
    """The minimal split coupling stack: slicing, one MLP per layer, ``cat``, nothing else."""

    def __init__(self, features: int):
        super().__init__()
        self.half = features // 2
        self.features = features
        self.nets = nn.ModuleList(
            _mlp(self.half, 2 * (features - self.half)) if k % 2 == 0
            else _mlp(features - self.half, 2 * self.half) for k in range(LAYERS))

    def log_prob(self, x: Tensor) -> Tensor:
        logdet = 0.0
        for k, net in enumerate(self.nets):
            cut = self.half if k % 2 == 0 else self.features - self.half
            kept, changed = (x[:, :cut], x[:, cut:]) if k % 2 == 0 else (x[:, -cut:], x[:, :-cut])
            raw, shift = net(kept).chunk(2, dim=1)
            log_scale = 3.0 * torch.tanh(raw / 3.0)
            changed = changed * log_scale.exp() + shift
            x = torch.cat([kept, changed] if k % 2 == 0 else [changed, kept], dim=1)
            logdet = logdet + log_scale.sum(dim=1)
        return -0.5 * (x * x).sum(dim=1) - 0.5 * self.features * math.log(2 * math.pi) + logdet

    def sample(self, n: int) -> Tensor:
        z = torch.randn(n, self.features)
        for k in reversed(range(LAYERS)):
            cut = self.half if k % 2 == 0 else self.features - self.half
            kept, changed = (z[:, :cut], z[:, cut:]) if k % 2 == 0 else (z[:, -cut:], z[:, :-cut])
            raw, shift = self.nets[k](kept).chunk(2, dim=1)
            changed = (changed - shift) * torch.exp(-3.0 * torch.tanh(raw / 3.0))
            z = torch.cat([kept, changed] if k % 2 == 0 else [changed, kept], dim=1)
        return z


def build_flowbench(features: int) -> Model:
    flow = flowbench.build_flow("realnvp", "normal", (features,), layers=LAYERS, width=WIDTH,
                                depth=2)
    return Model(flow, flow.log_prob, flow.sample, own_optimiser=True)


def build_flowbench_torch_adam(features: int) -> Model:
    model = build_flowbench(features)
    return Model(model.module, model.log_prob, model.sample)


def build_flowbench_compiled(features: int) -> Model:
    model = build_flowbench(features)
    log_prob, reason = compile_log_prob(model.module)
    if reason is not None:
        print(f"peers: flowbench-compiled runs eagerly: {reason}", file=sys.stderr)
    return Model(model.module, log_prob, model.sample, own_optimiser=True)


def build_hand(features: int) -> Model:
    module = HandCoupling(features)
    return Model(module, module.log_prob, module.sample)


def build_zuko(features: int) -> Model:
    import zuko

    flow = zuko.flows.RealNVP(features, transforms=LAYERS, hidden_features=(WIDTH, WIDTH))
    return Model(flow, lambda x: flow().log_prob(x), lambda n: flow().sample((n,)))


def build_zuko_adapter(features: int) -> Model:
    """zuko's RealNVP (as ``zuko`` above) through the flowbench-zuko adapter: zuko's transform,
    flowbench's ``Flow``, ``Compose`` and standard-normal base, trained with ``torch.optim.Adam``
    like the ``zuko`` row, so the two differ by the adapter alone."""
    flow = flowbench.build_flow("zuko-realnvp", "normal", (features,), transforms=LAYERS,
                                hidden_features=(WIDTH, WIDTH))
    return Model(flow, flow.log_prob, flow.sample)


class _ContextFree(nn.Module):
    """nflows calls its conditioner as ``net(x, context)``; this one has no context."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.net = _mlp(n_in, n_out)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def build_nflows(features: int) -> Model:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import AffineCouplingTransform, CompositeTransform

    half = torch.arange(features) < features // 2
    layers = [AffineCouplingTransform((half if k % 2 else ~half).int(), _ContextFree)
              for k in range(LAYERS)]
    flow = Flow(CompositeTransform(layers), StandardNormal([features]))
    return Model(flow, flow.log_prob, flow.sample)


def build_normflows(features: int) -> Model:
    import normflows as nf

    flows = []
    for _ in range(LAYERS):
        net = nf.nets.MLP([features // 2, WIDTH, WIDTH, 2 * (features - features // 2)],
                          init_zeros=True)
        flows += [nf.flows.AffineCouplingBlock(net, scale_map="exp"),
                  nf.flows.Permute(features, mode="swap")]
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(features, trainable=False), flows)
    return Model(model, model.log_prob, lambda n: model.sample(n)[0])


BUILDERS: dict[str, Callable[[int], Model]] = {
    "flowbench": build_flowbench, "flowbench-torch-adam": build_flowbench_torch_adam,
    "hand": build_hand, "zuko": build_zuko, "zuko-adapter": build_zuko_adapter,
    "nflows": build_nflows, "normflows": build_normflows,
}


def available(names: list[str]) -> list[str]:
    found = []
    for name in names:
        if name in PEERS:
            try:
                importlib.import_module(name)
            except ImportError:
                print(f"peers: {name} is not installed (pip install -e .[peers]); skipped",
                      file=sys.stderr)
                continue
        if name == "zuko-adapter":
            try:
                importlib.import_module("flowbench_zuko")
            except ImportError:
                print("peers: the flowbench-zuko plugin is not installed (pip install -e "
                      "plugins/flowbench-zuko); zuko-adapter skipped", file=sys.stderr)
                continue
        found.append(name)
    return found


def train_steps(model: Model, data: Tensor, steps: int, seed: int) -> float:
    """Seconds for ``steps`` Adam steps on minibatches drawn with ``seed``."""
    if model.own_optimiser:
        optimiser = adam(model.module, lr=LR)
        optimizer, zero_grad = optimiser.optimizer, optimiser.zero_grad
    else:
        optimizer = torch.optim.Adam(model.module.parameters(), lr=LR)
        zero_grad = partial(optimizer.zero_grad, set_to_none=True)
    generator = torch.Generator().manual_seed(seed)
    batches = [data[torch.randint(0, data.shape[0], (BATCH,), generator=generator)]
               for _ in range(steps)]
    model.module.train()
    start = time.perf_counter()
    for batch in batches:
        loss = -model.log_prob(batch).mean()
        zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


@torch.no_grad()
def examples_per_second(fn: Callable[[], Tensor], examples: int, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return examples * repeats / (time.perf_counter() - start)


def speed_table(names: list[str], dims: list[int], rounds: int, steps: int,
                eval_batch: int) -> list[dict]:
    rows = []
    for features in dims:
        torch.manual_seed(0)
        data = torch.randn(8192, features) * 0.5 + 0.3
        models = {name: BUILDERS[name](features) for name in names}
        samples: dict[str, dict[str, list[float]]] = {n: {"train": [], "log_prob": [],
                                                          "sample": []} for n in names}
        for round_ in range(rounds + 1):  # round 0 warms up (and compiles) and is discarded
            for name, model in models.items():
                train = train_steps(model, data, steps, seed=round_)
                model.module.eval()
                batch = data[:eval_batch]
                log_prob = examples_per_second(lambda m=model, b=batch: m.log_prob(b),
                                               eval_batch, 5)
                sample = examples_per_second(lambda m=model: m.sample(eval_batch), eval_batch, 5)
                if round_:
                    samples[name]["train"].append(steps / train)
                    samples[name]["log_prob"].append(log_prob)
                    samples[name]["sample"].append(sample)
        for name in names:
            medians = {k: statistics.median(v) for k, v in samples[name].items()}
            rows.append({"D": features, "library": name, **medians})
        print(f"peers: D={features} timed", file=sys.stderr, flush=True)
    return rows


def nll_table(names: list[str], steps: int, seeds: int) -> dict[str, tuple[float, float]]:
    """Test NLL (nats, original data space) on two_moons after ``steps`` training steps, mean and
    std over ``seeds`` seeds; the same batches for every library. The data are standardised
    with the training split's statistics first, as ``flowbench run`` does (nflows' sigmoid
    scale cannot expand a dimension, so on raw data it cannot fit two_moons at all); the
    constant log-det of that standardisation is added back."""
    dataset = flowbench.load_dataset("two_moons")
    mean, std = dataset.train.mean(dim=0), dataset.train.std(dim=0)
    train, test = (dataset.train - mean) / std, (dataset.test - mean) / std
    log_det = float(torch.log(std).sum())
    result = {}
    for name in names:
        values = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = BUILDERS[name](2)
            train_steps(model, train, steps, seed=seed)
            model.module.eval()
            with torch.no_grad():
                values.append(float(-model.log_prob(test).mean()) + log_det)
        result[name] = (statistics.mean(values),
                        statistics.stdev(values) if len(values) > 1 else float("nan"))
        print(f"peers: {name} two_moons test NLL {result[name][0]:.4f} ± {result[name][1]:.4f}",
              file=sys.stderr, flush=True)
    return result


def markdown(rows: list[dict], nll: dict[str, tuple[float, float]], args: argparse.Namespace,
             command: str) -> str:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    lines = [
        "# flowbench vs peer libraries: RealNVP speed",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
        f"{torch.get_num_threads()} torch thread(s), Python {platform.python_version()}, "
        f"torch {torch.__version__}, "
        + ", ".join(f"{d} {version(d)}" for d in ("flowbench-nf", *PEERS)) + ".",
        "",
        f"Architecture: {LAYERS} affine couplings over alternating halves, conditioner MLP "
        f"D/2 -> {WIDTH} -> {WIDTH} -> D (ReLU), standard-normal base; Adam lr {LR:g}, batch "
        f"{BATCH}. Median of {args.rounds} interleaved rounds ({args.steps} training steps, "
        f"5 x {args.eval_batch} examples for log_prob and sampling per round). two_moons test NLL: "
        f"nats, after {args.nll_steps} steps on standardised data (its log-det added back), mean "
        f"± std over {args.nll_seeds} seeds. Ratios are "
        "throughput / flowbench's: above 1 is faster than flowbench.",
        "",
        "Rows: `flowbench` trains with its own optimiser set-up (`flowbench.train.adam`: the same "
        "Adam, fused, over one flat parameter tensor — what `flowbench run` uses); "
        "`flowbench-torch-adam` is the same model with `torch.optim.Adam`, like every other row, "
        "so it isolates what the layers cost; `hand` is a minimal hand-written split coupling; "
        "`flowbench-compiled` (with `--compile`) adds `torch.compile` (timed after its first, "
        "compiling, round); `zuko-adapter` is the `zuko` model built through the flowbench-zuko "
        "plugin (`flowbench.build_flow('zuko-realnvp', ...)`: zuko's transform inside "
        "flowbench's Flow and base), so its ratio to `zuko` is the adapter's cost. "
        "zuko, nflows and normflows are used as their documentation shows: "
        "zuko `flows.RealNVP`, nflows `AffineCouplingTransform`, normflows "
        "`AffineCouplingBlock` + `Permute('swap')`; each library's own affine parameterisation "
        "(zuko and flowbench soft-clamp the log-scale, nflows uses a sigmoid scale, normflows "
        "an unbounded exp).",
        "",
        *(["nflows' two_moons NLL is not a harness fault: its scale, `sigmoid(raw + 2) + 1e-3`, "
           "never exceeds 1.001, so each coupling can only contract a dimension on the way from "
           "data to latent; the model's density can then never exceed (about) the standard "
           "normal's peak, 1/(2π), which bounds its NLL on this data from below by about 1.0 "
           "nats.", ""] if "nflows" in nll else []),
        "| D | library | train steps/s | × | log_prob ex/s | × | sample ex/s | × |"
        + (" two_moons test NLL |" if nll else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if nll else ""),
    ]
    for features in sorted({r["D"] for r in rows}):
        group = [r for r in rows if r["D"] == features]
        ref = next(r for r in group if r["library"] == "flowbench")
        for r in group:
            cells = [str(features), r["library"]]
            for key in ("train", "log_prob", "sample"):
                cells += [f"{r[key]:,.0f}", f"{r[key] / ref[key]:.2f}"]
            if nll:
                cells.append(f"{nll[r['library']][0]:.4f} ± {nll[r['library']][1]:.4f}"
                             if features == 2 and r["library"] in nll else "")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Targets", ""] + targets(rows)
    return "\n".join(lines) + "\n"


def targets(rows: list[dict]) -> list[str]:
    """Issue #6's targets, checked on this table's numbers."""
    out = []
    for features in sorted({r["D"] for r in rows}):
        group = {r["library"]: r for r in rows if r["D"] == features}
        ours = group["flowbench"]
        peers = [group[p] for p in PEERS if p in group]  # zuko-adapter is not a peer
        if peers:
            for key, need in (("train", 1.25), ("log_prob", 1.0), ("sample", 1.0)):
                best = max(peers, key=lambda r: r[key])
                ratio = ours[key] / best[key]
                out.append(f"- D={features} {key}: flowbench / fastest peer ({best['library']}) "
                           f"= {ratio:.2f} (target ≥ {need:g}): "
                           f"{'met' if ratio >= need else 'NOT met'}")
        if "hand" in group:
            # the same optimiser on both sides: what the layers' implementation costs
            same = group.get("flowbench-torch-adam", ours)
            ratio = same["train"] / group["hand"]["train"]
            out.append(f"- D={features} train: {same['library']} / hand-written (both "
                       f"torch.optim.Adam) = {ratio:.2f} (target ≥ 0.90): "
                       f"{'met' if ratio >= 0.9 else 'NOT met'}")
        if "zuko" in group and "zuko-adapter" in group:
            # the same zuko model and optimiser, with and without flowbench's adapter around it
            ratio = group["zuko-adapter"]["train"] / group["zuko"]["train"]
            out.append(f"- D={features} train: zuko through the flowbench-zuko adapter / zuko "
                       f"directly = {ratio:.3f}, overhead {100 * (1 / ratio - 1):+.1f}% "
                       f"(target ≤ +5%): {'met' if ratio >= 1 / 1.05 else 'NOT met'}")
        if "flowbench-compiled" in group:
            ratio = group["flowbench-compiled"]["train"] / ours["train"]
            out.append(f"- D={features} train: compiled / eager = {ratio:.2f}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 64])
    parser.add_argument("--libraries", nargs="+", default=list(BUILDERS),
                        choices=list(BUILDERS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50, help="training steps timed per round")
    parser.add_argument("--eval-batch", type=int, default=4096)
    parser.add_argument("--nll-steps", type=int, default=2000,
                        help="training steps before the two_moons test NLL (0: skip)")
    parser.add_argument("--nll-seeds", type=int, default=3,
                        help="seeds of the two_moons NLL (mean ± std over them)")
    parser.add_argument("--compile", action="store_true",
                        help="also time flowbench with torch.compile")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("peers.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = available(args.libraries)
    if "flowbench" not in names:
        names.insert(0, "flowbench")
    if args.compile:
        BUILDERS["flowbench-compiled"] = build_flowbench_compiled
        names.insert(1, "flowbench-compiled")
    rows = speed_table(names, args.dims, args.rounds, args.steps, args.eval_batch)
    nll = (nll_table(names, args.nll_steps, args.nll_seeds) if args.nll_steps and 2 in args.dims
           else {})
    command = "python benchmarks/peers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, nll, args, command.strip())
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
