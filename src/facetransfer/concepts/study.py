"""The `concepts` stage's core: probe every AU on the reference and each compared model, test the pairs.

Per training seed: the probes read each probed conv block of that seed's models (folds grouped by CK+
subject, shared by every model); the pairs are tested over the CV repeats (the paper's tests).
Across seeds: each seed's mean F1 difference (reference - model) is one replicate, tested as the
forgetting stage tests recall (`stats.seed_difference`), Holm within each model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from facetransfer.concepts.compare import compare_probes
from facetransfer.concepts.features import block_features
from facetransfer.concepts.probes import N_FOLDS, ProbeSettings, probe_f1_many
from facetransfer.config import ConceptsConfig
from facetransfer.fsutil import load_array
from facetransfer.stats import SEED_TEST, add_holm, holm, seed_difference

TESTS = ("plain", "corrected", "five_by_two")


@dataclass(frozen=True)
class ProbeImages:
    """CK+ peak frames as prepared: full images, upper-face variant, and the FACS AU labels."""

    images: np.ndarray  # (N, H, W, 3) uint8
    upper: np.ndarray | None  # (N, H, W, 3) uint8, mouth blanked; None if the dataset has none
    table: pd.DataFrame  # N rows with au_<n> columns; present = not NaN (0 = present, intensity not given)

    @property
    def groups(self) -> np.ndarray | None:
        """(N,) the subject of each frame, so that CV folds keep a subject's sequences together; None if unknown."""
        return self.table["subject"].astype(str).to_numpy() if "subject" in self.table.columns else None

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
    images = load_array(prepared / "images.npy")[rows]
    upper_path = prepared / "upper.npy"
    upper = load_array(upper_path)[rows] if upper_path.is_file() else None
    return ProbeImages(images, upper, table.reset_index(drop=True))


def view(au: int, cfg: ConceptsConfig) -> str:
    return "upper" if au in cfg.upper_face_aus else "full"


def extract_features(models: dict[str, nn.Module], data: ProbeImages, cfg: ConceptsConfig,
                     device: str = "cpu") -> dict[tuple[str, str, int], np.ndarray]:
    """(model name, view, block) -> the block's output features (N, D) for the views the AUs need."""
    views = {view(au, cfg) for au in cfg.aus}
    if "upper" in views and data.upper is None:
        raise FileNotFoundError("upper_face_aus needs prepared/ckplus/upper.npy (prepare.ckplus.upper_face_cut)")
    arrays = {"full": data.images, "upper": data.upper}
    return {(name, v, b): block_features(model, arrays[v], b, cfg.batch_size, device)
            for name, model in models.items() for v in sorted(views) for b in cfg.blocks}


def probe_all(features: dict[tuple[str, str, int], np.ndarray], data: ProbeImages, cfg: ConceptsConfig,
              workers: int) -> dict[tuple[str, int, int], np.ndarray]:
    """(model name, AU, block) -> probe F1 (repeats, 2), every job in one parallel pool."""
    settings = ProbeSettings(repeats=cfg.repeats, seed=cfg.seed, c=cfg.svm_c,
                             class_weight=None if cfg.class_weight == "none" else cfg.class_weight)
    models = sorted({name for name, _, _ in features})
    scores = {}
    for au in cfg.aus:
        for b in cfg.blocks:
            sets = {name: features[name, view(au, cfg), b] for name in models}
            for name, f1 in probe_f1_many(sets, data.labels(au), settings, workers, data.groups).items():
                scores[name, au, b] = f1
    return scores


