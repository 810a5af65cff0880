"""Training throughput benchmark: how much our loop costs, and what feature caching buys.

Not a test. Every number is measured in ONE run and reported as a ratio of two
timings taken side by side, so a busy machine slows both sides alike.

  1. Step throughput of `facetransfer.training.loop.train_one_epoch` (DataLoader
     over ImageDataset with the flip transform) vs a bare torch loop on the same
     model and one fixed in-memory batch. Target: ours / bare >= 0.9.
  2. Retraining a head on a frozen network (all 5 conv blocks frozen, flip only):
     one epoch through the frozen network vs the cached path (flip_features once,
     then epochs over FlipFeatureDataset). Target: >= 10x at the default epoch count.
  3. With CUDA only: the paper profile (width 1.0, 224x224, bf16, channels_last,
     batch 32) training steps through our loop.

Parts 1 and 2 run on the CPU (the default profile: width 0.125, 64x64 images).

Run from the project root:
    .venv/bin/python bench/train_throughput.py [--prepared prepared/affectnet] [--steps 20] [--subset 2000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from facetransfer.config import AugmentSpec, ModelSpec, RetrainEmotionConfig, TrainEmotionConfig, TrainSettings
from facetransfer.models import build_model
from facetransfer.models.vgg import freeze_blocks
from facetransfer.training.cached import FlipFeatureDataset, flip_features
from facetransfer.training.data import ImageDataset, Split, build_transform, class_counts, load_split, normalize
from facetransfer.training.loop import make_optimizer, seed_epoch, train_one_epoch
from facetransfer.training.losses import FocalLoss, class_balanced_weights

N_CLASSES = 8  # the emotion task
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- helpers

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepared", type=Path, default=Path("prepared/affectnet"), help="prepared AffectNet folder")
    p.add_argument("--steps", type=int, default=20, help="training steps per timed repetition (part 1 and 3)")
    p.add_argument("--subset", type=int, default=2000, help="train images for the retrain comparison (part 2)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions; the median is reported")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return p.parse_args()


def timed(fn: Callable[[], object], sync: bool = False) -> float:
    """Wall seconds of one call; with `sync`, CUDA work queued by the call is included."""
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_times(fns: dict[str, Callable[[], object]], reps: int, sync: bool = False) -> dict[str, float]:
    """Median seconds of each fn over `reps` rounds; the fns alternate within a round so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(timed(fn, sync))
    return {name: statistics.median(t) for name, t in times.items()}


def default_model(width: float | None = None) -> nn.Module:
    """The source model of TrainEmotionConfig's ModelSpec (VGG16-BN, width 0.125 by default), 8 classes."""
    spec = ModelSpec()
    return build_model(spec.name, num_classes=N_CLASSES, width=spec.width if width is None else width,
                       batch_norm=spec.batch_norm, dropout=spec.dropout)


def emotion_loss(train: Split, cfg: TrainSettings) -> FocalLoss:
    """The focal loss + class-balanced weights the stages use (stages._loss)."""
    weight = class_balanced_weights(class_counts(train, N_CLASSES), cfg.loss.class_balance_beta)
    return FocalLoss(cfg.loss.gamma, weight=weight)


def take(split: Split, n: int) -> Split:
    """The first n rows of a split, cycled when the split is shorter (rows may repeat)."""
    idx = torch.arange(n) % len(split)
    return Split(split.images, split.rows[idx.numpy()], split.labels[idx.numpy()])


def loader(dataset, batch_size: int, seed: int) -> DataLoader:
    """The loader `fit` builds for an epoch: shuffled with a seeded generator, no workers."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=seed_epoch(seed, 0))


# ----------------------------------------------------------------------------- part 1: ours vs bare

def fixed_batch(split: Split, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) float32 normalised images and (B,) int64 labels, decoded once."""
    dataset = ImageDataset(split, build_transform(None))
    xs, ys = zip(*(dataset[i] for i in range(batch_size)), strict=True)
    return normalize(torch.stack(xs)), torch.tensor(ys)


