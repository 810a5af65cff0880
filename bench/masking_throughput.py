"""Masking throughput: images/s of the mask stage's core (trainer prediction + LRP + three masks).

Not a test. Prints images/s overall and the share of the time spent in LRP vs the masks,
measured in one run on the default profile's FER+-like train split (or random images).

Run from the project root:
    .venv/bin/python bench/masking_throughput.py [--images 1024]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facetransfer.config import MaskConfig, ModelSpec
from facetransfer.masking.dataset import keep_masks, trainer_relevance
from facetransfer.training.recipes import build, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainer", type=Path, default=Path("models/emotion/model.pt"))
    parser.add_argument("--data", type=Path, default=Path("prepared/ferplus"))
    parser.add_argument("--images", type=int, default=1024)
    args = parser.parse_args()
    if (args.data / "train.csv").is_file():
        rows = pd.read_csv(args.data / "train.csv")["row"].to_numpy()[: args.images]
        images = np.load(args.data / "images.npy", mmap_mode="r")[rows]
    else:
        print(f"({args.data} not prepared: random images)")
        images = np.random.default_rng(0).integers(0, 256, (args.images, 64, 64, 3), dtype=np.uint8)
    model = load_model(args.trainer)[0] if args.trainer.is_file() else build(ModelSpec(), 8)
    cfg = MaskConfig()
    start = time.perf_counter()
    relevance, _ = trainer_relevance(model, images, cfg)
    lrp_done = time.perf_counter()
    keep_masks(relevance, cfg)
    end = time.perf_counter()
    total = end - start
    print(f"{len(images)} images: {len(images) / total:.0f} images/s including LRP "
          f"(prediction + LRP {lrp_done - start:.1f} s = {100 * (lrp_done - start) / total:.0f} %, "
          f"three masks {end - lrp_done:.1f} s)")


if __name__ == "__main__":
    main()
