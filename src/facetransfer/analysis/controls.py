"""Planted-forgetting controls: the study's analyses on models whose answer we know.

Positive control `suppress_au<N>`: the emotion model fine-tuned on the AffectNet-like
training set re-rendered without AU N, so it has a known reason to stop using AU N.
Negative control `negative`: the same fine-tuning on the unmodified set with another
seed, so nothing was planted (more seeds: `negative_seed<s>`, summed up as
`all_negatives`). Every model (the source too) has its head retrained on
unmodified data, as the study's models do; then the study's analyses compare the
source ("reference") with each control and `verdicts` says which checks passed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from facetransfer.analysis.control_names import (  # noqa: F401  (re-exported: callers use controls.<name>)
    NEGATIVE,
    REFERENCE,
    Control,
    control_name,
    negative_name,
    planned,
    positive_seed_name,
    replicates,
)
from facetransfer.analysis.forgetting import class_recall, mcnemar_per_class
from facetransfer.analysis.saliency import TestImages
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import ACTION_UNITS, EMOTIONS
from facetransfer.explain import region_mass
from facetransfer.stats import add_holm, holm, mean_ci, seed_groups_difference


def check_rerendered(control: pd.DataFrame, original: pd.DataFrame, au: int, where: str) -> None:
    """The control set must be the original with only AU `au` changed: same rows, labels and other AUs.

    Raises DatasetFormatError naming `where` (the control's index.csv) and what differs.
    """
    changed = {f"gt_au_{au}", f"gt_side_{au}"}
    if list(control.columns) != list(original.columns) or len(control) != len(original):
        raise DatasetFormatError(where, f"{len(control)} rows / columns {list(control.columns)[:6]}... do not match "
                                        f"the original's {len(original)} rows; render it with the same synth params")
    differ = [c for c in original.columns if c not in changed and not control[c].equals(original[c])]
    if differ:
        raise DatasetFormatError(where, f"differs from the original in {differ[:4]}, not only in AU{au}; "
                                        f"render it with the same synth params and --suppress-aus {au}")
    if (control[f"gt_au_{au}"] > 0).any():
        raise DatasetFormatError(where, f"{int((control[f'gt_au_{au}'] > 0).sum())} images still show AU{au}")


def recall_rows(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows model name, columns the emotions and macro: test recall after head retraining."""
    rows = {}
    for name, frame in predictions.items():
        per_class = class_recall(frame, len(EMOTIONS))
        rows[name] = per_class + [float(np.mean(per_class))]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*EMOTIONS, "macro"])


def mcnemar_rows(predictions: dict[str, pd.DataFrame], controls: list[str], confidence: float) -> dict[str, dict]:
    """control -> class -> McNemar against the reference; Holm over the classes of each control."""
    out = {}
    for name in controls:
        out[name] = mcnemar_per_class(predictions[REFERENCE], predictions[name], EMOTIONS, confidence)
        add_holm(list(out[name].values()))
    return out


def recall_across_seeds(recall: pd.DataFrame, models: list[str], negatives: list[str], confidence: float) -> dict:
    """class -> the negatives' mean recall minus `models`' (fine-tunings of one control over seeds), its interval
    and the two-sample t-test over seeds (`seed_groups_difference`); Holm over the classes (the family rule: one
    model's comparison with its reference, here the negatives). recall: `recall_rows`."""
    out = {cls: seed_groups_difference(recall.loc[negatives, cls].tolist(), recall.loc[models, cls].tolist(),
                                       confidence) for cls in EMOTIONS}
    add_holm(list(out.values()))
    return out


def au_shares(maps: dict[str, np.ndarray], data: TestImages, au: int) -> dict[str, np.ndarray]:
    """model -> (n,) share of positive LRP relevance inside AU `au`'s footprint (or landmark region), on
    every test image that shows the AU (no selection by correctness, so no selection bias)."""
    j = ACTION_UNITS.index(au)
    idx = np.flatnonzero(data.present[:, j])
    regions = data.regions(idx)  # (n, A, H, W)
    return {name: region_mass(m[idx], regions)[:, j].astype(np.float64) for name, m in maps.items()}


