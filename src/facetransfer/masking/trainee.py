"""The RBDM trainee (Schiller et al. 2020, section 5.5): a MobileNetV2 from scratch on masked or plain images.

Variants: `plain`; `<method>` (masked images every epoch); `<method>-then-plain` (masked
for `switch_epoch` epochs, then the plain images). Validation always uses plain images.
The loop is written here rather than reusing `training.fit` because it switches the
training images mid-run and records loss and macro F1 against optimiser steps; it reuses
the same normalisation. On the CPU, same seed -> the same curve (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torchvision.models import mobilenet_v2

from facetransfer.config import TraineeConfig
from facetransfer.masking.dataset import METHODS
from facetransfer.training.data import normalize


@dataclass(frozen=True)
class Variant:
    name: str
    masked: str | None  # masking method of the first epochs; None = plain throughout
    switch_epoch: int | None  # epochs on masked images before plain ones; None = masked throughout

    def images_for(self, epoch: int) -> str:
        """"plain" or the masking method used in `epoch` (0-based)."""
        if self.masked is None or (self.switch_epoch is not None and epoch >= self.switch_epoch):
            return "plain"
        return self.masked


def variants(switch_epoch: int) -> dict[str, Variant]:
    """The seven variants of the paper's Fig. 10, by name."""
    out = {"plain": Variant("plain", None, None)}
    out.update({m: Variant(m, m, None) for m in METHODS})
    out.update({f"{m}-then-plain": Variant(f"{m}-then-plain", m, switch_epoch) for m in METHODS})
    return out


def build_trainee(num_classes: int, width: float) -> nn.Module:
    """torchvision MobileNetV2 with `width_mult`, randomly initialised (the paper trained it from scratch)."""
    return mobilenet_v2(num_classes=num_classes, width_mult=width)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _to_input(images: np.ndarray, idx: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
    """(B, 3, H, W) normalised float32 in channels_last memory, as the model's weights (see train_trainee)."""
    x = normalize(torch.from_numpy(np.ascontiguousarray(images[idx.numpy()])).permute(0, 3, 1, 2))
    if flips is not None:  # horizontal flip of the chosen samples
        x = torch.where(flips[:, None, None, None], torch.flip(x, dims=[3]), x)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int) -> tuple[float, float, np.ndarray]:
    """(mean cross-entropy, macro F1, predictions) on plain images, eval mode."""
    model.eval()
    losses, preds = [], []
    for start in range(0, len(images), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(images)))
        logits = model(_to_input(images, idx, None))
        y = torch.from_numpy(labels[idx.numpy()])
        losses.append(nn.functional.cross_entropy(logits, y, reduction="sum").item())
        preds.append(logits.argmax(1).numpy())
    predicted = np.concatenate(preds)
    f1 = f1_score(labels, predicted, labels=list(range(int(labels.max()) + 1)), average="macro", zero_division=0)
    return sum(losses) / len(images), float(f1), predicted


def train_trainee(variant: Variant, train: dict[str, np.ndarray], train_labels: np.ndarray, val_images: np.ndarray,
                  val_labels: np.ndarray, num_classes: int, cfg: TraineeConfig) -> tuple[nn.Module, list[dict]]:
    """Train one variant; `train` maps "plain" and each method to (N, H, W, 3) uint8 images of the same rows.

    Returns the model after the last epoch and one record per epoch: epoch, step, the
    training images used, train loss, val loss, val macro F1.
    """
    torch.manual_seed(cfg.seed)
    # channels_last: MobileNetV2's depthwise convs run 1.4x faster so on the CPU (bench/cpu_kernels.py);
    # bf16 made them slower, so the trainee stays float32.
    model = build_trainee(num_classes, cfg.width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    y_all = torch.from_numpy(train_labels.astype(np.int64))
    history, step = [], 0
    for epoch in range(cfg.epochs):
        source = variant.images_for(epoch)
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # the same order for every variant
        model.train()
        total = 0.0
        for idx in _batches(len(y_all), cfg.batch_size, generator):
            flips = torch.rand(len(idx), generator=generator) < 0.5 if cfg.hflip else None
            loss = nn.functional.cross_entropy(model(_to_input(train[source], idx, flips)), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            step += 1
        val_loss, val_f1, _ = evaluate(model, val_images, val_labels, cfg.batch_size)
        history.append({"epoch": epoch + 1, "step": step, "images": source, "train_loss": total / len(y_all),
                        "val_loss": val_loss, "val_macro_f1": val_f1})
    return model, history


def curve_summary(history: list[dict], target_f1: float) -> dict:
    """Final and best val macro F1, steps to reach `target_f1` (None if never), area under the F1-steps curve
    divided by the steps (the mean F1 over training; the trapezoid from step 0 at F1 0)."""
    steps = np.array([0] + [r["step"] for r in history], dtype=np.float64)
    f1 = np.array([0.0] + [r["val_macro_f1"] for r in history])
    reached = [r["step"] for r in history if r["val_macro_f1"] >= target_f1]
    return {"final_f1": float(f1[-1]), "best_f1": float(f1.max()), "steps_to_target": reached[0] if reached else None,
            "target_f1": target_f1, "auc": float(np.trapezoid(f1, steps) / steps[-1]) if steps[-1] > 0 else 0.0}
