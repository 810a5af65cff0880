"""Does the paper profile keep a GPU busy? Our training loop and LRP against the bare step, as ratios.

Not a test. Every number is a median over --repeats rounds; within a round the
variants run one after another, so each ratio compares timings taken side by side:

  bare step              one model step on a batch already on the device (the ceiling)
  bare step, .item()     the same with the loss read on the host every step (what a per-step
                         sync costs; `train_one_epoch` sums the loss on the device instead)
  our loop, W workers    `train_one_epoch` with the paper's augmentations (RandomAffine + flip
                         + grayscale, per image on the CPU, per-sample seeds), W DataLoader
                         workers and pinned memory: what `fit` builds on CUDA
                         (loader_workers: auto)                 -> ratio to bare (target >= 0.9)
  our loop, main process the same with the loader in the main process (loader_workers: 0)
  loader alone           those DataLoaders without a model: how fast images can arrive
  before (tensor affine) the same with torchvision's tensor affine warp, as build_transform had it
                         before the warp moved to PIL (2.9x faster per 224 px image on one core)
  LRP                    zennit LRP (one session, as `explain_images` holds it) against a plain
                         forward+backward of the same model and batches (gradients of every
                         parameter, as a training step) and against an input-only gradient, with
                         model and inputs contiguous and channels_last -> ratio (target >= 0.8);
                         the same under bf16 autocast (a candidate, unused); `explain_images`
                         itself, as the saliency stage calls it; zennit's stock EpsilonPlus
  --part trace           instead of the rows: torch.profiler over one epoch of our loop, the host's
                         top operations and the share of the epoch the device was busy (it found
                         two host syncs per step in torchvision's normalize)

`fit` starts its workers anew each epoch (the epoch number reaches them when they fork, so a
sample's augmentation is the same whatever the worker count); the steady-state rows use
persistent workers, and the time a fresh loader takes to its first batch is printed apart.

With CUDA: the paper profile (VGG16 width 1.0, 224 px, bf16 autocast, channels_last, batch
32). Without: the same measurements at the CPU's scale (--cpu-size, --cpu-width), and it says
what it skipped. Needs torch, torchvision, pydantic (facetransfer.config) and zennit for the
LRP rows (skipped, with a line, where zennit is missing); no mlflow, no dvc.

    python bench/gpu_paper_profile.py [--batch 32] [--steps 60] [--workers 8] [--repeats 3]
        [--part all|training|lrp|trace]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from facetransfer.config import AugmentSpec
from facetransfer.models.vgg import build_vgg16
from facetransfer.training.data import ImageDataset, Split, build_transform, normalize
from facetransfer.training.loop import _autocast, _to_device, train_one_epoch, training_dtype
from facetransfer.training.losses import FocalLoss

# (row label, channels_last, bf16 autocast) of the LRP measurements.
LRP_VARIANTS = (("contiguous", False, False), ("channels_last", True, False), ("channels_last, bf16", True, True))

# The paper profile's train_pain augmentations (profiles/paper.yaml).
PAPER_AUGMENT = AugmentSpec(hflip=True, rotation=25.0, shift=0.1, shear=0.1, zoom=0.1, grayscale=0.2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], int], device: torch.device) -> float:
    """Images per second of `fn` (which returns how many images it processed)."""
    sync(device)
    start = time.perf_counter()
    images = fn()
    sync(device)
    return images / (time.perf_counter() - start)


def fake_split(n: int, size: int, classes: int, seed: int = 0) -> Split:
    """n random uint8 faces (n, size, size, 3) with labels: the loader's work does not depend on content."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return Split(images, np.arange(n), rng.integers(0, classes, n))