def planted_mass(maps_reference: np.ndarray, maps_control: np.ndarray, data: TestImages, au: int) -> dict:
    """Manipulation check from ground truth: did the control stop looking at the AU?

    Share of positive LRP relevance inside the AU's footprint (`au_shares`), reference vs
    control; Wilcoxon signed-rank of the paired shares. maps_*: (N, H, W) for the true class.
    """
    shares = au_shares({"a": maps_reference, "b": maps_control}, data, au)
    a, b = shares["a"], shares["b"]
    d = a - b
    pvalue = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {"n_images": int(d.size), "mass_reference": float(a.mean()) if d.size else float("nan"),
            "mass_control": float(b.mean()) if d.size else float("nan"),
            "mean_diff": float(d.mean()) if d.size else float("nan"), "pvalue": pvalue}


def plant_check(maps: dict[str, np.ndarray], data: TestImages, control: str, au: int, negatives: list[str],
                confidence: float = 0.95) -> dict:
    """`planted_mass` of the control, and the same shift for every negative control on the same images.

    Any retraining moves relevance somewhat, so "the shift is not zero" says little (the negatives
    shift unplanted AUs too). The plant took when the control's shift is larger than the
    negatives': `excess_over_negatives` is the control's shift minus the negatives' mean shift,
    image by image (a difference-in-differences), with a Student-t interval over the images
    (`excess_ci`) and a Wilcoxon signed-rank test (`pvalue_vs_negatives`).
    """
    out = planted_mass(maps[REFERENCE], maps[control], data, au)
    if not negatives:
        return out
    shares = au_shares({name: maps[name] for name in [REFERENCE, control, *negatives]}, data, au)
    shift = {name: shares[REFERENCE] - shares[name] for name in [control, *negatives]}  # (n,) each
    excess = shift[control] - np.mean([shift[name] for name in negatives], axis=0)  # (n,) the difference-in-differences
    pvalue = float(stats.wilcoxon(excess).pvalue) if np.any(excess != 0) else 1.0
    low, high = mean_ci(excess, confidence)[1:] if excess.size > 1 and np.ptp(excess) > 0 else (excess.mean(),) * 2
    return out | {"negative_shifts": {name: float(shift[name].mean()) for name in negatives},
                  "excess_over_negatives": float(excess.mean()), "excess_ci": [float(low), float(high)],
                  "pvalue_vs_negatives": pvalue}


def plant_took(planted: dict, alpha: float) -> bool:
    """The control looks less at the AU than the reference; with negatives, by more than the negatives do on
    the same images (the difference-in-differences is positive and its Wilcoxon p below alpha). Without
    negatives, by more than nothing: any retraining passes that, so it is a weak check."""
    if "negative_shifts" in planted:
        return bool(planted["excess_over_negatives"] > 0 and planted["pvalue_vs_negatives"] < alpha)
    return bool(planted["mean_diff"] > 0 and planted["pvalue"] < alpha)


def footprint_shifts(maps: dict[str, np.ndarray], data: TestImages, au: int, models: list[str]) -> dict[str, float]:
    """model -> how far its relevance moved off AU `au`: the reference's footprint share minus the model's
    (`au_shares`), averaged over the test images that show the AU. One number per trained model, so that
    models trained with different seeds can be compared over seeds (`plant_across_seeds`)."""
    shares = au_shares({name: maps[name] for name in [REFERENCE, *models]}, data, au)
    return {name: float(np.mean(shares[REFERENCE] - shares[name])) if shares[name].size else float("nan")
            for name in models}


def plant_across_seeds(shifts: dict[str, float], models: list[str], negatives: list[str], confidence: float) -> dict:
    """The control's fine-tunings' mean footprint shift minus the negatives', its interval and the two-sample
    t-test over seeds (`seed_groups_difference`). `plant_check` tests over images, so a negative's own seed
    effect counts as signal there (2 of 5 negatives passed it for AU14); here the seed is the unit."""
    return seed_groups_difference([shifts[m] for m in models], [shifts[n] for n in negatives], confidence)