def bare_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module,
               optimizer: torch.optim.Optimizer, steps: int, device: torch.device) -> None:
    """The reference: forward, focal loss, zero_grad, backward, SGD step on one batch already in place."""
    model.train()
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else torch.autocast("cpu", enabled=False))
    for _ in range(steps):
        with amp:
            loss = loss_fn(model(x).float(), y)  # logits (B, 8) -> scalar
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def sgd(model: nn.Module, cfg: TrainSettings) -> torch.optim.SGD:
    o = cfg.optimizer
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def loop_vs_bare(train: Split, steps: int, reps: int) -> None:
    cfg = TrainEmotionConfig()
    bs = cfg.batch_size
    loss_fn = emotion_loss(train, cfg)
    base = default_model()
    # Two copies of the same initial weights, each with its own optimizer state.
    bare_model, our_model = copy.deepcopy(base), copy.deepcopy(base)
    bare_opt, our_opt = sgd(bare_model, cfg), make_optimizer(our_model, cfg)
    x, y = fixed_batch(train, bs)  # (64, 3, 64, 64), (64,)
    # Ours reads steps * bs real images (memory-mapped uint8 -> flip -> normalise) per epoch.
    our_data = ImageDataset(take(train, steps * bs), build_transform(AugmentSpec()))

    fns = {
        "bare": lambda: bare_steps(bare_model, x, y, loss_fn, bare_opt, steps, CPU),
        "ours": lambda: train_one_epoch(our_model, loader(our_data, bs, cfg.seed), loss_fn, our_opt, CPU),
    }
    for fn in fns.values():  # warm-up: allocator, oneDNN kernels, page cache of the memory map
        fn()
    med = median_times(fns, reps)
    rate = {name: steps * bs / t for name, t in med.items()}
    print(f"[1] training steps, CPU, VGG16-BN width {ModelSpec().width}, batch {bs} x 3x{x.shape[2]}x{x.shape[3]}, "
          f"{steps} steps x {reps} reps (median)")
    print(f"    bare torch loop (fixed batch)        : {rate['bare']:8.1f} images/s  "
          f"({med['bare'] / steps * 1e3:.1f} ms/step)")
    print(f"    train_one_epoch (ImageDataset, flip) : {rate['ours']:8.1f} images/s  "
          f"({med['ours'] / steps * 1e3:.1f} ms/step)")
    ratio = rate["ours"] / rate["bare"]
    print(f"    ratio ours / bare                    : {ratio:8.3f}  "
          f"(target >= 0.9: {'PASS' if ratio >= 0.9 else 'FAIL'})")


# ----------------------------------------------------------------------------- part 2: cached retrain

def frozen_model() -> nn.Module:
    """The retrain setting: every conv block frozen, only the head (Linear C_last -> 8) trains."""
    model = default_model()
    freeze_blocks(model, 5)
    return model


