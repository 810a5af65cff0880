"""What each model uses, measured without any training: recall when one AU is switched off.

The synthetic AffectNet-like test list is rendered again once per AU an image shows, with that
AU alone switched off and everything else identical (`data/counterfactuals.py`; prepared as
`counterfactual_images.npy`). For a model, class c and AU k:

  recall          the model's recall of c on the test images
  recall_without  the same, with every image of c that shows AU k replaced by its counterfactual
                  (the other images of c are unchanged)
  drop            recall - recall_without: how much of the class's recall needs AU k
  n_images        images of c that show AU k (the ones replaced); n_class all images of c

A paired test says whether the drop is more than chance: McNemar on (original right,
counterfactual right) over the class's images, exact for few discordant pairs, with the paired
Wald interval of the drop (as the forgetting stage) and Holm over each model's cells.
This is the ground truth the forgetting analyses are judged against: "FreezeB0 forgot AU14"
should mean that contempt's drop without AU14 is smaller for FreezeB0 than for FreezeB5.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from facetransfer.analysis.forgetting import add_holm, paired_difference_ci
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import ACTION_UNITS, EMOTIONS
from facetransfer.fsutil import load_array
from facetransfer.stats import mcnemar_test


@dataclass(frozen=True)
class CounterfactualTestSet:
    """The prepared test split and its counterfactual images."""

    images: np.ndarray  # (N, H, W, 3) uint8, test images in test.csv order
    labels: np.ndarray  # (N,) int, EMOTIONS order
    rows: np.ndarray  # (N,) prepared row ids
    counterfactuals: pd.DataFrame  # one row per (test image, AU): index (into images), au, image_row
    counterfactual_images: np.ndarray  # (K, H, W, 3) uint8


def has_counterfactuals(prepared: Path) -> bool:
    return (prepared / "counterfactuals.csv").is_file()


def load_counterfactual_test_set(prepared: Path) -> CounterfactualTestSet:
    """prepared/<dataset>/test.csv, images.npy, counterfactuals.csv and counterfactual_images.npy."""
    table_path, cf_path = prepared / "test.csv", prepared / "counterfactuals.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: not found (run `facetransfer prepare` first)")
    if not cf_path.is_file() or not (prepared / "counterfactual_images.npy").is_file():
        raise DatasetFormatError(cf_path, "no counterfactual test images: the necessity stage needs the synthetic "
                                 "benchmark (synth writes them, prepare crops them); real data has none")
    table = pd.read_csv(table_path, usecols=["row", "label"])
    cf = pd.read_csv(cf_path)
    position = pd.Series(np.arange(len(table)), index=table["row"].to_numpy())
    cf = cf[cf["row"].isin(position.index)]  # counterfactuals of rows left out of the test list have no original
    if cf.empty:
        raise DatasetFormatError(cf_path, f"none of its rows is a row of {table_path}")
    cf = cf.assign(index=position.loc[cf["row"]].to_numpy()).reset_index(drop=True)
    rows = table["row"].to_numpy(np.int64)
    return CounterfactualTestSet(load_array(prepared / "images.npy")[rows],
                                 table["label"].to_numpy(np.int64), rows, cf,
                                 load_array(prepared / "counterfactual_images.npy"))


def predict_labels(model: nn.Module, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """(N,) predicted class of uint8 images (N, H, W, 3), eval mode, as the training stages predict."""
    from facetransfer.training.data import ImageDataset, Split, build_transform
    from facetransfer.training.loop import predict, resolve_device

    split = Split(images, np.arange(len(images)), np.zeros(len(images), np.int64))
    target = resolve_device(device)
    return predict(model.to(target), ImageDataset(split, build_transform(None)), batch_size, target).argmax(1)


def necessity_cells(predicted: np.ndarray, predicted_without: np.ndarray, data: CounterfactualTestSet,
                    confidence: float) -> dict[str, dict[str, dict]]:
    """class -> AU<k> -> cell (see the module docstring), for every AU some image of the class shows.

    predicted: (N,) on the test images; predicted_without: (K,) on the counterfactual images.
    """
    out: dict[str, dict[str, dict]] = {}
    cf = data.counterfactuals
    for c, cls in enumerate(EMOTIONS):
        members = np.flatnonzero(data.labels == c)
        right = predicted[members] == c  # (n_class,)
        position = {int(i): k for k, i in enumerate(members)}
        cells = {}
        for au in ACTION_UNITS:
            mine = cf[(cf["au"] == au) & cf["index"].isin(members)]
            if mine.empty:
                continue
            changed = np.array([position[int(i)] for i in mine["index"]])
            right_without = right.copy()
            right_without[changed] = predicted_without[mine["image_row"].to_numpy()] == c
            cells[f"AU{au}"] = _cell(right, right_without, changed, confidence)
        out[cls] = cells
    add_holm([cell for cells in out.values() for cell in cells.values()])
    return out


def _cell(right: np.ndarray, right_without: np.ndarray, changed: np.ndarray, confidence: float) -> dict:
    test = mcnemar_test(right, right_without)
    drop, low, high = paired_difference_ci(right, right_without, confidence)
    return {"recall": float(right.mean()), "recall_without": float(right_without.mean()), "drop": float(drop),
            "n_images": int(changed.size), "n_class": int(right.size), "ci_low": float(low), "ci_high": float(high),
            "drop_among_shown": float(right[changed].mean() - right_without[changed].mean()),
            "pvalue": test.pvalue, "method": test.method}


def model_necessity(model: nn.Module, data: CounterfactualTestSet, batch_size: int, device: str,
                    confidence: float) -> dict[str, dict[str, dict]]:
    """One model's class -> AU<k> -> cell table (predicts the test and counterfactual images)."""
    predicted = predict_labels(model, data.images, batch_size, device)
    without = predict_labels(model, data.counterfactual_images, batch_size, device)
    return necessity_cells(predicted, without, data, confidence)


