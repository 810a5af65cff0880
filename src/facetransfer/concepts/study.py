"""The `concepts` stage's core: probe every AU on the reference and each compared model, test the pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from facetransfer.concepts.compare import compare_probes
from facetransfer.concepts.features import last_block_features
from facetransfer.concepts.probes import N_FOLDS, ProbeSettings, probe_f1_many
from facetransfer.config import ConceptsConfig
from facetransfer.stats import holm

TESTS = ("plain", "corrected", "five_by_two")


@dataclass(frozen=True)
class ProbeImages:
    """CK+ peak frames as prepared: full images, upper-face variant, and the FACS AU labels."""

    images: np.ndarray  # (N, H, W, 3) uint8
    upper: np.ndarray | None  # (N, H, W, 3) uint8, mouth blanked; None if the dataset has none
    table: pd.DataFrame  # N rows with au_<n> columns; present = not NaN (0 = present, intensity not given)

    def labels(self, au: int) -> np.ndarray:
        column = f"au_{au}"
        if column not in self.table.columns:
            raise ValueError(f"no {column} column in the prepared CK+ table (AU {au} not annotated)")
        return self.table[column].notna().to_numpy()


def load_probe_images(prepared: Path) -> ProbeImages:
    """prepared/ckplus: all.csv rows of images.npy (and upper.npy when prepare wrote it)."""
    table_path = prepared / "all.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: not found (run `facetransfer prepare` on CK+ first)")
    table = pd.read_csv(table_path)
    rows = table["row"].to_numpy(np.int64)
    images = np.load(prepared / "images.npy", mmap_mode="r")[rows]
    upper_path = prepared / "upper.npy"
    upper = np.load(upper_path, mmap_mode="r")[rows] if upper_path.is_file() else None
    return ProbeImages(images, upper, table.reset_index(drop=True))


def view(au: int, cfg: ConceptsConfig) -> str:
    return "upper" if au in cfg.upper_face_aus else "full"


def extract_features(models: dict[str, nn.Module], data: ProbeImages, cfg: ConceptsConfig,
                     device: str = "cpu") -> dict[tuple[str, str], np.ndarray]:
    """(model name, view) -> last-conv-block features (N, D) for the views the AUs need."""
    views = {view(au, cfg) for au in cfg.aus}
    if "upper" in views and data.upper is None:
        raise FileNotFoundError("upper_face_aus needs prepared/ckplus/upper.npy (prepare.ckplus.upper_face_cut)")
    arrays = {"full": data.images, "upper": data.upper}
    return {(name, v): last_block_features(model, arrays[v], cfg.batch_size, device)
            for name, model in models.items() for v in sorted(views)}


def probe_all(features: dict[tuple[str, str], np.ndarray], data: ProbeImages, cfg: ConceptsConfig,
              workers: int) -> dict[tuple[str, int], np.ndarray]:
    """(model name, AU) -> probe F1 (repeats, 2), every job in one parallel pool."""
    settings = ProbeSettings(repeats=cfg.repeats, seed=cfg.seed, c=cfg.svm_c,
                             class_weight=None if cfg.class_weight == "none" else cfg.class_weight)
    models = sorted({name for name, _ in features})
    scores = {}
    for au in cfg.aus:
        sets = {name: features[name, view(au, cfg)] for name in models}
        for name, f1 in probe_f1_many(sets, data.labels(au), settings, workers).items():
            scores[name, au] = f1
    return scores


def test_pairs(scores: dict[tuple[str, int], np.ndarray], data: ProbeImages, cfg: ConceptsConfig,
               reference: str, compared: list[str], nominated: dict[int, list[str]] | None = None) -> list[dict]:
    """One row per (AU, compared model): the three tests, Holm-corrected over the AUs of each compared model.

    nominated: AU -> the (model/class) rankings that proposed it, recorded as `nominated_by`.
    """
    n = len(data.table)
    n_test = n // N_FOLDS  # stratified 2-fold: halves of floor/ceil size
    n_train = n - n_test
    rows = []
    for au in cfg.aus:
        positives = int(data.labels(au).sum())
        for other in compared:
            result = compare_probes(scores[reference, au], scores[other, au], n_train, n_test, cfg.confidence)
            rows.append({"au": au, "model_a": reference, "model_b": other, "view": view(au, cfg),
                         "n_images": n, "n_present": positives,
                         "nominated_by": [c for c in (nominated or {}).get(au, []) if c.startswith(f"{other}/")],
                         **result})
    # Holm per compared model (the family answers "what did FreezeBk forget?"), and over every
    # row (`pvalue_holm_all`, stricter: it grows with the number of models and AUs tested).
    for test in TESTS:
        for row, p in zip(rows, holm([row[test]["pvalue"] for row in rows])):
            row[test]["pvalue_holm_all"] = float(p)
        for other in compared:
            family = [row for row in rows if row["model_b"] == other]
            for row, p in zip(family, holm([row[test]["pvalue"] for row in family])):
                row[test]["pvalue_holm"] = float(p)
    for row in rows:
        row["forgotten"] = bool(row["mean_diff"] > 0 and row["corrected"]["pvalue_holm"] < cfg.alpha)
    return rows


def rows_table(rows: list[dict]) -> pd.DataFrame:
    """The test rows flattened for CSV / Markdown / MLflow (one column per number)."""
    flat = []
    for row in rows:
        out = {k: row[k] for k in ("au", "view", "model_a", "model_b", "n_present", "mean_f1_a", "mean_f1_b",
                                   "mean_diff", "forgotten")}
        out["ci_diff_corrected"] = "[{:.3f}, {:.3f}]".format(*row["ci_diff_corrected"])
        for test in TESTS:
            out[f"{test}_t"] = row[test]["statistic"]
            out[f"{test}_p"] = row[test]["pvalue"]
            out[f"{test}_p_holm"] = row[test]["pvalue_holm"]
            out[f"{test}_p_holm_all"] = row[test]["pvalue_holm_all"]
        flat.append(out)
    return pd.DataFrame(flat)


def summary(rows: list[dict]) -> dict:
    """AU<n> -> model_b -> the headline numbers: the dict shape `dvc metrics show` can display."""
    out: dict[str, dict] = {}
    for row in rows:
        out.setdefault(f"AU{row['au']}", {})[row["model_b"]] = {
            "mean_f1_reference": row["mean_f1_a"], "mean_f1": row["mean_f1_b"],
            "plain_p": row["plain"]["pvalue"], "corrected_p": row["corrected"]["pvalue"],
            "corrected_p_holm": row["corrected"]["pvalue_holm"],
            "corrected_p_holm_all": row["corrected"]["pvalue_holm_all"], "five_by_two_p": row["five_by_two"]["pvalue"],
            "forgotten": row["forgotten"]}
    return out


def ranked_candidates(ranking: dict, compared: list[str], top: int) -> dict[int, list[str]]:
    """AU -> ["freeze0/surprise", ...]: the top `top` AUs per (model pair, class) of saliency/au_ranking.json
    that the reference used significantly more (mean difference > 0, Holm p < the ranking's alpha)."""
    alpha = float(ranking.get("alpha", 0.05))
    nominated: dict[int, list[str]] = {}
    for model in compared:
        for cls, entry in ranking.get("pairs", {}).get(model, {}).items():
            hits = [r for r in entry["ranking"] if r["mean_diff"] > 0 and r["pvalue_holm"] < alpha]
            for row in hits[:top]:
                nominated.setdefault(int(row["au"]), []).append(f"{model}/{cls}")
    return nominated
