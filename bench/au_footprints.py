"""Benchmark: how visible is each AU? Pixels that change when one AU is toggled, at the model's 64 px.

Prints, measured in this one run (a table, not pass/fail):
  1. every AU alone at intensity 3 on neutral faces of `--identities` random people (AffectNet-like
     pose, light, blur and noise), toggled off: the number of pixels of the 64 px crop whose grey
     value changes by more than 8 levels (median and quartiles), and each AU's ratio to AU5
     (issue 15 target: one-sided AU14 >= 0.8x AU5);
  2. the benchmark's own test images: contempt rendered without AU14 and surprise without AU5
     (what `synth --suppress-aus 14` / `5` change), same count, and the ratio of the medians;
  3. with `--prepared`, the stored counterfactual footprints of the prepared test / all split
     against the landmark regions: per AU the median footprint and region size (pixels) and the
     share of the footprint inside the region (the table in docs/benchmark.md).

    python bench/au_footprints.py [--identities 48] [--prepared prepared/affectnet prepared/ckplus]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from facetransfer.config import SynthConfig
from facetransfer.data.crops import face_box_from_landmarks
from facetransfer.data.labels import ACTION_UNITS
from facetransfer.data.prepare import Sample, process
from facetransfer.data.synth.datasets import build_affectnet
from facetransfer.data.synth.faces import Expression, sample_identity
from facetransfer.data.synth.render import Scene, render
from facetransfer.data.synth.sampling import noise_seed, wild_nuisance, wild_pose

SIZE = 64
CANVAS = 96  # synth renders native images 1.5x the crop size
THRESHOLD = 8  # grey levels
GREY = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's "L" conversion


def _crop_grey(image: np.ndarray, landmarks: np.ndarray, box: tuple) -> np.ndarray:
    """The image as `prepare` stores it ((64, 64, 3) crop around `box`), in grey levels."""
    crop = process(Sample(None, pixels=image, box=box), SIZE).image.astype(np.float64)
    return crop @ GREY


def changed_pixels(scene: Scene, off: tuple[int, ...]) -> int:
    """Pixels of the 64 px crop whose grey value moves by more than THRESHOLD when the AUs `off` are switched off."""
    image, landmarks = render(scene)
    without, _ = render(Scene(scene.identity, scene.expression.without(off), scene.pose, scene.nuisance, scene.size,
                              scene.grey, scene.face))
    box = face_box_from_landmarks(landmarks)  # the AffectNet list's box comes from the rendered image
    return int((np.abs(_crop_grey(image, landmarks, box) - _crop_grey(without, landmarks, box)) > THRESHOLD).sum())


def isolated(identities: int, intensity: float = 3.0) -> pd.DataFrame:
    """Rows: AU (and side for 12 / 14); columns: median, quartiles of the changed pixels over identities."""
    rng = np.random.default_rng(15)
    cases = [(au, "both") for au in ACTION_UNITS] + [(12, "left"), (14, "left"), (12, "right"), (14, "right")]
    counts: dict[str, list[int]] = {f"AU{au}" + ("" if side == "both" else f" {side}"): [] for au, side in cases}
    for k in range(identities):
        identity = sample_identity(rng)
        pose = wild_pose(rng, CANVAS, 0.55 * CANVAS)
        nuisance = wild_nuisance(rng, noise_seed(15, 0, k))
        for au, side in cases:
            scene = Scene(identity, Expression({au: intensity}, {au: side}), pose, nuisance, CANVAS)
            counts[f"AU{au}" + ("" if side == "both" else f" {side}")].append(changed_pixels(scene, (au,)))
    return _summary(counts)


def _summary(counts: dict[str, list[int]]) -> pd.DataFrame:
    rows = {name: {"median": np.median(v), "q1": np.percentile(v, 25), "q3": np.percentile(v, 75), "n": len(v)}
            for name, v in counts.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    if "AU5" in table.index:
        table["x AU5"] = table["median"] / table.loc["AU5", "median"]
    return table


def dataset_images(limit: int) -> pd.DataFrame:
    """Contempt test images without AU14 and surprise test images without AU5, as the suppressed sets render them."""
    items = [i for i in build_affectnet(SynthConfig()) if i.meta["split"] == "validation"]
    counts: dict[str, list[int]] = {"contempt without AU14": [], "surprise without AU5": []}
    for item in items:
        expression = item.scene.expression
        if item.meta["emotion"] == "contempt" and expression.intensity(14) > 0:
            key, au = "contempt without AU14", 14
        elif item.meta["emotion"] == "surprise" and expression.intensity(5) > 0:
            key, au = "surprise without AU5", 5
        else:
            continue
        if len(counts[key]) < limit:
            counts[key].append(changed_pixels(item.scene, (au,)))
    table = _summary(counts)
    table["x AU5"] = table["median"] / table.loc["surprise without AU5", "median"]
    return table


def stored_footprints(prepared: Path) -> pd.DataFrame:
    """Per AU over the split's images showing it: footprint and landmark-region sizes, and their overlap."""
    from facetransfer.explain import unpack_masks

    split = "all" if (prepared / "all.csv").is_file() else "test"
    table = pd.read_csv(prepared / f"{split}.csv")
    mask_rows = table["mask_row"].to_numpy(np.int64)
    regions = unpack_masks(np.load(prepared / "masks.npy", mmap_mode="r")[mask_rows], SIZE)  # (N, A, H, W)
    footprints = unpack_masks(np.load(prepared / "footprints.npy", mmap_mode="r")[mask_rows], SIZE)
    rows = {}
    for j, au in enumerate(ACTION_UNITS):
        shown = table[f"gt_au_{au}"].to_numpy() > 0
        if not shown.any():
            continue
        fp, region = footprints[shown, j], regions[shown, j]
        size = fp.sum(axis=(1, 2))
        inside = (fp & region).sum(axis=(1, 2))
        rows[f"AU{au}"] = {"images": int(shown.sum()), "footprint px": np.median(size),
                           "region px": np.median(region.sum(axis=(1, 2))),
                           "footprint inside region": float(inside.sum() / max(size.sum(), 1)),
                           "region / footprint": float(region.sum() / max(size.sum(), 1))}
    return pd.DataFrame.from_dict(rows, orient="index")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=48)
    parser.add_argument("--images", type=int, default=60, help="test images per class in part 2")
    parser.add_argument("--prepared", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    print(f"1. one AU at intensity 3, toggled, {args.identities} identities: pixels of the {SIZE} px crop "
          f"changing by > {THRESHOLD} grey levels")
    print(isolated(args.identities).to_markdown(floatfmt=".2f"))
    print(f"\n2. the benchmark's test images, the planted AU switched off (first {args.images} per class)")
    print(dataset_images(args.images).to_markdown(floatfmt=".2f"))
    for folder in args.prepared:
        print(f"\n3. stored counterfactual footprints vs landmark regions: {folder}")
        print(stored_footprints(folder).to_markdown(floatfmt=".3g"))


if __name__ == "__main__":
    main()
