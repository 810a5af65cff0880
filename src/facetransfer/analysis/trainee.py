"""Did masking speed learning? The RBDM trainee variants compared with the plain baseline (Schiller et al. 2020, Fig. 10).

Inputs are what the `train-trainee` stages write: one curve summary per variant
(`masking.trainee.curve_summary`) and the validation predictions. The comparison
is of single training runs, as in the paper; McNemar on the validation images
says whether the final models differ beyond chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from facetransfer.stats import mcnemar_test

BASELINE = "plain"


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


def best_masked(table: pd.DataFrame) -> str:
    """The masked variant with the largest area under its F1 curve (ties: the earlier row)."""
    masked = table.drop(index=BASELINE)
    if masked.empty:
        raise ValueError("no masked variant to compare with the baseline")
    return str(masked["auc"].idxmax())


def compare_predictions(actual: np.ndarray, baseline: np.ndarray, other: np.ndarray) -> dict:
    """McNemar on the validation images between the baseline's and another variant's final predictions."""
    test = mcnemar_test(baseline == actual, other == actual)
    return {"statistic": float(test.statistic), "pvalue": float(test.pvalue), "method": test.method,
            "accuracy_baseline": float(np.mean(baseline == actual)), "accuracy_other": float(np.mean(other == actual))}


def verdict(table: pd.DataFrame, best: str, target_f1: float) -> dict:
    """The paper's claim in numbers: does the best masked variant learn faster than the baseline?

    Faster = a larger area under the F1-steps curve; `reached_sooner` compares the steps to `target_f1`.
    """
    base, other = table.loc[BASELINE], table.loc[best]
    base_steps, steps = base["steps_to_target"], other["steps_to_target"]  # NaN: never reached
    sooner = not np.isnan(steps) and (np.isnan(base_steps) or steps < base_steps)
    return {"best_masked": best, "target_f1": target_f1, "auc_baseline": float(base["auc"]), "auc_best": float(other["auc"]),
            "masking_sped_learning": bool(other["auc"] > base["auc"]), "reached_target_sooner": bool(sooner)}
