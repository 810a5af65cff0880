"""CPU kernel choices for the default profile's training steps: which precision and memory format are fastest.

Not a test. Every number is a ratio of timings taken side by side in ONE run
(interleaved repetitions, median), so a busy machine slows all sides alike.

  1. VGG16-BN width 0.125, 64x64, batch 64, SGD: float32 vs channels_last vs
     bf16 autocast (what `precision: auto` picks on CPUs with AMX / AVX512-BF16)
     vs both; and whether two runs of each end with identical weights.
  2. MobileNetV2 width 0.5 (the paper's masking trainee; trainee.model can still choose it), 64x64,
     batch 32, Adam: the same four.
  3. Per-sample seeded augmentation (data.sample_seed, what makes results independent of
     the loader's worker count) vs drawing from the global RNG, paper augmentations.
  4. The `threads` param: VGG16-BN steps on 1 and 2 torch threads, alone and beside one busy
     core (as beside the other pytest worker of `make test`), and whether the two thread counts
     end with the same weights.

Run from the project root:
    .venv/bin/python bench/cpu_kernels.py [--steps 8] [--reps 3] [--part all|kernels|seeding|threads]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v2

from facetransfer.config import AugmentSpec
from facetransfer.models import build_model
from facetransfer.training.data import ImageDataset, Split, build_transform
from facetransfer.training.loop import cpu_has_native_bf16
from train_throughput import median_times  # bench/ is on sys.path when this script runs

VARIANTS = (("float32", False, False), ("float32 channels_last", True, False), ("bf16 autocast", False, True),
            ("bf16 channels_last", True, True))
PAPER = AugmentSpec(rotation=25.0, shift=0.1, shear=0.1, zoom=0.1, grayscale=0.2)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8, help="training steps per timed repetition")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per variant; the median is reported")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (parts 1-3)")
    p.add_argument("--part", choices=("all", "kernels", "seeding", "threads"), default="all")
    return p.parse_args()


def make_stepper(build: Callable[[], nn.Module], optimizer: Callable, batch: int, channels_last: bool, bf16: bool,
                 steps: int) -> tuple[Callable[[], None], nn.Module]:
    """A function running `steps` training steps on fixed random batches, and its model."""
    torch.manual_seed(0)
    model = build()
    generator = torch.Generator().manual_seed(1)
    xs = [torch.randn(batch, 3, 64, 64, generator=generator) for _ in range(steps)]
    y = torch.randint(0, 8, (batch,), generator=generator)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
    opt = optimizer(model.parameters())

    def run() -> None:
        for x in xs:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run, model


def weights_digest(model: nn.Module) -> str:
    return hashlib.sha256(b"".join(p.detach().contiguous().numpy().tobytes() for p in model.parameters())).hexdigest()


def deterministic(build: Callable[[], nn.Module], optimizer: Callable, batch: int, channels_last: bool,
                  bf16: bool) -> bool:
    """Do two runs of 3 steps from the same seed end with the same weights, bit for bit?"""
    digests = set()
    for _ in range(2):
        run, model = make_stepper(build, optimizer, batch, channels_last, bf16, 3)
        run()
        digests.add(weights_digest(model))
    return len(digests) == 1


def compare_kernels(title: str, build: Callable[[], nn.Module], optimizer: Callable, batch: int,
                    args: argparse.Namespace) -> None:
    print(f"{title}, batch {batch}, {args.steps} steps x {args.reps} reps (median)")
    steppers = {name: make_stepper(build, optimizer, batch, cl, bf, args.steps) for name, cl, bf in VARIANTS}
    for run, _ in steppers.values():
        run()  # warm-up: oneDNN picks and caches its kernels
    seconds = median_times({name: run for name, (run, _) in steppers.items()}, args.reps)
    for name, channels_last, bf16 in VARIANTS:
        rate = batch * args.steps / seconds[name]
        print(f"    {name:24s}: {rate:7.1f} images/s   {seconds['float32'] / seconds[name]:5.2f}x float32   "
              f"deterministic: {deterministic(build, optimizer, batch, channels_last, bf16)}")


def compare_seeding(args: argparse.Namespace, n: int = 2000) -> None:
    images = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    seeded = ImageDataset(Split(images, np.arange(n), np.zeros(n, dtype=np.int64)), build_transform(PAPER), 2022)
    unseeded = ImageDataset(seeded.split, build_transform(PAPER), 2022)
    unseeded.random = False  # the transform is then applied below with the global RNG as it stands

    def seeded_pass() -> None:
        for i in range(n):
            seeded[i]

    def global_pass() -> None:
        for i in range(n):
            unseeded.transform(unseeded[i][0])

    times = median_times({"seeded": seeded_pass, "global": global_pass}, args.reps)
    s, g = times["seeded"], times["global"]
    print(f"[3] paper augmentations, {n} 64x64 images per pass, {args.reps} reps (median)")
    print(f"    global RNG             : {g / n * 1e6:7.1f} us/image")
    print(f"    per-sample seeded      : {s / n * 1e6:7.1f} us/image   ({s / g:4.2f}x the global-RNG time)")


def _busy(stop) -> None:
    """One core kept busy (a 1-thread matmul loop) until `stop` is set."""
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def compare_threads(args: argparse.Namespace) -> None:
    build = lambda: build_model("vgg16", num_classes=8, width=0.125, batch_norm=True)  # noqa: E731
    sgd = lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)  # noqa: E731
    bf16, counts = cpu_has_native_bf16(), (1, 2)
    digests = {}
    for threads in counts:
        torch.set_num_threads(threads)
        run, model = make_stepper(build, sgd, 64, False, bf16, 3)
        run()
        digests[threads] = weights_digest(model)
    steppers = {t: make_stepper(build, sgd, 64, False, bf16, args.steps)[0] for t in counts}

    def on(threads: int) -> Callable[[], None]:
        return lambda: (torch.set_num_threads(threads), steppers[threads]())

    for t in counts:
        on(t)()  # warm-up
    alone = median_times({t: on(t) for t in counts}, args.reps)
    stop = multiprocessing.get_context("spawn").Event()
    competitor = multiprocessing.get_context("spawn").Process(target=_busy, args=(stop,))
    competitor.start()
    try:
        busy = median_times({t: on(t) for t in counts}, args.reps)
    finally:
        stop.set()
        competitor.join()
    print(f"[4] VGG16-BN width 0.125, SGD, {'bf16' if bf16 else 'float32'}, batch 64, {args.steps} steps x {args.reps} "
          f"reps (median); same weights after 3 steps on 1 and 2 threads: {digests[1] == digests[2]}")
    for t in counts:
        rate_alone, rate_busy = 64 * args.steps / alone[t], 64 * args.steps / busy[t]
        print(f"    {t} thread(s): alone {rate_alone:7.1f} images/s, beside a busy core {rate_busy:7.1f} images/s "
              f"({rate_busy / rate_alone:4.2f}x)")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {cpu_has_native_bf16()}")
    if args.part in ("all", "kernels"):
        compare_kernels("[1] VGG16-BN width 0.125, SGD", lambda: build_model("vgg16", num_classes=8, width=0.125,
                                                                                batch_norm=True),
                        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), 64, args)
        compare_kernels("[2] MobileNetV2 width 0.5 (trainee), Adam",
                        lambda: mobilenet_v2(num_classes=8, width_mult=0.5),
                        lambda p: torch.optim.Adam(p, lr=0.003), 32, args)
    if args.part in ("all", "seeding"):
        compare_seeding(args)
    if args.part in ("all", "threads"):
        compare_threads(args)


if __name__ == "__main__":
    main()
