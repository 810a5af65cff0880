"""LRP throughput and memory: zennit LRP vs a plain forward + backward of the same model and batch.

Not a test. All timings come from ONE run, interleaved, and are reported as ratios
(target: LRP images/s >= 0.5 x plain forward+backward images/s). Two baselines: the
training-style step (`.backward()`, gradients of every parameter and the input) and an
input-only `torch.autograd.grad` (the gradients LRP itself asks autograd for; stricter).
Memory: peak RSS over 1x and 4x as many images in fresh processes, for `explain_images`
(returns every map, so the maps should be the only thing that grows) and for the saliency
stage's `explain_model` (keeps 32 maps and scores the rest batch by batch: only the input
images should grow).

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
from facetransfer.training.recipes import build, load_model


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


def _input_grad_step(model, x, t):
    x = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(model(x).gather(1, t[:, None]).sum(), x)[0]


def _test_images(n_images: int):
    from facetransfer.analysis.saliency import TestImages
    from facetransfer.data.labels import ACTION_UNITS

    rng = np.random.default_rng(0)
    packed = rng.integers(0, 256, (n_images, len(ACTION_UNITS), 64, 8), dtype=np.uint8)  # random packed regions
    return TestImages(rng.integers(0, 256, (n_images, 64, 64, 3), dtype=np.uint8), np.zeros(n_images, np.int64),
                      np.arange(n_images), rng.random((n_images, len(ACTION_UNITS))) < 0.3, packed)


def _peak_rss_mib(path: Path, n_images: int, batch: int, streamed: bool, queue) -> None:
    from facetransfer.analysis.saliency import explain_model

    model = _model(path)
    data = _test_images(n_images)
    if streamed:
        explain_model(model, data, np.arange(32), np.arange(n_images), 0.5, batch, "cpu")
    else:
        explain_images(model, data.images, data.labels, batch)
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
    timings = {"lrp": [], "plain": [], "input_grad": []}
    for _ in range(2):  # warm-up
        lrp_relevance(model, x, t)
        _plain_step(model, x, t)
        _input_grad_step(model, x, t)
    # Rounds alternate a block of LRP steps inside one session (as `explain_images` runs them;
    # while a session is open every backward goes through the LRP hooks) with a block of plain
    # steps, so load changes hit both alike.
    for _ in range(args.steps):
        with lrp_session(model) as explain:
            for _ in range(3):
                start = time.perf_counter()
                explain(x, t)
                timings["lrp"].append(time.perf_counter() - start)
        for step, key in ((_plain_step, "plain"), (_input_grad_step, "input_grad")):
            for _ in range(3):
                start = time.perf_counter()
                step(model, x, t)
                timings[key].append(time.perf_counter() - start)
    rate = {k: args.batch / statistics.median(v) for k, v in timings.items()}
    print(f"LRP {rate['lrp']:.0f} images/s, plain forward+backward {rate['plain']:.0f} images/s: "
          f"ratio {rate['lrp'] / rate['plain']:.2f} (target >= 0.5); vs input-only gradient "
          f"{rate['input_grad']:.0f} images/s: ratio {rate['lrp'] / rate['input_grad']:.2f}; batch {args.batch}, "
          f"{torch.get_num_threads()} threads")
    ctx = multiprocessing.get_context("spawn")
    extra_inputs = (1024 - 256) * 64 * 64 * 3 / 2**20
    extra_maps = (1024 - 256) * 64 * 64 * 4 / 2**20
    for streamed, grows in ((False, extra_maps + extra_inputs), (True, extra_inputs)):
        peaks = {}
        for n in (256, 1024):
            queue = ctx.Queue()
            proc = ctx.Process(target=_peak_rss_mib, args=(args.model, n, args.batch, streamed, queue))
            proc.start()
            peaks[n] = queue.get()
            proc.join()
        what = "explain_model (saliency stage)" if streamed else "explain_images"
        print(f"{what}: peak RSS 256 images {peaks[256]:.0f} MiB, 1024 images {peaks[1024]:.0f} MiB "
              f"(x4 images, +{peaks[1024] - peaks[256]:.0f} MiB; what should grow takes {grows:.0f} MiB)")


if __name__ == "__main__":
    main()