def test_pairs(scores: dict[tuple[str, int, int], np.ndarray], data: ProbeImages, cfg: ConceptsConfig,
               reference: str, compared: list[str], nominated: dict[int, list[str]] | None = None) -> list[dict]:
    """One row per (block, AU, compared model): the three tests, Holm-corrected within each compared model
    (over its AUs and blocks: the study's family rule). n_train / n_test of the corrected test are the
    halves of the frames (subject-grouped folds are halves up to one subject's 1-4 sequences).

    nominated: AU -> the (model/class) rankings that proposed it, recorded as `nominated_by`.
    """
    n = len(data.table)
    n_test = n // N_FOLDS
    n_train = n - n_test
    rows = []
    for b in cfg.blocks:
        for au in cfg.aus:
            positives = int(data.labels(au).sum())
            for other in compared:
                result = compare_probes(scores[reference, au, b], scores[other, au, b], n_train, n_test,
                                        cfg.confidence)
                rows.append({"au": au, "block": b, "model_a": reference, "model_b": other, "view": view(au, cfg),
                             "n_images": n, "n_present": positives, "grouped_by_subject": data.groups is not None,
                             "nominated_by": [c for c in (nominated or {}).get(au, []) if c.startswith(f"{other}/")],
                             **result})
    # Holm per compared model (the family answers "what did FreezeBk forget?"), and over every
    # row (`pvalue_holm_all`, stricter: it grows with the number of models and AUs tested).
    for test in TESTS:
        for row, p in zip(rows, holm([row[test]["pvalue"] for row in rows]), strict=True):
            row[test]["pvalue_holm_all"] = float(p)
        for other in compared:
            family = [row for row in rows if row["model_b"] == other]
            for row, p in zip(family, holm([row[test]["pvalue"] for row in family]), strict=True):
                row[test]["pvalue_holm"] = float(p)
    for row in rows:
        row["forgotten"] = bool(row["mean_diff"] > 0 and row["corrected"]["pvalue_holm"] < cfg.alpha)
    return rows


def across_seeds(rows_by_seed: dict[int, list[dict]], confidence: float, alpha: float) -> list[dict]:
    """One row per (block, AU, compared model): each seed's mean probe F1 difference (reference - model) as one
    replicate; mean, Student-t interval and paired t-test over seeds, Holm within each compared model."""
    seeds = sorted(rows_by_seed)
    keyed = {s: {(r["block"], r["au"], r["model_b"]): r for r in rows_by_seed[s]} for s in seeds}
    out = []
    for key, first in keyed[seeds[0]].items():
        cell = seed_difference([keyed[s][key]["mean_f1_a"] for s in seeds], [keyed[s][key]["mean_f1_b"] for s in seeds],
                               confidence)
        out.append({"block": key[0], "au": key[1], "model_a": first["model_a"], "model_b": key[2],
                    "view": first["view"], **cell, "method": SEED_TEST})
    for model in dict.fromkeys(r["model_b"] for r in out):
        add_holm([r for r in out if r["model_b"] == model])
    for r in out:
        r["forgotten"] = bool(r["pvalue_holm"] is not None and r["mean_diff"] > 0 and r["pvalue_holm"] < alpha)
    return out


def rows_table(rows: list[dict]) -> pd.DataFrame:
    """The test rows flattened for CSV / Markdown / MLflow (one column per number)."""
    flat = []
    for row in rows:
        out = {k: row[k] for k in ("seed", "block", "au", "view", "model_a", "model_b", "n_present", "mean_f1_a",
                                   "mean_f1_b", "mean_diff", "forgotten") if k in row}
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
        where = out.setdefault(f"AU{row['au']}", {})
        if "block" in row:  # a level per probed block: block{b} -> model -> numbers
            where = where.setdefault(f"block{row['block']}", {})
        where[row["model_b"]] = {
            "mean_f1_reference": row["mean_f1_a"], "mean_f1": row["mean_f1_b"],
            "plain_p": row["plain"]["pvalue"], "corrected_p": row["corrected"]["pvalue"],
            "corrected_p_holm": row["corrected"]["pvalue_holm"],
            "corrected_p_holm_all": row["corrected"]["pvalue_holm_all"], "five_by_two_p": row["five_by_two"]["pvalue"],
            "forgotten": row["forgotten"]}
    return out


def across_summary(across: list[dict]) -> dict:
    """AU<n> -> block<b> -> model_b -> the across-seed numbers: the dict shape `dvc metrics show` can display."""
    out: dict[str, dict] = {}
    for row in across:
        out.setdefault(f"AU{row['au']}", {}).setdefault(f"block{row['block']}", {})[row["model_b"]] = {
            k: row[k] for k in ("mean_diff", "ci_low", "ci_high", "pvalue", "pvalue_holm", "n_seeds", "forgotten")}
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
