"""Concept-probe benchmark: the paper's 500 x 2-fold CV for 5 AUs and one model pair, serial vs parallel.

Not a test. Both timings are taken in ONE run, side by side, and reported as a ratio
(serial / parallel); the issue's target is <= 60 s for the parallel run on 2 cores.
The scores must be identical with 1 and with N workers (checked here too).

Uses the trained FreezeB5 and FreezeB0 pain models and prepared CK+ when they exist
(after `make repro`); otherwise random-init models of the default architecture.

Run from the project root:
    .venv/bin/python bench/concept_probes.py [--repeats 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facetransfer.concepts import study
from facetransfer.config import ConceptsConfig, ModelSpec, load_section
from facetransfer.training.recipes import build, load_model


def _models(root: Path) -> dict:
    paths = {name: root / name / "model.pt" for name in ("freeze5", "freeze0")}
    if all(p.is_file() for p in paths.values()):
        return {name: load_model(p)[0] for name, p in paths.items()}
    print(f"(no trained models under {root}: random-init models of the default architecture)")
    return {name: build(ModelSpec(), 2) for name in paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=Path("prepared/ckplus"))
    parser.add_argument("--models", type=Path, default=Path("models/pain/seed2022"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    base = load_section(args.params, "concepts")
    cfg = ConceptsConfig(**{**base.model_dump(), "repeats": args.repeats, "compare": (0,), "reference": 5})
    data = study.load_probe_images(args.prepared)
    features = study.extract_features(_models(args.models), data, cfg)
    dims = next(iter(features.values())).shape
    print(f"{len(cfg.aus)} AUs x 2 models x {cfg.repeats} repeats x 2 folds on features {dims}")
    timings, results = {}, {}
    for workers in (1, args.workers):
        start = time.perf_counter()
        results[workers] = study.probe_all(features, data, cfg, workers)
        timings[workers] = time.perf_counter() - start
        print(f"  workers={workers}: {timings[workers]:.1f} s")
    same = all(np.array_equal(results[1][key], results[args.workers][key]) for key in results[1])
    print(f"serial / parallel = {timings[1] / timings[args.workers]:.2f}x with {args.workers} workers "
          f"(parallel {timings[args.workers]:.1f} s, target <= 60 s); identical scores: {same}")


if __name__ == "__main__":
    main()
