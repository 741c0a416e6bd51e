"""Image datasets: real test images beside each flow/base's samples at a few temperatures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..rundata import RunData
from .select import finite, generator, is_image, trained
from .style import FAIL_COLOR, label, new_figure, no_ticks, write_figure


def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (rows*H, columns*W, C) mosaic with 1-pixel gaps."""
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    mosaic = np.ones((rows * (h + 1) - 1, columns * (w + 1) - 1, c))
    for index, image in enumerate(images):
        r, col = divmod(index, columns)
        mosaic[r * (h + 1): r * (h + 1) + h, col * (w + 1): col * (w + 1) + w] = \
            image.transpose(1, 2, 0)
    return mosaic


def _as_pixels(x: torch.Tensor, levels: int) -> np.ndarray:
    """Model-space samples (continuous, in [0, levels)) -> displayable [0, 1] pixels."""
    pixels = torch.clamp(torch.floor(x), 0, levels - 1) / (levels - 1)
    return pixels.detach().cpu().numpy()


def image_samples_figure(run: RunData, dataset: str, temperatures: Sequence[float] = (1.0, 0.7),
                         n: int = 36) -> Figure | None:
    """Real test images beside each flow/base's samples at each temperature (seeded)."""
    found = trained(run, dataset, is_image)
    if found is None:
        return None
    data, models = found.data, found.models
    columns = int(math.sqrt(n))
    panels = len(temperatures) + 1
    fig = new_figure(1.6 * panels, 1.7 * len(models))
    axes = fig.subplots(len(models), panels, squeeze=False)
    real = _as_pixels(data.test[:n], data.levels)
    for row, ((flow_name, base), (record, flow, why)) in enumerate(models.items()):
        for col in range(panels):
            ax = axes[row, col]
            no_ticks(ax)
            if col == 0:
                ax.imshow(_tile(real, columns).squeeze(), cmap="gray", vmin=0, vmax=1)
                ax.set_title("test images" if row == 0 else "")
                ax.set_ylabel(label(flow_name, base))
                continue
            temperature = temperatures[col - 1]
            if flow is None:
                ax.text(0.5, 0.5, why, ha="center", va="center", color=FAIL_COLOR,
                        transform=ax.transAxes)
                continue
            with torch.no_grad():
                samples = flow.sample(n, generator(), temperature)
            ax.imshow(_tile(_as_pixels(samples, data.levels), columns).squeeze(), cmap="gray",
                      vmin=0, vmax=1)
            bpd = finite(record.get("test_bpd"))
            ax.set_title(f"T = {temperature:g}" + (f"  ({bpd:.2f} bits/dim)"
                                                   if col == 1 and bpd == bpd else ""))
    fig.suptitle(f"{dataset}: samples at temperatures {', '.join(map(str, temperatures))} "
                 "beside real test images (seeded)")
    return fig


def image_samples(run: RunData, dataset: str, out_dir: Path,
                  temperatures: Sequence[float] = (1.0, 0.7)) -> list[Path]:
    """``image_samples_<dataset>.png`` for image datasets with trained models."""
    return write_figure(lambda: image_samples_figure(run, dataset, temperatures),
                        Path(out_dir) / f"image_samples_{dataset}.png")
