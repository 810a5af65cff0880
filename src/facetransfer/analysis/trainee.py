"""Did masking speed learning? The RBDM trainee variants compared with the plain baseline
(Schiller et al. 2020, Fig. 10).

Inputs are what the `train-trainee` stages write: one curve summary per variant and
training seed (`masking.trainee.curve_summary`) and the validation predictions. The
paper compared single runs; here every variant is trained with each of `study.seeds`
and the verdict tests across them (`across_seeds`: the seed is the unit of
replication, as in the forgetting analysis). McNemar on one seed's validation images
stays as detail: it says whether two final models differ, not whether the training
recipe does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from facetransfer.stats import add_holm, mcnemar_test
from facetransfer.stats.seeds import seed_difference

BASELINE = "plain"
TESTED = ("final_f1", "auc")  # each masked variant minus plain, paired by seed (same init and batch order)


def summary_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """One row per variant: final / best F1, steps to the target (NaN: never), AUC, differences from the baseline.

    `speedup` is baseline steps / variant steps to reach the target F1 (> 1: the variant got
    there sooner; inf when only the variant got there; NaN when the variant never did).
    """
    if BASELINE not in summaries:
        raise ValueError(f"the comparison needs the {BASELINE!r} baseline variant; got {sorted(summaries)}")
    base = summaries[BASELINE]
    rows = []
    for name, s in summaries.items():
        rows.append({"variant": name, "final_f1": s["final_f1"], "best_f1": s["best_f1"], "auc": s["auc"],
                     "steps_to_target": _steps(s["steps_to_target"]), "auc_gain": s["auc"] - base["auc"],
                     "final_f1_gain": s["final_f1"] - base["final_f1"],
                     "speedup": _speedup(base["steps_to_target"], s["steps_to_target"])})
    return pd.DataFrame(rows).set_index("variant")


def _steps(steps: int | None) -> float:
    return float("nan") if steps is None else float(steps)


def _speedup(base_steps: int | None, steps: int | None) -> float:
    if steps is None:
        return float("nan")
    if base_steps is None:
        return float("inf")
    return base_steps / steps


def compare_predictions(actual: np.ndarray, baseline: np.ndarray, other: np.ndarray) -> dict:
    """McNemar on the validation images between the baseline's and another variant's final predictions."""
    test = mcnemar_test(baseline == actual, other == actual)
    return {"statistic": float(test.statistic), "pvalue": float(test.pvalue), "method": test.method,
            "accuracy_baseline": float(np.mean(baseline == actual)), "accuracy_other": float(np.mean(other == actual))}


def _spread(values: list[float]) -> dict:
    """mean and SD (ddof 1; None for one value) of the finite values, and how many there were."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    return {"mean": float(x.mean()) if x.size else None, "sd": float(x.std(ddof=1)) if x.size > 1 else None,
            "n": int(x.size)}


def across_seeds(by_seed: dict[int, pd.DataFrame], confidence: float = 0.95) -> dict[str, dict]:
    """Per variant over the seeds' `summary_table`s: mean and SD of final F1, AUC and steps to the target (over
    the seeds that reached it, `n` says how many), and for each masked variant its paired difference from plain
    (variant - plain, seed by seed: both start from the same weights and see the same batch order) in final F1
    and AUC with a Student-t interval and the paired t-test over seeds (`stats.seeds.seed_difference`).

    Holm follows the study's family rule: one variant's comparison with its reference (plain) over the cells
    tested for it (final F1 and AUC).
    """
    seeds = sorted(by_seed)
    variants = list(by_seed[seeds[0]].index)
    out = {}
    for name in variants:
        column = {key: [float(by_seed[s].loc[name, key]) for s in seeds]
                  for key in ("final_f1", "auc", "steps_to_target")}
        row = {key: _spread(values) for key, values in column.items()} | {"n_seeds": len(seeds), "seeds": seeds}
        if name != BASELINE:
            plain = {key: [float(by_seed[s].loc[BASELINE, key]) for s in seeds] for key in TESTED}
            cells = {key: seed_difference(column[key], plain[key], confidence) for key in TESTED}
            add_holm(list(cells.values()))
            row["vs_plain"] = cells
        out[name] = row
    return out


def verdict_across_seeds(table: dict[str, dict], alpha: float = 0.05) -> dict:
    """The paper's claim over seeds: the masked variant with the largest mean AUC (chosen after looking, so its
    test is one of the family reported for every variant, not a pre-registered one) and whether its AUC gain over
    plain holds across seeds (mean gain > 0 and Holm p < alpha); `None` when one seed cannot test it."""
    masked = {name: row for name, row in table.items() if name != BASELINE}
    if not masked:
        raise ValueError("no masked variant to compare with the baseline")
    best = max(masked, key=lambda name: masked[name]["auc"]["mean"])  # ties: the earlier variant
    gain = masked[best]["vs_plain"]["auc"]
    holds = None if gain["pvalue_holm"] is None else bool(gain["mean_diff"] > 0 and gain["pvalue_holm"] < alpha)
    return {"best_masked": best, "auc_baseline": table[BASELINE]["auc"]["mean"],
            "auc_best": masked[best]["auc"]["mean"],
            "auc_gain": gain["mean_diff"], "auc_gain_ci": [gain["ci_low"], gain["ci_high"]],
            "auc_gain_pvalue_holm": gain["pvalue_holm"], "masking_sped_learning": holds, "alpha": alpha}