def plant_row(control: Control, cell: dict, alpha: float) -> dict:
    """`plant_took_across_seeds`: the control's fine-tunings moved relevance off the AU more than the negatives
    did (`plant_across_seeds`), p below alpha (one test per control: its own family)."""
    passed = cell["pvalue"] is not None and cell["mean_diff"] > 0 and cell["pvalue"] < alpha
    return _row(control, "plant_took_across_seeds", passed, shift_control=cell["values_a"],
                shift_negatives=cell["values_b"], excess=cell["mean_diff"], ci=[cell["ci_low"], cell["ci_high"]],
                pvalue=cell["pvalue"], n_control_seeds=cell["n_a"], n_negative_seeds=cell["n_b"], method=cell["method"])


def necessity_shift(right: dict[str, np.ndarray], right_without: dict[str, np.ndarray], control: str,
                    negatives: list[str]) -> dict:
    """Ground truth of what the control uses: its dependent class's recall drop without the AU against the reference's.

    right / right_without: model -> (n,) booleans over the class's test images showing the AU, on the
    originals / on the counterfactuals with the AU switched off. drop = recall - recall without; the
    per-image dependence (right - right_without, in -1..1) of reference and control are compared
    with a Wilcoxon signed-rank test (zeros dropped, as a sign test on the images where they differ).
    """
    dependence = {name: right[name].astype(float) - right_without[name].astype(float) for name in right}
    fell = dependence[REFERENCE] - dependence[control]
    out = {"n_images": int(fell.size), "drop_reference": float(dependence[REFERENCE].mean()),
           "drop_control": float(dependence[control].mean()), "drop_difference": float(fell.mean()),
           "pvalue": float(stats.wilcoxon(fell).pvalue) if np.any(fell != 0) else 1.0}
    if negatives:
        out["drop_negatives"] = {name: float(dependence[name].mean()) for name in negatives}
    return out


def reverse_contrast_ranking(maps_reference: np.ndarray, maps_model: np.ndarray, data: TestImages,
                             predicted: dict[str, np.ndarray], model: str, cls: int, cap: int,
                             min_images: int) -> list[dict]:
    """The saliency ranking with its selection bias controlled (not in the paper; a candidate fix).

    On contrast images (reference right, model wrong) the wrong model's map for the true
    class tends to sit off the class's AUs whatever the models learned, so the study's
    ranking can flag AUs between two equally good models. Here the right-minus-wrong share
    difference on those images is compared with the same difference on the reverse
    contrast images (model right, reference wrong): Mann-Whitney U (two-sided) per AU,
    Holm over the AUs tested; an AU needs `min_images` forward and 1 reverse image.
    """
    right_ref, right_model = predicted[REFERENCE] == data.labels, predicted[model] == data.labels
    forward = np.flatnonzero((data.labels == cls) & right_ref & ~right_model)[:cap]
    reverse = np.flatnonzero((data.labels == cls) & ~right_ref & right_model)[:cap]
    idx = np.concatenate([forward, reverse])
    regions = data.regions(idx)  # (n, A, H, W)
    d = region_mass(maps_reference[idx], regions) - region_mass(maps_model[idx], regions)  # (n, A)
    d[len(forward):] *= -1  # right minus wrong on both sides
    rows = []
    for j, au in enumerate(ACTION_UNITS):
        shown = data.present[idx, j]
        f, r = d[: len(forward)][shown[: len(forward)], j], d[len(forward):][shown[len(forward):], j]
        row = {"au": int(au), "n_forward": int(f.size), "n_reverse": int(r.size), "effect": float("nan"), "pvalue": 1.0}
        if f.size >= min_images and r.size >= 1:
            row.update(effect=float(f.mean() - r.mean()),
                       pvalue=float(stats.mannwhitneyu(f, r, alternative="two-sided").pvalue))
        rows.append(row)
    add_holm([r for r in rows if not np.isnan(r["effect"])])
    for row in rows:
        row.setdefault("pvalue_holm", 1.0)  # untested AUs rank last with p 1
    return sorted(rows, key=lambda r: (np.isnan(r["effect"]), -np.nan_to_num(r["effect"]), r["au"]))


