"""Data-parallel throughput (issue 20): training images/s of the one training loop run plainly, under
`torchrun --nproc_per_node 1`, and under torchrun with several processes.

Not a test. All runs train the same model on the same random prepared set in one invocation, one after the
other (each configuration `--repeats` times, interleaved, the best run kept), and the ratios compare them:

  1. torchrun with 1 process / plain. With one process `fit` does not wrap the model in DDP (WORLD_SIZE 1),
     so this is what launching through torchrun costs per epoch. Target: >= 0.95.
  2. torchrun with N processes / plain. On CUDA, N = the GPUs present (skipped with one GPU). On the CPU,
     N = 2 processes of `--threads / 2` torch threads each against one process of `--threads`: whether
     data parallel beats intra-op threads on the same cores (no target; a measurement).

Images/s = training images / the median seconds of the epochs after the first (fit's per-epoch record:
the training steps and the sharded validation). Needs the project (pydantic, sklearn, torch), not MLflow or
DVC: it calls training.recipes, not the stage commands.

Run from the project root:
    .venv/bin/python bench/ddp_throughput.py [--images 2048] [--size 64] [--width 0.125] [--epochs 4]
        [--batch 64] [--threads 2] [--device auto] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = "worker"


def write_prepared(folder: Path, images: int, size: int, seed: int = 0) -> Path:
    """A random prepared set as `prepare` writes it: images.npy (N, size, size, 3) uint8, 8 classes, 80/10/10."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images.npy", rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8))
    labels = np.arange(images) % 8
    cut = [0, int(0.8 * images), int(0.9 * images), images]
    for split, lo, hi in zip(("train", "val", "test"), cut[:-1], cut[1:], strict=True):
        pd.DataFrame({"row": range(lo, hi), "label": labels[lo:hi]}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def worker(args: argparse.Namespace) -> None:
    """Train the source model once; rank 0 prints {"images_per_s": ..., "epoch_seconds": [...]}."""
    from facetransfer import launch
    from facetransfer.config import ModelSpec, TrainEmotionConfig
    from facetransfer.training import recipes

    cfg = TrainEmotionConfig(model=ModelSpec(width=args.width), epochs=args.epochs, patience=0,
                             batch_size=args.batch, threads=args.threads, device=args.device, loader_workers=0)
    trained = recipes.train_emotion(Path(args.prepared), cfg)
    if launch.is_main():
        seconds = [record["seconds"] for record in trained.fit.history]
        train_images = int(0.8 * args.images)
        print(json.dumps({"images_per_s": train_images / statistics.median(seconds[1:]), "epoch_seconds": seconds}))


def measure(args: argparse.Namespace, processes: int | None, threads: int) -> float:
    """images/s of one training: plain (processes None) or under torchrun with `processes` processes."""
    me = [str(Path(__file__).resolve()), WORKER, *_worker_args(args, threads)]
    command = [sys.executable, *me]
    if processes is not None:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   *me]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    report = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    return report["images_per_s"]


def _worker_args(args: argparse.Namespace, threads: int) -> list[str]:
    return ["--prepared", args.prepared, "--images", str(args.images), "--width", str(args.width), "--epochs",
            str(args.epochs), "--batch", str(args.batch), "--threads", str(threads), "--device", args.device]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", WORKER))
    parser.add_argument("--prepared", default="")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration, interleaved")
    args = parser.parse_args()
    if args.mode == WORKER:
        return worker(args)
    import torch

    gpus = torch.cuda.device_count() if args.device in ("auto", "cuda") else 0
    with tempfile.TemporaryDirectory() as tmp:
        args.prepared = str(write_prepared(Path(tmp) / "prepared", args.images, args.size))
        print(f"{args.images} images {args.size}px, width {args.width}, batch {args.batch}, {args.epochs} epochs, "
              f"{'%d GPU(s)' % gpus if gpus else 'CPU'}")
        configurations = {"plain": (None, args.threads), "torchrun, 1 process": (1, args.threads)}
        if gpus > 1 or not gpus:
            n = gpus if gpus else 2
            threads = args.threads if gpus else max(1, args.threads // n)
            configurations[f"torchrun, {n} processes x {threads} thread(s)"] = (n, threads)
        best = {name: 0.0 for name in configurations}
        for _ in range(args.repeats):  # interleaved, best of each: a disturbed run (another process) drops out
            for name, (processes, threads) in configurations.items():
                best[name] = max(best[name], measure(args, processes, threads))
        plain = best["plain"]
        for name, images_per_s in best.items():
            print(f"{name:<36} {images_per_s:8.1f} images/s   / plain {images_per_s / plain:.3f}")
        print("targets: torchrun with 1 process / plain >= 0.95; several processes: a measurement "
              f"(against plain with {args.threads} threads)")


if __name__ == "__main__":
    main()
