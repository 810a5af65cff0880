"""Generate the synthetic benchmark: build items, render them in parallel, write native layouts.

Images of the splits where explanations are scored are rendered again once per AU they show, with
that AU alone switched off: the changed pixels are the AU's counterfactual footprint (ground truth of
where the AU is), and for the AffectNet-like test list the images are kept for the necessity stage.

Each dataset is written into a hidden temporary folder next to its final
place and moved there only when complete (`atomic_dir`), so an interrupted run
never leaves a half-written dataset where DVC would take it as finished.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from facetransfer.config import SynthConfig
from facetransfer.data.synth.datasets import BUILDERS, Item
from facetransfer.data.synth.render import render
from facetransfer.data.synth.sheets import write_contact_sheets
from facetransfer.data.synth.writers import (
    COUNTERFACTUAL_IMAGES,
    COUNTERFACTUALS,
    WRITERS,
    write_counterfactuals,
    write_groundtruth,
)
from facetransfer.fsutil import atomic_dir

DATASETS = tuple(BUILDERS)
Progress = Callable[[str, int, int], None]  # (dataset, done, total)

# Encoder settings are part of the bytes the data hash depends on.
_JPEG = {"quality": 95, "subsampling": 0, "optimize": False}
_PNG = {"compress_level": 6}


@dataclass(frozen=True)
class Counterfactual:
    """One AU of one image switched off alone: the pixels that changed, and where its image went (or "")."""

    au: int
    footprint: np.ndarray  # (H, ceil(W/8)) uint8: the changed pixels, bits packed along the width
    path: str  # under counterfactuals/, "" when only the footprint is kept


@dataclass(frozen=True)
class Rendered:
    landmarks: np.ndarray  # (68, 2) in pixels
    pixels: np.ndarray | None  # the image, for datasets stored in a CSV (FER+)
    counterfactuals: tuple[Counterfactual, ...] = ()


def _save(image: np.ndarray, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jpg":
        Image.fromarray(image).save(path, "JPEG", **_JPEG)
    else:
        Image.fromarray(image).save(path, "PNG", **_PNG)


def counterfactual_footprints(item: Item, image: np.ndarray,
                              supersample: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(au, image with that AU alone switched off, (H, W) bool pixels that differ) for every AU the image shows."""
    scene = item.scene
    for au in sorted(scene.expression.intensities):
        without, _ = render(replace(scene, expression=scene.expression.without((au,))), supersample)
        changed = image != without
        yield au, without, changed.any(axis=-1) if changed.ndim == 3 else changed


def _render_and_write(args: tuple[Item, int, str, str]) -> Rendered:
    """Worker: render one item and its counterfactuals; write image files, return pixels only for CSV datasets."""
    item, supersample, image_root, dataset_root = args
    image, landmarks = render(item.scene, supersample)
    counterfactuals = []
    if item.counterfactual:
        for au, without, changed in counterfactual_footprints(item, image, supersample):
            path = ""
            if item.counterfactual == "images":
                path = f"{COUNTERFACTUAL_IMAGES}/AU{au}/{item.rel_path}"
                _save(without, Path(dataset_root) / COUNTERFACTUALS / path, item.fmt)
            counterfactuals.append(Counterfactual(au, np.packbits(changed, axis=-1), path))
    if item.fmt == "pixels":
        return Rendered(landmarks, image, tuple(counterfactuals))
    _save(image, Path(image_root) / item.rel_path, item.fmt)
    return Rendered(landmarks, None, tuple(counterfactuals))


def _image_root(name: str, root: Path) -> Path:
    return root / "Manually_Annotated_Images" if name == "affectnet" else root


def render_items(items: list[Item], root: Path, cfg: SynthConfig, name: str,
                 progress: Progress | None) -> list[Rendered]:
    jobs = [(item, cfg.supersample, str(_image_root(name, root)), str(root)) for item in items]
    results: Iterable
    if cfg.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(cfg.workers)
        results = pool.imap(_render_and_write, jobs, chunksize=32)
    else:
        pool, results = None, map(_render_and_write, jobs)
    rendered = []
    try:
        for done, result in enumerate(results, start=1):
            rendered.append(result)
            if progress and (done % 200 == 0 or done == len(jobs)):
                progress(name, done, len(jobs))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return rendered


def generate_dataset(name: str, out: Path, cfg: SynthConfig, progress: Progress | None = None) -> int:
    """Write one dataset to out/<name> (replacing it); returns the number of images."""
    items = BUILDERS[name](cfg)
    with atomic_dir(out / name) as tmp:
        rendered = render_items(items, tmp, cfg, name, progress)
        landmarks, pixels = [r.landmarks for r in rendered], [r.pixels for r in rendered]
        WRITERS[name](tmp, items, pixels if name == "ferplus" else landmarks, cfg)
        write_groundtruth(tmp, items, landmarks)
        write_counterfactuals(tmp / COUNTERFACTUALS, items, [r.counterfactuals for r in rendered])
        write_contact_sheets(tmp / "contact_sheets", name, items, landmarks, pixels, tmp,
                             [r.counterfactuals for r in rendered])
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