def _row(control: Control, check: str, passed: bool, **numbers) -> dict:
    return {"control": control.name, "au": control.au, "check": check, "passed": bool(passed), **numbers}


def recall_row(control: Control, across: dict, alpha: float) -> dict:
    """`recall_dropped_across_seeds`: the dependent class's recall is lower in the control's fine-tunings over
    seeds than in the negatives' (`recall_across_seeds`), Holm p below alpha."""
    cell = across[control.dependent]
    passed = cell["pvalue_holm"] is not None and cell["mean_diff"] > 0 and cell["pvalue_holm"] < alpha
    return _row(control, "recall_dropped_across_seeds", passed, cls=control.dependent, recall_control=cell["values_b"],
                recall_negatives=cell["values_a"], recall_difference=cell["mean_diff"],
                ci=[cell["ci_low"], cell["ci_high"]], pvalue=cell["pvalue"], pvalue_holm=cell["pvalue_holm"],
                n_control_seeds=cell["n_b"], n_negative_seeds=cell["n_a"], method=cell["method"])


def positive_verdicts(control: Control, mcnemar: dict, recall: pd.DataFrame, ranking: dict, reverse: dict,
                      probe: dict, planted: dict, alpha: float, necessity: dict | None = None,
                      across: dict | None = None, planted_seeds: dict | None = None) -> list[dict]:
    """The checks of a positive control; `planted` (and `necessity`) say whether there was anything to find.

    ranking: class -> the study's AU ranking entry; reverse: class -> `reverse_contrast_ranking` rows;
    necessity: `necessity_shift` of the dependent class and the planted AU (synthetic data only);
    across: `recall_across_seeds` of the control's fine-tunings against the negatives (None: not run);
    planted_seeds: `plant_across_seeds` of the same fine-tunings (None: not run).
    """
    cls, au = control.dependent, control.au
    cell = mcnemar[cls]
    entry = ranking[cls]["ranking"]
    order = [r["au"] for r in entry]
    mine = entry[order.index(au)]
    controlled = reverse[cls]
    order_c = [r["au"] for r in controlled]
    mine_c = controlled[order_c.index(au)]
    return [
        _row(control, "plant_took", plant_took(planted, alpha), **planted),
    ] + ([] if planted_seeds is None else [plant_row(control, planted_seeds, alpha)]) + [
        _row(control, "recall_dropped", cell["recall_difference"] > 0 and cell["pvalue_holm"] < alpha, cls=cls,
             recall_reference=float(recall.loc[REFERENCE, cls]), recall_control=float(recall.loc[control.name, cls]),
             recall_difference=cell["recall_difference"], ci=[cell["ci_low"], cell["ci_high"]],
             pvalue=cell["pvalue"], pvalue_holm=cell["pvalue_holm"], method=cell["method"]),
    ] + ([] if across is None else [recall_row(control, across, alpha)]) + [
        _row(control, "saliency_ranked_first", order[0] == au and mine["mean_diff"] > 0, cls=cls,
             rank=order.index(au) + 1, top_au=order[0], n_contrast_images=ranking[cls]["n_images"],
             n_images=mine["n_images"], mean_diff=mine["mean_diff"], pvalue_holm=mine["pvalue_holm"],
             significant=bool(mine["mean_diff"] > 0 and mine["pvalue_holm"] < alpha)),
        _row(control, "reverse_contrast_ranked_first", order_c[0] == au and mine_c["effect"] > 0, cls=cls,
             rank=order_c.index(au) + 1, top_au=order_c[0], n_forward=mine_c["n_forward"],
             n_reverse=mine_c["n_reverse"], effect=mine_c["effect"], pvalue_holm=mine_c["pvalue_holm"],
             significant=bool(mine_c["effect"] > 0 and mine_c["pvalue_holm"] < alpha)),
        _row(control, "concept_probe_lost", probe["forgotten"], f1_reference=probe["mean_f1_a"],
             f1_control=probe["mean_f1_b"], plain_p=probe["plain"]["pvalue"],
             corrected_p=probe["corrected"]["pvalue"], corrected_p_holm=probe["corrected"]["pvalue_holm"],
             five_by_two_p=probe["five_by_two"]["pvalue"]),
    ] + ([] if necessity is None else [
        _row(control, "necessity_fell", necessity["drop_difference"] > 0 and necessity["pvalue"] < alpha, cls=cls,
             **necessity)])