def cached_speedup(train: Split, subset: int, reps: int) -> None:
    cfg = RetrainEmotionConfig()
    assert cfg.cached_features and cfg.augment.flip_only, "the default retrain config should use the cached path"
    bs = cfg.batch_size
    split = take(train, min(subset, len(train)))
    loss_fn = emotion_loss(train, cfg)
    model = frozen_model()
    head = model.classifier  # Flatten -> Dropout -> Linear (B, C_last) -> (B, 8)
    full_data = ImageDataset(split, build_transform(cfg.augment))
    full_opt = make_optimizer(model, cfg)  # the head's parameters only
    head_opt = make_optimizer(head, cfg)
    features = flip_features(model, split, bs, CPU)  # (N, 2, C_last): image and mirror
    cached_data = FlipFeatureDataset(features, split.labels, train=True)

    fns = {
        "full": lambda: train_one_epoch(model, loader(full_data, bs, cfg.seed), loss_fn, full_opt, CPU),
        "extract": lambda: flip_features(model, split, bs, CPU),
        "cached": lambda: train_one_epoch(head, loader(cached_data, bs, cfg.seed), loss_fn, head_opt, CPU),
    }
    for fn in fns.values():
        fn()
    med = median_times(fns, max(3, reps // 2))
    n = len(split)
    print(f"[2] retrain head on a frozen network (freeze_blocks 5, flip only), CPU, {n} train images, batch {bs}")
    print(f"    full-network epoch (train_one_epoch over ImageDataset) : {med['full']:8.3f} s  "
          f"({n / med['full']:.0f} images/s)")
    print(f"    feature extraction (flip_features, once, 2 views)      : {med['extract']:8.3f} s")
    print(f"    cached epoch (train_one_epoch over FlipFeatureDataset) : {med['cached']:8.3f} s")
    for e in sorted({1, 10, cfg.epochs}):
        speedup = e * med["full"] / (med["extract"] + e * med["cached"])
        ceiling = e * med["full"] / med["extract"]  # the cached epochs cost nothing
        note = ""
        if e == cfg.epochs:
            note = f"  <- default epochs; target >= 10x: {'PASS' if speedup >= 10 else 'FAIL'}"
        print(f"    speed-up for E={e:<3d}: {speedup:6.2f}x  (ceiling with free cached epochs {ceiling:5.2f}x){note}")


# ----------------------------------------------------------------------------- part 3: GPU paper profile

def paper_profile(steps: int, reps: int) -> None:
    """Width 1.0, 224x224 random input, bf16 autocast, channels_last, batch 32: our loop vs the bare loop."""
    device, bs, cfg = torch.device("cuda"), 32, TrainEmotionConfig()
    steps = max(steps, 50)  # a GPU step is short; more steps per timing
    loss_fn = FocalLoss(cfg.loss.gamma).to(device)
    base = default_model(width=1.0).to(device, memory_format=torch.channels_last)
    bare_model, our_model = copy.deepcopy(base), copy.deepcopy(base)
    bare_opt, our_opt = sgd(bare_model, cfg), make_optimizer(our_model, cfg)
    x = torch.randn(bs, 3, 224, 224)  # (32, 3, 224, 224) as if normalised
    y = torch.randint(0, N_CLASSES, (bs,))
    # Ours gets CPU batches (pinned, as a loader with pin_memory would give) and copies them each step.
    batches = [(x.pin_memory(), y)] * steps
    x_dev, y_dev = x.to(device, memory_format=torch.channels_last), y.to(device)
    fns = {
        "bare": lambda: bare_steps(bare_model, x_dev, y_dev, loss_fn, bare_opt, steps, device),
        "ours": lambda: train_one_epoch(our_model, batches, loss_fn, our_opt, device, torch.bfloat16),
    }
    for fn in fns.values():
        timed(fn, sync=True)
    med = median_times(fns, reps, sync=True)
    rate = {name: steps * bs / t for name, t in med.items()}
    print(f"[3] paper profile on {torch.cuda.get_device_name()}: VGG16-BN width 1.0, batch {bs} x 3x224x224, "
          f"bf16 autocast, channels_last, {steps} steps x {reps} reps (median)")
    print(f"    bare torch loop (batch on the GPU) : {rate['bare']:8.1f} images/s")
    print(f"    train_one_epoch (host batches)     : {rate['ours']:8.1f} images/s")
    print(f"    ratio ours / bare                  : {rate['ours'] / rate['bare']:8.3f}")


# ----------------------------------------------------------------------------- main

def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train = load_split(args.prepared, "train")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, prepared {args.prepared} "
          f"({len(train)} train images {tuple(train.images.shape[1:])})")
    loop_vs_bare(train, args.steps, args.reps)
    cached_speedup(train, args.subset, args.reps)
    if torch.cuda.is_available():
        paper_profile(args.steps, args.reps)
    else:
        print("[3] paper profile (width 1.0, 224x224, bf16, channels_last, batch 32): skipped (no GPU)")


if __name__ == "__main__":
    main()