def make_model(width: float, classes: int, device: torch.device, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_vgg16(num_classes=classes, width=width, batch_norm=False, dropout=0.0).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def resident_batch(split: Split, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = _to_device(torch.from_numpy(split.images[:batch]).permute(0, 3, 1, 2), device)  # (B, 3, H, W) float
    return x, torch.from_numpy(split.labels[:batch]).to(device)


def bare_steps(model, x, y, steps: int, device: torch.device, read_loss: bool) -> Callable[[], int]:
    optimizer, loss_fn = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), FocalLoss(2.0)
    dtype = training_dtype("auto", device)  # as `fit` trains on this device

    def run() -> int:
        for _ in range(steps):
            with _autocast(device, dtype):
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if read_loss:
                loss.item()
        return steps * len(x)

    return run


def loader(dataset: Dataset, batch: int, workers: int, device: torch.device, persistent: bool = True,
           prefetch: int | None = None) -> DataLoader:
    return DataLoader(dataset, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0),
                      num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=persistent and workers > 0, prefetch_factor=prefetch if workers else None)


def loop_epoch(model, data: DataLoader, device: torch.device) -> Callable[[], int]:
    optimizer, loss_fn = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), FocalLoss(2.0)
    dtype = training_dtype("auto", device)
    return lambda: (train_one_epoch(model, data, loss_fn, optimizer, device, dtype), len(data.dataset))[1]


def loader_alone(data: DataLoader) -> Callable[[], int]:
    return lambda: sum(len(x) for x, _ in data)


def tensor_affine_transform() -> v2.Compose:
    """The paper augmentations with torchvision's tensor affine (grid_sample), as build_transform had them before
    it moved the warp to PIL: the comparison row."""
    shear_deg = float(np.degrees(np.arctan(PAPER_AUGMENT.shear)))
    a = PAPER_AUGMENT
    return v2.Compose([v2.RandomAffine(degrees=a.rotation, translate=(a.shift, a.shift), scale=(1 - a.zoom, 1 + a.zoom),
                                       shear=(-shear_deg, shear_deg)),
                       v2.RandomGrayscale(p=a.grayscale), v2.RandomHorizontalFlip(p=0.5)])


def first_batch_seconds(dataset: Dataset, batch: int, workers: int, device: torch.device) -> float:
    """A fresh (non-persistent) loader's time to its first batch: what `fit` pays once per epoch."""
    start = time.perf_counter()
    next(iter(loader(dataset, batch, workers, device, persistent=False)))
    return time.perf_counter() - start


def lrp_rows(model, split: Split, batch: int, device: torch.device, channels_last: bool,
             bf16: bool = False) -> dict[str, Callable]:
    """LRP (one zennit session, as explain_images holds it), a plain forward+backward (every gradient) and an
    input-only gradient, on the same batches in one memory layout; with `bf16`, all three under bf16 autocast
    (a candidate only: the saliency stage's LRP runs in float32)."""
    from facetransfer.explain.lrp import lrp_session

    layout = torch.channels_last if channels_last else torch.contiguous_format
    images, targets = split.images[: 4 * batch], split.labels[: 4 * batch]

    def batches():
        for start in range(0, len(images), batch):
            x = normalize(torch.from_numpy(images[start:start + batch]).to(device).permute(0, 3, 1, 2))
            yield x.contiguous(memory_format=layout), torch.from_numpy(targets[start:start + batch]).to(device)

    def lrp() -> int:
        with lrp_session(model) as explain, _autocast(device, torch.bfloat16 if bf16 else torch.float32):
            for x, t in batches():
                explain(x, t).float().cpu()
        return len(images)

    def plain() -> int:
        for x, t in batches():
            with _autocast(device, torch.bfloat16 if bf16 else torch.float32):
                out = model(x.requires_grad_(True))
            out.float().gather(1, t[:, None]).sum().backward()
        return len(images)

    def input_grad() -> int:
        for x, t in batches():
            x.requires_grad_(True)
            with _autocast(device, torch.bfloat16 if bf16 else torch.float32):
                out = model(x)
            torch.autograd.grad(out.float().gather(1, t[:, None]).sum(), x)
        return len(images)

    return {"lrp": lrp, "plain": plain, "input": input_grad}