def with_false_alarms(rows: list[dict], on_negatives: dict[str, list[dict]], max_rate: float = 0.2) -> list[dict]:
    """Give each positive-control row the share of negatives on which the same check passed (fired):
    `false_alarm_rate`, `n_negatives`, `false_alarms` (the negatives that fired) and `calibrated` (the rate is
    at most `max_rate`). Rate and calibrated are None without negatives."""
    for i, row in enumerate(rows):
        fired = [n for n, neg_rows in on_negatives.items() if neg_rows[i]["passed"]]
        assert all(neg_rows[i]["check"] == row["check"] for neg_rows in on_negatives.values())
        row["n_negatives"] = len(on_negatives)
        row["false_alarm_rate"] = len(fired) / len(on_negatives) if on_negatives else None
        row["false_alarms"] = fired
        row["calibrated"] = None if row["false_alarm_rate"] is None else bool(row["false_alarm_rate"] <= max_rate)
    return rows


def ranking_flags(per_class: dict[str, list[dict]], effect: str, alpha: float) -> dict:
    """AUs a ranking flags: the reference used the region more (`effect` > 0) and the Holm p is below alpha.

    per_class: class -> ranking rows (au, `effect`, pvalue, pvalue_holm). Two corrections: the
    ranking's own (Holm over the AUs of each class, as the study reports it) and Holm over every
    (class, AU) tested for this model pair, the family "did anything change anywhere" asks about.
    """
    tested = [(cls, r) for cls, rows in per_class.items() for r in rows if not np.isnan(r[effect])]
    family = holm([r["pvalue"] for _, r in tested])

    def flag(cls: str, r: dict, p: float) -> dict:
        return {"cls": cls, "au": r["au"], effect: r[effect], "pvalue_holm": p}

    return {"flagged": [flag(cls, r, float(p)) for (cls, r), p in zip(tested, family, strict=True)
                        if r[effect] > 0 and p < alpha],
            "flagged_per_class": [flag(cls, r, r["pvalue_holm"]) for cls, r in tested
                                  if r[effect] > 0 and r["pvalue_holm"] < alpha],
            "tests": len(tested)}


def negative_verdicts(control: Control, mcnemar: dict, ranking: dict, reverse: dict, probes: list[dict],
                      alpha: float) -> list[dict]:
    """A negative control passes a check when the analysis flags nothing after Holm over all its tests.

    McNemar (8 classes) and probes (the AUs) are corrected over the control's family already; the
    rankings also report what their per-class correction alone would flag (`flagged_per_class`).
    """
    recall_flags = [{"cls": cls, "recall_difference": c["recall_difference"], "pvalue_holm": c["pvalue_holm"]}
                    for cls, c in mcnemar.items() if c["recall_difference"] > 0 and c["pvalue_holm"] < alpha]
    probe_flags = [{"au": p["au"], "mean_diff": p["mean_diff"], "corrected_p_holm": p["corrected"]["pvalue_holm"]}
                   for p in probes if p["forgotten"]]
    saliency = ranking_flags({cls: entry["ranking"] for cls, entry in ranking.items()}, "mean_diff", alpha)
    controlled = ranking_flags(reverse, "effect", alpha)
    return [
        _row(control, "recall_flags_nothing", not recall_flags, flagged=recall_flags, tests=len(mcnemar),
             min_pvalue_holm=min(c["pvalue_holm"] for c in mcnemar.values())),
        _row(control, "saliency_flags_nothing", not saliency["flagged"], **saliency),
        _row(control, "reverse_contrast_flags_nothing", not controlled["flagged"], **controlled),
        _row(control, "concept_probes_flag_nothing", not probe_flags, flagged=probe_flags, tests=len(probes)),
    ]


