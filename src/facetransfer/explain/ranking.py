"""Automated hypotheses: which AU regions did the reference model use more than the other model?"""

from __future__ import annotations

import numpy as np
from scipy import stats

from facetransfer.stats import holm


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank (scipy, two-sided) of paired differences; no non-zero difference -> (0, 1)."""
    if d.size == 0 or not np.any(d != 0):
        return 0.0, 1.0
    res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def rank_aus(mass_reference: np.ndarray, mass_model: np.ndarray, aus: tuple[int, ...],
             shown: np.ndarray | None = None, min_images: int = 1) -> list[dict]:
    """AUs ranked by how much more of its relevance the reference put in the AU's region.

    mass_reference, mass_model: (N, A) region shares (`scores.region_mass`) of the same N
    images for the two models. shown: optional (N, A) bool, use AU a only on the images
    that show it (regions of different AUs overlap, e.g. AU5/AU7/AU43 around the eyes, so
    an unshown AU would inherit its neighbour's relevance). Per AU: mean shares and mean
    difference (reference - model) over its n images, Wilcoxon signed-rank over the n
    paired differences, Holm over the AUs that have at least `min_images` images (the
    others get n, NaN means and p 1 and rank last). Sorted by mean difference, largest first.
    """
    a = np.asarray(mass_reference, dtype=np.float64)
    b = np.asarray(mass_model, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != len(aus):
        raise ValueError(f"masses must both be (N, {len(aus)}), got {a.shape} and {b.shape}")
    use = np.ones(a.shape, bool) if shown is None else np.asarray(shown, dtype=bool)
    rows = []
    for j, au in enumerate(aus):
        sel = use[:, j]
        d = a[sel, j] - b[sel, j]
        row = {"au": int(au), "n_images": int(sel.sum()), "mass_reference": float("nan"),
               "mass_model": float("nan"), "mean_diff": float("nan"), "statistic": 0.0, "pvalue": 1.0}
        if sel.sum() >= min_images and sel.any():
            statistic, pvalue = _wilcoxon(d)
            row.update(mass_reference=float(a[sel, j].mean()), mass_model=float(b[sel, j].mean()),
                       mean_diff=float(d.mean()), statistic=statistic, pvalue=pvalue)
        rows.append(row)
    tested = [r for r in rows if not np.isnan(r["mean_diff"])]
    for row, p in zip(tested, holm([r["pvalue"] for r in tested]), strict=True):
        row["pvalue_holm"] = float(p)
    for row in rows:
        row.setdefault("pvalue_holm", 1.0)
    return sorted(rows, key=lambda r: (np.isnan(r["mean_diff"]), -np.nan_to_num(r["mean_diff"]), r["au"]))
