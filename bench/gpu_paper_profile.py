"""Does the paper profile keep a GPU busy? Our training loop and LRP against the bare step, as ratios.

Not a test. Each ratio is two timings taken side by side in one run:

  1. bare step       one model step on a batch already on the device (the ceiling)
  2. our loop        `train_one_epoch` with the paper's augmentations (RandomAffine +
                     flip + grayscale, per image on the CPU), DataLoader in the main
                     process as `fit` builds it                 -> ratio to 1 (target >= 0.9)
  3. loader alone    that DataLoader without a model: how fast images can arrive
  4. our loop, W workers + pinned memory (the same augmentations)  -> ratio to 1
  5. LRP             `explain_images` vs a plain forward+backward to the input -> ratio (target >= 0.8)

With CUDA: the paper profile (VGG16 width 1.0, 224 px, bf16 autocast,
channels_last, batch 32). Without: the same measurements at the CPU's scale
(--cpu-size, --cpu-width), and it says what it skipped. Needs torch,
torchvision, pydantic (facetransfer.config) and zennit for part 5 (skipped,
with a line, where zennit is missing); no mlflow, no dvc.

    python bench/gpu_paper_profile.py [--batch 32] [--steps 20] [--workers 8]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from facetransfer.config import AugmentSpec
from facetransfer.models.vgg import build_vgg16
from facetransfer.training.data import ImageDataset, Split, build_transform, normalize
from facetransfer.training.loop import _autocast, train_one_epoch, training_dtype
from facetransfer.training.losses import FocalLoss

# The paper profile's train_pain augmentations (profiles/paper.yaml).
PAPER_AUGMENT = AugmentSpec(hflip=True, rotation=25.0, shift=0.1, shear=0.1, zoom=0.1, grayscale=0.2)


def timed(fn: Callable[[], int], device: torch.device) -> float:
    """Images per second of `fn` (which returns how many images it processed)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    images = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def fake_split(n: int, size: int, classes: int, seed: int = 0) -> Split:
    """n random uint8 faces (n, size, size, 3) with labels: the loader's work does not depend on content."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return Split(images, np.arange(n), rng.integers(0, classes, n))


def make_model(width: float, classes: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_vgg16(num_classes=classes, width=width, batch_norm=False, dropout=0.0).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def bare_steps(model, split: Split, batch: int, steps: int, device: torch.device) -> float:
    x = normalize(torch.from_numpy(split.images[:batch]).permute(0, 3, 1, 2)).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(split.labels[:batch]).to(device)
    optimizer, loss_fn = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), FocalLoss(2.0)

    def run() -> int:
        for _ in range(steps):
            with _autocast(device, training_dtype("auto", device)):  # as `fit` trains on this device
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * batch

    run()  # warm-up: cuDNN autotuning, allocator
    return timed(run, device)


def loader(split: Split, batch: int, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(ImageDataset(split, build_transform(PAPER_AUGMENT)), batch_size=batch, shuffle=True,
                      generator=torch.Generator().manual_seed(0), num_workers=workers,
                      pin_memory=workers > 0 and device.type == "cuda", persistent_workers=workers > 0)


def loop_epoch(model, data: DataLoader, device: torch.device) -> float:
    optimizer, loss_fn = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), FocalLoss(2.0)
    dtype = training_dtype("auto", device)  # as `fit` trains on this device (the bare step uses the same)
    train_one_epoch(model, data, loss_fn, optimizer, device, dtype)  # warm-up (and workers started)
    return timed(lambda: (train_one_epoch(model, data, loss_fn, optimizer, device, dtype), len(data.dataset))[1],
                 device)


def loader_alone(data: DataLoader, device: torch.device) -> float:
    def run() -> int:
        count = 0
        for x, _ in data:
            count += len(x)
        return count

    return timed(run, device)


def lrp_vs_gradient(model, split: Split, batch: int, device: torch.device) -> tuple[float, float] | None:
    try:
        from facetransfer.explain.lrp import explain_images
    except ImportError as missing:
        print(f"LRP skipped: {missing}")
        return None
    model.eval()
    images, targets = split.images[: 4 * batch], split.labels[: 4 * batch]

    def plain() -> int:
        for start in range(0, len(images), batch):
            x = normalize(torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2)).to(device)
            x.requires_grad_(True)
            out = model(x)
            out.gather(1, torch.from_numpy(targets[start:start + batch]).to(device)[:, None]).sum().backward()
        return len(images)

    plain()
    explain_images(model, images[:batch], targets[:batch], batch, device)  # warm-up
    return timed(lambda: (explain_images(model, images, targets, batch, device), len(images))[1], device), \
        timed(plain, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="batches per measurement")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers for part 4")
    parser.add_argument("--cpu-size", type=int, default=64, help="image side without CUDA")
    parser.add_argument("--cpu-width", type=float, default=0.125, help="VGG16 width without CUDA")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size, width = (224, 1.0) if cuda else (args.cpu_size, args.cpu_width)
    print(f"device {device}: VGG16 width {width}, {size} px, batch {args.batch}, {args.steps} batches per measure")
    if not cuda:
        print("no CUDA: skipped the paper-scale GPU numbers (224 px, width 1.0, bf16, channels_last); "
              "the ratios below are the CPU's")
    split = fake_split(args.batch * args.steps, size, classes=2)
    model = make_model(width, 2, device)
    rows = {"bare step (batch on the device)": bare_steps(model, split, args.batch, args.steps, device)}
    rows["our loop, DataLoader in the main process"] = loop_epoch(model, loader(split, args.batch, 0, device), device)
    rows["that DataLoader alone"] = loader_alone(loader(split, args.batch, 0, device), device)
    rows[f"our loop, {args.workers} workers + pinned memory"] = loop_epoch(
        model, loader(split, args.batch, args.workers, device), device)
    bare = rows["bare step (batch on the device)"]
    print("\n| measure | images/s | x bare step |\n|---|---|---|")
    for name, rate in rows.items():
        print(f"| {name} | {rate:,.0f} | {rate / bare:.2f} |")
    lrp = lrp_vs_gradient(model, split, args.batch, device)
    if lrp is not None:
        print(f"| LRP (explain_images) vs forward+backward to the input | {lrp[0]:,.0f} vs {lrp[1]:,.0f} | "
              f"**{lrp[0] / lrp[1]:.2f}** (target >= 0.8) |")


if __name__ == "__main__":
    main()