def with_ground_truth(row: dict, maps_reference: np.ndarray, maps_model: np.ndarray, data: TestImages) -> dict:
    """Add to each AU a ranking flagged the ground truth's view: did the model look less at that AU's
    region on every test image showing it (`planted_mass`)? A confirmed flag is a real change of where
    the model looks (nothing was planted, but fine-tuning still moved it), not a statistical false alarm."""
    for flag in row.get("flagged", []):
        if "cls" not in flag or "au" not in flag:  # recall flags name a class, probe flags an AU
            continue
        truth = planted_mass(maps_reference, maps_model, data, flag["au"])
        flag["all_images_shift"] = truth["mean_diff"]
        flag["all_images_pvalue"] = truth["pvalue"]
    return row


NEGATIVE_CHECKS = ("recall_flags_nothing", "saliency_flags_nothing", "reverse_contrast_flags_nothing",
                   "concept_probes_flag_nothing")
ALL_NEGATIVES = Control("all_negatives")


def across_negatives(rows: list[dict], negatives: list[str], alpha: float) -> list[dict]:
    """One row per negative check over the negative controls `negatives`: how many runs flagged anything,
    and how many of the ranking flags the ground truth confirms (`with_ground_truth`: the model looks
    less at that AU's region on every image showing it, Wilcoxon p < alpha). An unconfirmed flag is a
    false alarm; a confirmed one is a real change that nobody planted."""
    out = []
    for check in NEGATIVE_CHECKS:
        mine = [r for r in rows if r["control"] in negatives and r["check"] == check]
        flags = [{"run": r["control"], **f} for r in mine for f in r.get("flagged", [])]
        judged = [f for f in flags if "all_images_pvalue" in f]
        confirmed = [f for f in judged if f["all_images_shift"] > 0 and f["all_images_pvalue"] < alpha]
        out.append(_row(ALL_NEGATIVES, check, all(r["passed"] for r in mine), runs=len(mine),
                        runs_flagging=sum(not r["passed"] for r in mine),
                        false_alarm_rate=sum(not r["passed"] for r in mine) / len(mine) if mine else None,
                        flags=len(flags), flags_judged=len(judged),
                        flags_confirmed_by_ground_truth=len(confirmed), flagged=flags))
    return out


def verdict_table(rows: list[dict]) -> pd.DataFrame:
    """One line per verdict row for CSV / Markdown: control, check, pass/fail and the key numbers as text."""
    def flag(f: dict) -> str:
        where = "/".join(([f["run"]] if "run" in f else []) + ([f["cls"]] if "cls" in f else [])
                         + ([f"AU{f['au']}"] if "au" in f else []))
        text = f"{where} (p {min(v for k, v in f.items() if k.startswith(('pvalue', 'corrected'))):.2g}"
        if "all_images_shift" in f:
            text += f"; all images showing it: {f['all_images_shift']:+.3f}, p {f['all_images_pvalue']:.2g}"
        return text + ")"

    def text(value) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return ", ".join(flag(f) for f in value)
        if isinstance(value, list):
            return "[" + ", ".join(text(v) for v in value) + "]"
        return str(value)

    def numbers(row: dict) -> str:
        return "; ".join(f"{key} {text(value)}" for key, value in row.items()
                         if key not in {"control", "au", "check", "passed", "false_alarm_rate", "n_negatives",
                                        "false_alarms", "calibrated"})

    def false_alarms(row: dict) -> str:
        """Positive rows: on how many negatives the same check fired (and whether that is within the calibration
        limit); the negatives' summary rows: how many runs flagged."""
        if row.get("false_alarm_rate") is None:
            return ""
        n = row["n_negatives"] if "n_negatives" in row else row["runs"]
        limit = {True: ", calibrated", False: ", NOT calibrated", None: ""}[row.get("calibrated")]
        return f"{round(row['false_alarm_rate'] * n)}/{n} ({row['false_alarm_rate']:.2f}{limit})"

    return pd.DataFrame([{"control": r["control"], "check": r["check"], "result": "pass" if r["passed"] else "fail",
                          "false alarms on negatives": false_alarms(r), "numbers": numbers(r)} for r in rows])