def zennit_epsilon_plus(model, split: Split, batch: int, device: torch.device) -> Callable[[], int]:
    """zennit's own EpsilonPlus(epsilon=0), the same rules without our VGG fast path, channels_last."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlus

    images, targets = split.images[: 4 * batch], split.labels[: 4 * batch]

    def run() -> int:
        model.eval()
        with Gradient(model=model, composite=EpsilonPlus(epsilon=0.0)) as attributor:
            for start in range(0, len(images), batch):
                x = normalize(torch.from_numpy(images[start:start + batch]).to(device).permute(0, 3, 1, 2))
                t = torch.from_numpy(targets[start:start + batch]).to(device)
                x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
                attributor(x, lambda y, t=t: y * torch.nn.functional.one_hot(t, y.shape[1]).to(y.dtype))[1].sum(1).cpu()
        return len(images)

    return run


def shipped_lrp(model, split: Split, batch: int, device: torch.device) -> Callable[[], int]:
    """`explain_images` as the saliency stage calls it (it moves the model to channels_last on CUDA)."""
    from facetransfer.explain.lrp import explain_images

    images, targets = split.images[: 4 * batch], split.labels[: 4 * batch]
    return lambda: (explain_images(model, images, targets, batch, device), len(images))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60, help="batches per measurement")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers (default: loader_workers auto on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each row reports its median")
    parser.add_argument("--part", choices=("all", "training", "lrp", "trace"), default="all",
                        help="which rows; trace: profile one epoch of our loop (W workers) instead")
    parser.add_argument("--cpu-size", type=int, default=64, help="image side without CUDA")
    parser.add_argument("--cpu-width", type=float, default=0.125, help="VGG16 width without CUDA")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size, width = (224, 1.0) if cuda else (args.cpu_size, args.cpu_width)
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{name}, torch {torch.__version__}, {os.cpu_count()} CPUs: VGG16 width {width}, {size} px, batch "
          f"{args.batch}, {args.steps} batches per measure, median of {args.repeats}, "
          f"training dtype {training_dtype('auto', device)}")
    if not cuda:
        print("no CUDA: skipped the paper-scale GPU numbers (224 px, width 1.0, bf16, channels_last); "
              "the ratios below are the CPU's")
    split = fake_split(args.batch * args.steps, size, classes=2)
    if args.part == "trace":
        return trace_loop(split, width, args, device)
    training = training_rows(split, width, args, device) if args.part in ("all", "training") else {}
    lrp = all_lrp_rows(split, width, args.batch, device) if args.part in ("all", "lrp") else {}
    rates = measure({**training, **lrp}, args.repeats, device)
    if training:
        print_training(rates, training, split, args, device)
    if lrp:
        print_lrp(rates)


def training_rows(split: Split, width: float, args: argparse.Namespace, device: torch.device) -> dict[str, Callable]:
    model = make_model(width, 2, device, channels_last=device.type == "cuda")  # as `fit` moves it on CUDA
    augmented = ImageDataset(split, build_transform(PAPER_AUGMENT))
    before = ImageDataset(split, tensor_affine_transform())
    x, y = resident_batch(split, args.batch, device)
    w, batch = args.workers, args.batch
    return {
        "bare step (batch on the device)": bare_steps(model, x, y, args.steps, device, read_loss=False),
        "bare step, loss read every step": bare_steps(model, x, y, args.steps, device, read_loss=True),
        f"our loop, {w} workers + pinned memory": loop_epoch(model, loader(augmented, batch, w, device), device),
        f"our loop, {w} workers, 4 batches prefetched each": loop_epoch(
            model, loader(augmented, batch, w, device, prefetch=4), device),
        "our loop, loader in the main process": loop_epoch(model, loader(augmented, batch, 0, device), device),
        f"loader alone, {w} workers": loader_alone(loader(augmented, batch, w, device)),
        "loader alone, main process": loader_alone(loader(augmented, batch, 0, device)),
        f"before (tensor affine): our loop, {w} workers": loop_epoch(model, loader(before, batch, w, device), device),
        f"before (tensor affine): loader alone, {w} workers": loader_alone(loader(before, batch, w, device)),
    }


def trace_loop(split: Split, width: float, args: argparse.Namespace, device: torch.device) -> None:
    """torch.profiler over one epoch of `train_one_epoch` with W workers: the host's top operations (is it
    waiting for batches, or launching kernels?) and how much of the epoch the device was busy."""
    from torch.profiler import ProfilerActivity, profile

    model = make_model(width, 2, device, channels_last=device.type == "cuda")
    data = loader(ImageDataset(split, build_transform(PAPER_AUGMENT)), args.batch, args.workers, device)
    epoch = loop_epoch(model, data, device)
    epoch()  # warm-up: workers, cuDNN
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        epoch()
        sync(device)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))
    if device.type == "cuda":
        print(events.table(sort_by="self_device_time_total", row_limit=8, max_name_column_width=60))
        busy = sum(e.self_device_time_total for e in events) / 1e6
        print(f"epoch {wall:.2f} s under the profiler; kernels {busy:.2f} s: device busy {busy / wall:.0%}")


def all_lrp_rows(split: Split, width: float, batch: int, device: torch.device) -> dict[str, Callable]:
    try:
        rows = {f"{kind} ({layout})": fn
                for layout, cl, bf16 in LRP_VARIANTS
                for kind, fn in lrp_rows(make_model(width, 2, device, cl), split, batch, device, cl, bf16).items()}
    except ImportError as missing:
        print(f"LRP skipped: {missing}")
        return {}
    rows["explain_images"] = shipped_lrp(make_model(width, 2, device, False), split, batch, device)
    rows["zennit EpsilonPlus"] = zennit_epsilon_plus(make_model(width, 2, device, True), split, batch, device)
    return rows


def print_training(rates: dict[str, float], training: dict, split: Split, args: argparse.Namespace,
                   device: torch.device) -> None:
    bare = rates["bare step (batch on the device)"]
    print("\n| measure | images/s (median) | x bare step |\n|---|---|---|")
    for row in training:
        print(f"| {row} | {rates[row]:,.0f} | {rates[row] / bare:.2f} |")
    augmented = ImageDataset(split, build_transform(PAPER_AUGMENT))
    print(f"\nA fresh loader's first batch (once per epoch in `fit`): {args.workers} workers "
          f"{first_batch_seconds(augmented, args.batch, args.workers, device):.2f} s, main process "
          f"{first_batch_seconds(augmented, args.batch, 0, device):.2f} s")


def print_lrp(rates: dict[str, float]) -> None:
    for layout, _, _ in LRP_VARIANTS:
        r = {k: rates[f"{k} ({layout})"] for k in ("lrp", "plain", "input")}
        print(f"\nLRP, {layout}: {r['lrp']:,.0f} images/s; plain forward+backward {r['plain']:,.0f} -> "
              f"**{r['lrp'] / r['plain']:.2f}x** (target >= 0.8); input-only gradient {r['input']:,.0f} -> "
              f"{r['lrp'] / r['input']:.2f}x")
    plain = rates["plain (channels_last)"]
    print(f"explain_images as shipped: {rates['explain_images']:,.0f} images/s -> "
          f"**{rates['explain_images'] / plain:.2f}x** plain forward+backward (channels_last); zennit's own "
          f"EpsilonPlus(epsilon=0), without our VGG fast path: {rates['zennit EpsilonPlus']:,.0f} -> "
          f"{rates['zennit EpsilonPlus'] / plain:.2f}x")


def measure(rows: dict[str, Callable[[], int]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median images/s of each row over `repeats` rounds, after one warm-up call each (cuDNN autotuning,
    allocator, workers started)."""
    for fn in rows.values():
        fn()
    rounds = [{name: timed(fn, device) for name, fn in rows.items()} for _ in range(repeats)]
    return {name: statistics.median(r[name] for r in rounds) for name in rows}


if __name__ == "__main__":
    main()
