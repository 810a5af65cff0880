"""LRP throughput and memory: zennit LRP vs a plain forward + backward of the same model and batch.

Not a test. Both timings come from ONE run, interleaved, and are reported as a ratio
(target: LRP images/s >= 0.5 x plain forward+backward images/s). Memory: peak RSS of
`explain_images` over 1x and 4x as many images in fresh processes (the maps themselves,
N x H x W float32, are the only thing that should grow).

Run from the project root:
    .venv/bin/python bench/lrp_throughput.py [--model models/emotion/model.pt] [--batch 64] [--steps 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from facetransfer.config import ModelSpec
from facetransfer.explain import explain_images, lrp_relevance, lrp_session
from facetransfer.training.stages import build, load_model


def _model(path: Path):
    if path.is_file():
        return load_model(path)[0].eval()
    print(f"({path} not found: a random-init model of the default architecture)")
    return build(ModelSpec(), 8).eval()


def _plain_step(model, x, t):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    out.gather(1, t[:, None]).sum().backward()
    return x.grad


def _peak_rss_mib(path: Path, n_images: int, batch: int, queue) -> None:
    model = _model(path)
    images = np.random.default_rng(0).integers(0, 256, (n_images, 64, 64, 3), dtype=np.uint8)
    explain_images(model, images, np.zeros(n_images, dtype=np.int64), batch)
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/emotion/model.pt"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    model = _model(args.model)
    x = torch.randn(args.batch, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = torch.randint(0, 8, (args.batch,), generator=torch.Generator().manual_seed(1))
    timings = {"lrp": [], "plain": []}
    for _ in range(2):  # warm-up
        lrp_relevance(model, x, t)
        _plain_step(model, x, t)
    # Rounds alternate a block of LRP steps inside one session (as `explain_images` runs them;
    # while a session is open every backward goes through the LRP hooks) with a block of plain
    # steps, so load changes hit both alike.
    for _ in range(args.steps):
        with lrp_session(model) as explain:
            for _ in range(3):
                start = time.perf_counter()
                explain(x, t)
                timings["lrp"].append(time.perf_counter() - start)
        for _ in range(3):
            start = time.perf_counter()
            _plain_step(model, x, t)
            timings["plain"].append(time.perf_counter() - start)
    rate = {k: args.batch / statistics.median(v) for k, v in timings.items()}
    print(f"LRP {rate['lrp']:.0f} images/s, plain forward+backward {rate['plain']:.0f} images/s: "
          f"ratio {rate['lrp'] / rate['plain']:.2f} (target >= 0.5), batch {args.batch}, "
          f"{torch.get_num_threads()} threads")
    ctx = multiprocessing.get_context("spawn")
    peaks = {}
    for n in (256, 1024):
        queue = ctx.Queue()
        proc = ctx.Process(target=_peak_rss_mib, args=(args.model, n, args.batch, queue))
        proc.start()
        peaks[n] = queue.get()
        proc.join()
    maps_mib = (1024 - 256) * 64 * 64 * 4 / 2**20
    print(f"peak RSS explaining 256 images: {peaks[256]:.0f} MiB, 1024 images: {peaks[1024]:.0f} MiB "
          f"(x4 images, +{peaks[1024] - peaks[256]:.0f} MiB; the extra maps and inputs alone take "
          f"{maps_mib + (1024 - 256) * 64 * 64 * 3 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