def cell_matrix(cells: dict[str, dict[str, dict]],
                value: Callable[[dict], float] = lambda c: c["drop"]) -> pd.DataFrame:
    """Rows the classes, columns the AUs (AU<k>), values `value(cell)` (NaN where no image shows the AU)."""
    columns = [f"AU{au}" for au in ACTION_UNITS if any(f"AU{au}" in row for row in cells.values())]
    return pd.DataFrame([[value(cells[cls][au]) if au in cells[cls] else np.nan for au in columns] for cls in cells],
                        index=list(cells), columns=columns)


def significant_drop(alpha: float) -> Callable[[dict], float]:
    """cell -> 1.0 when the drop is positive and its Holm-corrected p is below alpha, else 0.0."""
    return lambda c: float(c["drop"] > 0 and c["pvalue_holm"] < alpha)


# The cells the benchmark plants (issue 15): each class's need for its AU, and one the class should not need.
STUDY_CELLS = (("contempt", "AU14"), ("surprise", "AU5"), ("happy", "AU12"), ("happy", "AU14"))


def summary(necessity: dict[str, dict[str, dict[str, dict]]]) -> dict[str, dict[str, float]]:
    """model -> "class.AU<k>" -> drop, for STUDY_CELLS (the shape `dvc metrics show` displays)."""
    return {model: {f"{cls}.{au}": per_class[cls][au]["drop"] for cls, au in STUDY_CELLS
                    if au in per_class.get(cls, {})}
            for model, per_class in necessity.items()}


def long_table(necessity: dict[str, dict[str, dict[str, dict]]]) -> pd.DataFrame:
    """One row per (model, class, AU) with every number of its cell."""
    rows = [{"model": model, "class": cls, "au": au, **cell}
            for model, per_class in necessity.items() for cls, cells in per_class.items() for au, cell in cells.items()]
    return pd.DataFrame(rows)


def warn_if_sparse(data: CounterfactualTestSet, where: Path) -> None:
    """A note on stderr for test images without any counterfactual (no AU shown: nothing to switch off)."""
    missing = len(data.labels) - data.counterfactuals["index"].nunique()
    if missing:
        print(f"{where}: {missing} of {len(data.labels)} test images show no AU and have no counterfactual "
              "(they count, unchanged, in every recall)", file=sys.stderr)
