"""Reader for the Extended Cohn-Kanade (CK+) archive (DESIGN.md section 4).

One row per sequence: its last image, the peak frame, which is the one FACS
coded, emotion labelled and landmarked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from facetransfer.data._files import (
    DatasetRoot,
    check_missing_images,
    integral,
    make_frame,
    read_aus,
    read_points,
    read_scalar,
    walk_sequences,
)
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import CKPLUS_EMOTIONS

IMAGES_DIR = "cohn-kanade-images"
FACS_DIR = "FACS"
EMOTION_DIR = "Emotion"
LANDMARKS_DIR = "Landmarks"
N_LANDMARKS = 68
SCHEMA = {"subject": "str", "sequence": "str", "path": "str", "frame": "int64",
          "n_frames": "int64", "aus": object, "emotion": "Int64", "landmarks": object}


def read(root: str | os.PathLike[str], *, missing_images: str = "error") -> pd.DataFrame:
    """One row per sequence (its peak frame), sorted by subject, sequence.

    Columns: subject, sequence, path (resolved image path), frame (int),
    n_frames (images in the sequence), aus ({AU: intensity}, 0 = present with
    intensity not given), emotion (CK+ code 0..7, Int64, NA without an emotion
    file), landmarks ((68, 2) float32). Sequence folders without images are
    skipped. `missing_images` is accepted for symmetry with affectnet.read.
    """
    check_missing_images(missing_images)
    dataset = DatasetRoot(root)
    rows = []
    for subject, sequence, frames in walk_sequences(
            dataset, IMAGES_DIR, prefix=lambda subject, sequence: f"{subject}_{sequence}_"):
        if frames:
            frame, name = frames[-1]
            image, aus, emotion, landmarks = _read_peak(dataset, Path(subject, sequence), name)
            rows.append((subject, sequence, image, frame, len(frames), aus, emotion, landmarks))
    return make_frame(rows, SCHEMA, skipped_images=0)


def _read_peak(dataset: DatasetRoot, folder: Path, name: str) -> tuple:
    """(path, aus, emotion, landmarks) of the peak image folder/name."""
    stem = Path(name).stem
    image = dataset.resolve(IMAGES_DIR / folder / name)
    aus = read_aus(dataset.require_file(FACS_DIR / folder / f"{stem}_facs.txt",
                                        "FACS file of the peak frame"), widths=(2,))
    emotion_path = dataset.resolve(EMOTION_DIR / folder / f"{stem}_emotion.txt")
    emotion = _read_emotion(emotion_path) if emotion_path.is_file() else None
    landmarks = read_points(dataset.require_file(
        LANDMARKS_DIR / folder / f"{stem}_landmarks.txt", "landmarks file of the peak frame"),
        N_LANDMARKS)
    return str(image), aus, emotion, landmarks


def _read_emotion(path: Path) -> int:
    line, value = read_scalar(path, "the emotion code")
    code = integral(value, path, line, "emotion code")
    if not 0 <= code < len(CKPLUS_EMOTIONS):
        raise DatasetFormatError(
            path, f"emotion code: expected 0..{len(CKPLUS_EMOTIONS) - 1}, got {code}", line)
    return code
