"""Lay rendered items out in each dataset's native on-disk format (DESIGN.md section 4).

Image files are written by the render workers; these functions write the label
files, lists and CSVs around them, plus `groundtruth.csv` (true AU intensities
and 68 landmarks of every image), which real datasets do not have.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facetransfer.config import SynthConfig
from facetransfer.data import counterfactuals
from facetransfer.data.crops import face_box_from_landmarks
from facetransfer.data.labels import ACTION_UNITS, EMOTIONS, FERPLUS_VOTE_COLUMNS
from facetransfer.data.synth.datasets import DATASET_IDS, Item

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


def _sci(*values: float) -> str:
    # The CK+/UNBC text files use fixed-width scientific notation, e.g. "   4.0000000e+00".
    return "".join(f"{v:15.7e}" for v in values)


def _write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_affectnet(root: Path, items: list[Item], landmarks: list[np.ndarray], cfg: SynthConfig) -> None:
    rng = np.random.default_rng([cfg.seed, DATASET_IDS["affectnet"], 1])
    rows: dict[str, list[list]] = {"training": [], "validation": []}
    for item, lm in zip(items, landmarks, strict=True):
        x, y, w, h = face_box_from_landmarks(lm)
        points = ";".join(f"{v:.2f}" for v in lm.reshape(-1))
        m = item.meta
        rows[m["split"]].append([item.rel_path, x, y, w, h, points, m["label"],
                                 f"{m['valence']:.6f}", f"{m['arousal']:.6f}"])
    train = rows["training"]
    emotional = [r for r in train if int(r[6]) < len(EMOTIONS)]
    # Real quirks: some images are listed again with another label, some boxes are negative.
    for k in rng.choice(len(emotional), size=min(cfg.affectnet.conflicting_duplicates, len(emotional)), replace=False):
        row = list(emotional[k])
        row[6] = int(rng.choice([c for c in range(len(EMOTIONS)) if c != int(row[6])]))
        train.append(row)
    for k in rng.choice(len(emotional), size=min(cfg.affectnet.negative_box_rows, len(emotional)), replace=False):
        emotional[k][1:5] = [-1, -1, -1, -1]
    for split, split_rows in rows.items():
        order = rng.permutation(len(split_rows))
        _write_csv(root / "Manually_Annotated_file_lists" / f"{split}.csv", AFFECTNET_HEADER,
                   [split_rows[i] for i in order])


def write_unbc(root: Path, items: list[Item], landmarks: list[np.ndarray], cfg: SynthConfig) -> None:
    for item, lm in zip(items, landmarks, strict=True):
        m = item.meta
        rel = Path(m["subject"]) / m["sequence"]
        stem = Path(item.rel_path).stem
        _write_text(root / "Frame_Labels" / "PSPI" / rel / f"{stem}_facs.txt", [_sci(m["pspi"])])
        _write_text(root / "Frame_Labels" / "FACS" / rel / f"{stem}_facs.txt",
                    [_sci(au, v, 0, 0) for au, v in sorted(m["aus"].items())])
        aam = np.delete(lm, [60, 64], axis=0)  # UNBC's 66-point AAM has no inner mouth corners
        _write_text(root / "AAM_landmarks" / rel / f"{stem}_aam.txt", [_sci(x, y) for x, y in aam])


def write_ckplus(root: Path, items: list[Item], landmarks: list[np.ndarray], cfg: SynthConfig) -> None:
    for item, lm in zip(items, landmarks, strict=True):
        m = item.meta
        rel = Path(m["subject"]) / m["sequence"]
        stem = Path(item.rel_path).stem
        _write_text(root / "Landmarks" / rel / f"{stem}_landmarks.txt", [_sci(x, y) for x, y in lm])
        if not m["peak"]:
            continue
        # CK+ writes intensity 0 when an AU is present but its intensity was not coded.
        facs = [_sci(au, 0 if au in m["not_given"] else v) for au, v in sorted(m["aus"].items())]
        _write_text(root / "FACS" / rel / f"{stem}_facs.txt", facs)
        if m["emotion_code"] is not None:
            _write_text(root / "Emotion" / rel / f"{stem}_emotion.txt", [_sci(m["emotion_code"])])


def write_ferplus(root: Path, items: list[Item], pixels: list[np.ndarray], cfg: SynthConfig) -> None:
    old, new = [], []
    for item, px in zip(items, pixels, strict=True):
        m = item.meta
        old.append([m["fer2013"], " ".join(str(int(v)) for v in px.reshape(-1)), m["usage"]])
        new.append([m["usage"], m["image_name"], *(int(v) for v in m["votes"])])
    _write_csv(root / "fer2013.csv", ["emotion", "pixels", "Usage"], old)
    _write_csv(root / "fer2013new.csv", ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS], new)


def write_groundtruth(root: Path, items: list[Item], landmarks: list[np.ndarray]) -> None:
    """groundtruth.csv: per image the rendered AU intensities, AU12/14 sides and 68 landmarks."""
    header = ["image", "emotion", *(f"au_{au}" for au in ACTION_UNITS), "side_12", "side_14", "landmarks"]
    rows = []
    for k, (item, lm) in enumerate(zip(items, landmarks, strict=True)):
        e = item.scene.expression
        rows.append([item.rel_path or str(k), item.meta.get("emotion") or "",
                     *(f"{e.intensity(au):g}" for au in ACTION_UNITS), e.side(12), e.side(14),
                     ";".join(f"{v:.3f}" for v in lm.reshape(-1))])
    _write_csv(root / "groundtruth.csv", header, rows)


COUNTERFACTUALS = counterfactuals.FOLDER  # layout: facetransfer/data/counterfactuals.py
COUNTERFACTUAL_IMAGES = "images"  # counterfactuals/images/AU<k>/<image>: encoded as the original


def write_counterfactuals(folder: Path, items: list[Item], rendered: list[tuple]) -> None:
    """index.csv and footprints.npy of the items rendered with counterfactuals (nothing when there are none)."""
    rows, footprints = [], []
    for k, (item, found) in enumerate(zip(items, rendered, strict=True)):
        for cf in found:
            rows.append([item.rel_path or str(k), cf.au, len(footprints), cf.path])
            footprints.append(cf.footprint)
    if not rows:
        return
    _write_csv(folder / "index.csv", counterfactuals.COLUMNS, rows)
    np.save(folder / "footprints.npy", np.stack(footprints))


WRITERS = {"affectnet": write_affectnet, "unbc": write_unbc, "ckplus": write_ckplus, "ferplus": write_ferplus}