def summary(rows: list[dict]) -> dict:
    """control -> check -> passed: the dict shape `dvc metrics show` displays."""
    out: dict[str, dict] = {}
    for row in rows:
        out.setdefault(row["control"], {})[row["check"]] = row["passed"]
    return out


@dataclass
class ControlsResult:
    """Everything the `controls` stage found; the CLI writes and logs it."""

    recall: pd.DataFrame  # rows reference + controls, columns emotions + macro
    mcnemar: dict  # control -> class -> McNemar cell
    rankings: dict  # control -> class -> {n_images, ranking}
    contrast: dict  # control -> class -> arrays of the contrast images (index, maps, difference)
    reverse: dict  # control -> class -> reverse_contrast_ranking rows
    planted: dict  # positive control -> manipulation check (`plant_check`)
    necessity: dict  # positive control -> `necessity_shift` (empty without counterfactual images)
    probes: list[dict]  # concept-probe test rows, reference vs each control
    verdicts: list[dict]


def dependence(models: dict, counterfactual, cls: str, au: int, batch_size: int,
               device: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """model -> (n,) right on the test images of `cls` showing AU `au`, and right on them with the AU off."""
    from facetransfer.analysis.necessity import predict_labels

    c = EMOTIONS.index(cls)
    cf = counterfactual.counterfactuals
    mine = cf[(cf["au"] == au) & (counterfactual.labels[cf["index"].to_numpy()] == c)]
    originals = counterfactual.images[mine["index"].to_numpy()]
    without = counterfactual.counterfactual_images[mine["image_row"].to_numpy()]
    right = {name: predict_labels(m, originals, batch_size, device) == c for name, m in models.items()}
    right_without = {name: predict_labels(m, without, batch_size, device) == c for name, m in models.items()}
    return right, right_without


def _others(negatives: list[str], one: str) -> list[str]:
    return [n for n in negatives if n != one]


def evaluate(models: dict, predictions: dict[str, pd.DataFrame], controls: list[Control], test: TestImages,
             probe_data, cfg, device: str, counterfactual=None,
             seed_predictions: dict[str, pd.DataFrame] | None = None,
             seed_models: dict | None = None) -> ControlsResult:
    """The study's analyses, reference vs each control, and the verdicts.

    models / predictions: name -> head-retrained model / test predictions (row, label, predicted),
    REFERENCE included. probe_data: CK+ peak frames (`concepts.study.ProbeImages`); cfg: ControlsConfig.
    counterfactual: the test set's counterfactual images (`necessity.CounterfactualTestSet`; synthetic
    data), for the ground truth of what each control uses; None skips that check.
    seed_predictions / seed_models: test predictions and head-retrained models of the positive controls'
    further fine-tunings (`replicates`, controls.extra_positive_seeds): their recall and their footprint shift
    are tested across seeds (without seed_models, `plant_took_across_seeds` is not run).
    """
    from facetransfer.analysis.saliency import all_maps, compare_pair
    from facetransfer.concepts import study

    names = [c.name for c in controls]
    recall = recall_rows(predictions | (seed_predictions or {}))
    mcnemar = mcnemar_rows(predictions, names, cfg.confidence)
    maps = {name: all_maps(model, test, cfg.batch_size, device) for name, model in models.items()}  # (N, H, W) each
    predicted = {name: frame.set_index("row").loc[test.rows, "predicted"].to_numpy()
                 for name, frame in predictions.items()}
    rankings, contrast = {}, {}
    for name in names:
        rankings[name], contrast[name] = compare_pair(maps[REFERENCE], maps[name], test, predicted, REFERENCE, name,
                                                      cfg.max_images_per_class, cfg.min_images)
    reverse = {name: {cls: reverse_contrast_ranking(maps[REFERENCE], maps[name], test, predicted, name, c,
                                                    cfg.max_images_per_class, cfg.min_images)
                      for c, cls in enumerate(EMOTIONS)} for name in names}
    negatives = [c.name for c in controls if c.au is None]
    positives = [c for c in controls if c.au is not None]
    planted = {c.name: plant_check(maps, test, c.name, c.au, negatives, cfg.confidence) for c in positives}
    # The same checks with each negative in the positive's place (its AU and class; the other negatives as
    # its negatives): how often a check fires when nothing was planted, its false-alarm rate.
    stand_ins = {(c.name, n): Control(n, c.au, c.dependent) for c in positives for n in negatives}
    planted_neg = {(c.name, n): plant_check(maps, test, n, c.au, _others(negatives, n), cfg.confidence)
                   for c in positives for n in negatives}
    # Recall across seeds: each positive's fine-tunings against all negatives; for the false-alarm rate, each
    # negative against the other negatives (one model against four: the pooled-variance test allows it).
    groups = replicates(cfg)
    missing = sorted({n for c in positives for n in groups[c.name]} - set(recall.index))
    if missing:
        raise ValueError(f"no test predictions of {missing} (controls.extra_positive_seeds): "
                         "pass them as seed_predictions")
    across = {c.name: recall_across_seeds(recall, groups[c.name], negatives, cfg.confidence) for c in positives}
    across_neg = {n: recall_across_seeds(recall, [n], _others(negatives, n), cfg.confidence) for n in negatives}
    # The plant over seeds, the same way: each fine-tuning's footprint shift (one number per model).
    planted_seeds, planted_seeds_neg = {}, {}
    if seed_models is not None:
        maps_seeds = maps | {name: all_maps(model, test, cfg.batch_size, device) for name, model in seed_models.items()}
        for c in positives:
            shifts = footprint_shifts(maps_seeds, test, c.au, groups[c.name] + negatives)
            planted_seeds[c.name] = plant_across_seeds(shifts, groups[c.name], negatives, cfg.confidence)
            for n in negatives:
                planted_seeds_neg[(c.name, n)] = plant_across_seeds(shifts, [n], _others(negatives, n), cfg.confidence)
    necessity, necessity_neg = {}, {}
    if counterfactual is not None:
        for c in positives:
            chosen = {name: models[name] for name in [REFERENCE, c.name, *negatives]}
            right, right_without = dependence(chosen, counterfactual, c.dependent, c.au, cfg.batch_size, device)
            necessity[c.name] = necessity_shift(right, right_without, c.name, negatives)
            for n in negatives:
                necessity_neg[(c.name, n)] = necessity_shift(right, right_without, n, _others(negatives, n))
    probe_cfg = cfg.probes()
    features = study.extract_features(models, probe_data, probe_cfg, device)
    scores = study.probe_all(features, probe_data, probe_cfg, probe_cfg.workers)
    probes = study.test_pairs(scores, probe_data, probe_cfg, REFERENCE, names)
    verdicts = []
    for c in controls:
        mine = [p for p in probes if p["model_b"] == c.name]
        if c.au is None:
            rows = negative_verdicts(c, mcnemar[c.name], rankings[c.name], reverse[c.name], mine, cfg.alpha)
            verdicts += [with_ground_truth(row, maps[REFERENCE], maps[c.name], test) for row in rows]
        else:
            probe = next(p for p in mine if p["au"] == c.au)
            rows = positive_verdicts(c, mcnemar[c.name], recall, rankings[c.name], reverse[c.name], probe,
                                     planted[c.name], cfg.alpha, necessity.get(c.name), across[c.name],
                                     planted_seeds.get(c.name))
            on_negatives = {n: positive_verdicts(
                stand_ins[(c.name, n)], mcnemar[n], recall, rankings[n], reverse[n],
                next(p for p in probes if p["model_b"] == n and p["au"] == c.au), planted_neg[(c.name, n)],
                cfg.alpha, necessity_neg.get((c.name, n)), across_neg[n], planted_seeds_neg.get((c.name, n)))
                for n in negatives}
            verdicts += with_false_alarms(rows, on_negatives, cfg.max_false_alarm_rate)
    if len(negatives) > 1:
        verdicts += across_negatives(verdicts, negatives, cfg.alpha)
    return ControlsResult(recall, mcnemar, rankings, contrast, reverse, planted, necessity, probes, verdicts)
