"""Generate the synthetic benchmark: build items, render them in parallel, write native layouts.

Each dataset is written into a hidden temporary folder next to its final
place and moved there only when complete (`atomic_dir`), so an interrupted run
never leaves a half-written dataset where DVC would take it as finished.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from facetransfer.config import SynthConfig
from facetransfer.data.synth.datasets import BUILDERS, Item
from facetransfer.data.synth.render import render
from facetransfer.data.synth.sheets import write_contact_sheets
from facetransfer.data.synth.writers import WRITERS, write_groundtruth
from facetransfer.fsutil import atomic_dir

DATASETS = tuple(BUILDERS)
Progress = Callable[[str, int, int], None]  # (dataset, done, total)

# Encoder settings are part of the bytes the data hash depends on.
_JPEG = {"quality": 95, "subsampling": 0, "optimize": False}
_PNG = {"compress_level": 6}


def _render_and_write(args: tuple[Item, int, str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Worker: render one item; write image files, return pixels only for CSV datasets."""
    item, supersample, root = args
    image, landmarks = render(item.scene, supersample)
    if item.fmt == "pixels":
        return landmarks, image
    path = Path(root) / item.rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if item.fmt == "jpg":
        Image.fromarray(image).save(path, "JPEG", **_JPEG)
    else:
        Image.fromarray(image).save(path, "PNG", **_PNG)
    return landmarks, None


def _image_root(name: str, root: Path) -> Path:
    return root / "Manually_Annotated_Images" if name == "affectnet" else root


def render_items(items: list[Item], root: Path, cfg: SynthConfig, name: str,
                 progress: Progress | None) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    jobs = [(item, cfg.supersample, str(_image_root(name, root))) for item in items]
    results: Iterable
    if cfg.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(cfg.workers)
        results = pool.imap(_render_and_write, jobs, chunksize=32)
    else:
        pool, results = None, map(_render_and_write, jobs)
    landmarks, pixels = [], []
    try:
        for done, (lm, px) in enumerate(results, start=1):
            landmarks.append(lm)
            pixels.append(px)
            if progress and (done % 200 == 0 or done == len(jobs)):
                progress(name, done, len(jobs))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return landmarks, pixels


def generate_dataset(name: str, out: Path, cfg: SynthConfig, progress: Progress | None = None) -> int:
    """Write one dataset to out/<name> (replacing it); returns the number of images."""
    items = BUILDERS[name](cfg)
    with atomic_dir(out / name) as tmp:
        landmarks, pixels = render_items(items, tmp, cfg, name, progress)
        WRITERS[name](tmp, items, pixels if name == "ferplus" else landmarks, cfg)
        write_groundtruth(tmp, items, landmarks)
        write_contact_sheets(tmp / "contact_sheets", name, items, landmarks, pixels, tmp)
    return len(items)


def generate(out: str | Path, cfg: SynthConfig, datasets: Iterable[str] = DATASETS,
             progress: Progress | None = None) -> dict[str, int]:
    """Write the chosen synthetic datasets under `out`; returns image counts per dataset."""
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {name: generate_dataset(name, out, cfg, progress) for name in datasets}
