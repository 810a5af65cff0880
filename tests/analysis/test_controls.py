"""Planted-forgetting controls: data check, manipulation check, McNemar families and the verdict logic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from facetransfer.analysis import controls as core
from facetransfer.analysis import saliency
from facetransfer.config import ConfigError, ControlsConfig, load_section
from facetransfer.data.labels import ACTION_UNITS, EMOTIONS


def _index(n=6, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"row": np.arange(n), "label": rng.integers(0, 8, n),
                          "rel_path": [f"{i}.jpg" for i in range(n)]})
    for au in (12, 14):
        frame[f"gt_au_{au}"] = rng.integers(0, 3, n)
        frame[f"gt_side_{au}"] = "both"
    return frame


def test_rerendered_set_may_differ_only_in_the_suppressed_au():
    original = _index()
    control = original.copy()
    control["gt_au_14"] = 0
    control["gt_side_14"] = "left"
    core.check_rerendered(control, original, 14, "ctl")  # only AU14 changed: fine
    shifted = control.copy()
    shifted.loc[0, "label"] = (shifted.loc[0, "label"] + 1) % 8
    with pytest.raises(ValueError, match=r"ctl: differs from the original in \['label'\]"):
        core.check_rerendered(shifted, original, 14, "ctl")
    with pytest.raises(ValueError, match="still show AU14"):
        core.check_rerendered(original, original, 14, "ctl")
    with pytest.raises(ValueError, match="rows"):
        core.check_rerendered(control.iloc[:3], original, 14, "ctl")


def _test_images(n=12, size=8, au=14) -> saliency.TestImages:
    """n images showing `au` in the left half of an 8x8 image (other AUs absent, no region)."""
    regions = np.zeros((n, len(ACTION_UNITS), size, size), bool)
    regions[:, ACTION_UNITS.index(au), :, : size // 2] = True
    present = np.zeros((n, len(ACTION_UNITS)), bool)
    present[:, ACTION_UNITS.index(au)] = True
    packed = np.packbits(regions, axis=-1)  # (n, A, H, W / 8), as prepare stores masks
    return saliency.TestImages(np.zeros((n, size, size, 3), np.uint8), np.zeros(n, np.int64), np.arange(n), present,
                               packed)


def test_planted_mass_is_the_regions_relevance_share_with_a_wilcoxon_test():
    rng = np.random.default_rng(1)
    data = _test_images()
    reference = rng.uniform(0, 1, (12, 8, 8))
    control = reference.copy()
    control[:, :, :4] *= rng.uniform(0.2, 0.9, (12, 1, 1))  # the control looks less at the AU's half
    out = core.planted_mass(reference, control, data, 14)
    share = lambda m: m[:, :, :4].sum((1, 2)) / m.sum((1, 2))  # noqa: E731  textbook: positive relevance inside / all
    assert out["n_images"] == 12
    assert np.isclose(out["mass_reference"], share(reference).mean())
    assert np.isclose(out["mass_control"], share(control).mean())
    assert out["mean_diff"] > 0
    assert np.isclose(out["pvalue"], stats.wilcoxon(share(reference) - share(control)).pvalue)
    same = core.planted_mass(reference, reference, data, 14)
    assert same["mean_diff"] == 0 and same["pvalue"] == 1.0


def _predictions(labels, predicted) -> pd.DataFrame:
    return pd.DataFrame({"row": np.arange(len(labels)), "label": labels, "predicted": predicted})


def test_mcnemar_rows_are_holm_corrected_within_each_control():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(8), 30)
    right = lambda p: np.where(rng.uniform(size=labels.size) < p, labels, (labels + 1) % 8)  # noqa: E731
    predictions = {core.REFERENCE: _predictions(labels, right(0.9)), "a": _predictions(labels, right(0.5)),
                   "b": _predictions(labels, right(0.88))}
    out = core.mcnemar_rows(predictions, ["a", "b"], 0.95)
    for name in ("a", "b"):
        raw = []
        for c, cls in enumerate(EMOTIONS):
            mask = labels == c
            ref_ok = predictions[core.REFERENCE]["predicted"].to_numpy()[mask] == c
            oth_ok = predictions[name]["predicted"].to_numpy()[mask] == c
            table = [[np.sum(ref_ok & oth_ok), np.sum(ref_ok & ~oth_ok)],
                     [np.sum(~ref_ok & oth_ok), np.sum(~ref_ok & ~oth_ok)]]
            if table[0][1] + table[1][0] < 25:  # the exact binomial test the stage uses for few discordant pairs
                raw.append(mcnemar(table, exact=True).pvalue)
            else:
                raw.append(mcnemar(table, exact=False, correction=True).pvalue)
            assert np.isclose(out[name][cls]["pvalue"], raw[-1])
        expected = multipletests(raw, method="holm")[1]
        assert np.allclose([out[name][cls]["pvalue_holm"] for cls in EMOTIONS], expected)
    recall = core.recall_rows(predictions)
    assert list(recall.index) == [core.REFERENCE, "a", "b"]
    assert recall.loc["a", "happy"] == np.mean(predictions["a"]["predicted"][labels == 1] == 1)


def _ranking(cls_rows: dict[str, list[tuple[int, float, float]]]) -> dict:
    return {cls: {"n_images": 10, "ranking": [{"au": au, "mean_diff": d, "pvalue": p, "pvalue_holm": p, "n_images": 10}
                                              for au, d, p in rows]} for cls, rows in cls_rows.items()}


def _reverse(cls_rows: dict[str, list[tuple[int, float, float]]]) -> dict:
    return {cls: [{"au": au, "effect": e, "pvalue": p, "pvalue_holm": p, "n_forward": 8, "n_reverse": 3}
                  for au, e, p in rows]
            for cls, rows in cls_rows.items()}


def _probe(au, forgotten, model="c") -> dict:
    test = {"pvalue": 0.01, "pvalue_holm": 0.02}
    return {"au": au, "model_b": model, "mean_f1_a": 0.8, "mean_f1_b": 0.6, "mean_diff": 0.2, "forgotten": forgotten,
            "plain": test, "corrected": test, "five_by_two": test}


def _cell(d, p):
    return {"recall_difference": d, "pvalue": p, "pvalue_holm": p, "method": "exact",
            "ci_low": d - 0.1, "ci_high": d + 0.1}


def test_positive_verdicts_pass_only_when_each_analysis_finds_the_au():
    control = core.Control("suppress_au14", 14, "contempt")
    recall = pd.DataFrame({"contempt": [0.8, 0.6]}, index=[core.REFERENCE, "suppress_au14"])
    planted = {"n_images": 20, "mass_reference": 0.3, "mass_control": 0.2, "mean_diff": 0.1, "pvalue": 0.001}
    found = core.positive_verdicts(control, {"contempt": _cell(0.2, 0.01)}, recall,
                                   _ranking({"contempt": [(14, 0.05, 0.01), (12, 0.02, 0.5)]}),
                                   _reverse({"contempt": [(14, 0.04, 0.01), (12, 0.01, 0.5)]}), _probe(14, True),
                                   planted, 0.05)
    assert [r["check"] for r in found] == ["plant_took", "recall_dropped", "saliency_ranked_first",
                                           "reverse_contrast_ranked_first", "concept_probe_lost"]
    seeds = {"mean_diff": 0.05, "ci_low": 0.01, "ci_high": 0.09, "pvalue": 0.01, "n_a": 3, "n_b": 5,
             "method": "t", "values_a": [0.05] * 3, "values_b": [0.0] * 5}
    with_seeds = core.positive_verdicts(control, {"contempt": _cell(0.2, 0.01)}, recall,
                                        _ranking({"contempt": [(14, 0.05, 0.01)]}),
                                        _reverse({"contempt": [(14, 0.04, 0.01)]}),
                                        _probe(14, True), planted, 0.05, planted_seeds=seeds)
    assert [r["check"] for r in with_seeds][:3] == ["plant_took", "plant_took_across_seeds", "recall_dropped"]
    assert all(r["passed"] for r in found)
    assert found[2]["rank"] == 1 and found[2]["significant"]
    assert found[1]["recall_reference"] == 0.8 and found[1]["recall_control"] == 0.6
    missed = core.positive_verdicts(control, {"contempt": _cell(0.2, 0.2)}, recall,
                                    _ranking({"contempt": [(12, 0.05, 0.01), (14, 0.02, 0.5)]}),
                                    _reverse({"contempt": [(14, -0.01, 0.9), (12, -0.02, 0.5)]}), _probe(14, False),
                                    planted | {"mean_diff": -0.01}, 0.05)
    assert not any(r["passed"] for r in missed)
    assert missed[2]["rank"] == 2 and missed[2]["top_au"] == 12


def test_negative_verdicts_fail_on_any_flag_after_correction():
    control = core.Control(core.NEGATIVE)
    quiet = core.negative_verdicts(control, {"happy": _cell(0.05, 0.3), "sad": _cell(-0.2, 0.001)},
                                   _ranking({"sad": [(15, 0.03, 0.2), (4, -0.05, 0.001)]}),
                                   _reverse({"sad": [(15, 0.02, 0.3), (4, -0.05, 0.001)]}),
                                   [_probe(5, False, core.NEGATIVE)], 0.05)
    assert all(r["passed"] for r in quiet)  # only differences in the control's favour, or not significant
    loud = core.negative_verdicts(control, {"happy": _cell(0.1, 0.01)}, _ranking({"sad": [(15, 0.03, 0.01)]}),
                                  _reverse({"sad": [(15, 0.03, 0.01)]}), [_probe(5, True, core.NEGATIVE)], 0.05)
    assert not any(r["passed"] for r in loud)
    assert loud[1]["flagged"] == [{"cls": "sad", "au": 15, "mean_diff": 0.03, "pvalue_holm": 0.01}]
    assert loud[2]["flagged"] == [{"cls": "sad", "au": 15, "effect": 0.03, "pvalue_holm": 0.01}]
    assert core.summary(loud) == {core.NEGATIVE: {"recall_flags_nothing": False, "saliency_flags_nothing": False,
                                                  "reverse_contrast_flags_nothing": False,
                                                  "concept_probes_flag_nothing": False}}
    table = core.verdict_table(loud)
    assert list(table["result"]) == ["fail"] * 4 and "sad/AU15 (p 0.01)" in table["numbers"][1]


def test_controls_params_are_validated(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("controls: {suppress_aus: [14, 5], dependent_class: {14: contempt}}\n")
    with pytest.raises(ConfigError, match="dependent_class must name one class for each of suppress_aus"):
        load_section(params, "controls")
    params.write_text("controls: {suppress_aus: [14], dependent_class: {14: smug}, probe_aus: [14]}\n")
    with pytest.raises(ConfigError, match="unknown classes"):
        load_section(params, "controls")
    params.write_text("controls: {negative_seed: 2022}\n")
    with pytest.raises(ConfigError, match="negative_seed must differ"):
        load_section(params, "controls")


def test_reverse_contrast_ranking_compares_right_minus_wrong_on_both_contrast_sets():
    rng = np.random.default_rng(3)
    n = 40
    data = _test_images(n=n)
    data = saliency.TestImages(data.images, np.zeros(n, np.int64), data.rows, data.present, data.packed_regions)
    predicted = {core.REFERENCE: np.where(np.arange(n) < 25, 0, 1), "c": np.where(np.arange(n) < 25, 1, 0)}
    predicted["c"][:5] = 0  # both right on the first 5: in neither contrast set
    reference, model = rng.uniform(0, 1, (2, n, 8, 8))
    rows = core.reverse_contrast_ranking(reference, model, data, predicted, "c", 0, cap=100, min_images=5)
    share = lambda m: m[:, :, :4].sum((1, 2)) / m.sum((1, 2))  # noqa: E731
    forward, reverse = np.arange(5, 25), np.arange(25, n)
    f = share(reference[forward]) - share(model[forward])  # reference right, model wrong
    r = share(model[reverse]) - share(reference[reverse])  # model right, reference wrong
    au14 = next(row for row in rows if row["au"] == 14)
    assert (au14["n_forward"], au14["n_reverse"]) == (20, 15)
    assert np.isclose(au14["effect"], f.mean() - r.mean())
    assert np.isclose(au14["pvalue"], stats.mannwhitneyu(f, r, alternative="two-sided").pvalue)
    assert au14["pvalue_holm"] == au14["pvalue"]  # the only AU shown: a family of one
    assert rows[0]["au"] == 14 and all(np.isnan(row["effect"]) for row in rows[1:])


def test_ranking_flags_correct_over_every_class_of_the_pair():
    rows = _reverse({"sad": [(15, 0.03, 0.03)], "fear": [(5, 0.02, 0.03), (4, -0.1, 0.0001)]})
    for cls in rows:  # raw p as given; the per-class Holm of each class's rows
        adjusted_p = multipletests([r["pvalue"] for r in rows[cls]], method="holm")[1]
        for r, adjusted in zip(rows[cls], adjusted_p, strict=True):
            r["pvalue_holm"] = float(adjusted)
    out = core.ranking_flags(rows, "effect", 0.05)
    family = multipletests([0.03, 0.03, 0.0001], method="holm")[1]  # 0.06, 0.06, 0.0003 (AU4: effect < 0)
    assert out["tests"] == 3
    assert out["flagged_per_class"] == [{"cls": "sad", "au": 15, "effect": 0.03, "pvalue_holm": 0.03},
                                        {"cls": "fear", "au": 5, "effect": 0.02, "pvalue_holm": 0.03}]
    assert out["flagged"] == [] and family[0] > 0.05  # 0.03 twice does not survive Holm over 3 tests
    loud = core.ranking_flags(_reverse({"sad": [(15, 0.03, 0.001)]}), "effect", 0.05)
    assert loud["flagged"] == [{"cls": "sad", "au": 15, "effect": 0.03, "pvalue_holm": 0.001}]


def test_flags_get_the_ground_truth_shift_of_their_au():
    rng = np.random.default_rng(4)
    data = _test_images()
    reference = rng.uniform(0, 1, (12, 8, 8))
    model = reference.copy()
    model[:, :, :4] *= 0.5  # the model really looks less at AU14's half
    row = {"flagged": [{"cls": "contempt", "au": 14, "effect": 0.1, "pvalue_holm": 0.01},
                       {"au": 5, "corrected_p_holm": 0.02}, {"cls": "sad", "pvalue_holm": 0.03}]}
    out = core.with_ground_truth(row, reference, model, data)
    expected = core.planted_mass(reference, model, data, 14)
    assert out["flagged"][0]["all_images_shift"] == expected["mean_diff"] > 0
    assert out["flagged"][0]["all_images_pvalue"] == expected["pvalue"] < 0.01
    assert "all_images_shift" not in out["flagged"][1] and "all_images_shift" not in out["flagged"][2]
    text = core.verdict_table([{"control": "negative", "au": None, "check": "x", "passed": False, **out}])["numbers"][0]
    assert "contempt/AU14 (p 0.01; all images showing it: +" in text


def test_across_negatives_counts_runs_flags_and_flags_the_ground_truth_confirms():
    def row(name, check, flagged):
        return {"control": name, "au": None, "check": check, "passed": not flagged, "flagged": flagged}

    confirmed = {"cls": "sad", "au": 15, "effect": 0.07, "pvalue_holm": 0.02, "all_images_shift": 0.025,
                 "all_images_pvalue": 1e-24}
    false_alarm = {"cls": "fear", "au": 5, "mean_diff": 0.05, "pvalue_holm": 0.01, "all_images_shift": 0.001,
                   "all_images_pvalue": 0.4}
    rows = [row("negative", "saliency_flags_nothing", []),
            row("negative_seed7", "saliency_flags_nothing", [false_alarm]),
            row("negative", "reverse_contrast_flags_nothing", [confirmed]),
            row("negative_seed7", "reverse_contrast_flags_nothing", []),
            row("negative", "recall_flags_nothing", [{"cls": "sad", "pvalue_holm": 0.01}]),
            row("suppress_au5", "saliency_flags_nothing", [false_alarm])]  # not a negative control: ignored
    out = {r["check"]: r for r in core.across_negatives(rows, ["negative", "negative_seed7"], alpha=0.05)}
    assert set(out) == set(core.NEGATIVE_CHECKS) and all(r["control"] == "all_negatives" for r in out.values())
    saliency = out["saliency_flags_nothing"]
    assert (saliency["passed"], saliency["runs"], saliency["runs_flagging"], saliency["flags"]) == (False, 2, 1, 1)
    assert saliency["flags_confirmed_by_ground_truth"] == 0 and saliency["flagged"][0]["run"] == "negative_seed7"
    assert out["reverse_contrast_flags_nothing"]["flags_confirmed_by_ground_truth"] == 1
    recall = out["recall_flags_nothing"]
    assert (recall["runs"], recall["flags"], recall["flags_judged"]) == (1, 1, 0)  # no ground truth for a class
    assert out["concept_probes_flag_nothing"]["passed"] and out["concept_probes_flag_nothing"]["runs"] == 0
    text = core.verdict_table(list(out.values()))["numbers"][1]
    assert "negative_seed7/fear/AU5 (p 0.01; all images showing it: +0.001" in text


def test_extra_negative_seeds_must_be_new_seeds(tmp_path):
    params = tmp_path / "params.yaml"
    for seeds in ("[2023]", "[2024, 2024]", "[2022]"):  # negative_seed, twice, fine_tune.seed
        params.write_text(f"controls: {{negative_seed: 2023, extra_negative_seeds: {seeds}}}\n")
        with pytest.raises(ConfigError, match="extra_negative_seeds"):
            load_section(params, "controls")
    params.write_text("controls: {extra_negative_seeds: [2024, 2025]}\n")
    assert load_section(params, "controls").extra_negative_seeds == (2024, 2025)
    assert core.negative_name(2024) == "negative_seed2024"


def test_plant_check_measures_the_shift_against_the_negative_controls():
    rng = np.random.default_rng(3)
    data = _test_images()
    reference = rng.uniform(0, 1, (12, 8, 8))
    control, negative = reference.copy(), reference.copy()
    control[:, :, :4] *= 0.5  # the planted control looks much less at the AU's half ...
    negative[:, :, :4] *= rng.uniform(0.85, 1.0, (12, 1, 1))  # ... a negative a little less
    maps = {core.REFERENCE: reference, "suppress_au14": control, "negative": negative}
    out = core.plant_check(maps, data, "suppress_au14", 14, ["negative"])
    share = lambda m: m[:, :, :4].sum((1, 2)) / m.sum((1, 2))  # noqa: E731
    shift_control, shift_negative = share(reference) - share(control), share(reference) - share(negative)
    assert np.isclose(out["mean_diff"], shift_control.mean())
    assert np.isclose(out["negative_shifts"]["negative"], shift_negative.mean())
    assert np.isclose(out["excess_over_negatives"], (shift_control - shift_negative).mean())
    assert np.isclose(out["pvalue_vs_negatives"], stats.wilcoxon(shift_control - shift_negative).pvalue)
    excess = shift_control - shift_negative  # the difference-in-differences, image by image
    assert out["excess_ci"] == pytest.approx(list(stats.ttest_1samp(excess, 0.0).confidence_interval(0.95)))
    assert core.plant_took(out, 0.05)
    # A plant that moves relevance no more than a negative control does has not taken.
    maps["negative"] = control
    same = core.plant_check(maps, data, "suppress_au14", 14, ["negative"])
    assert same["excess_over_negatives"] == 0 and not core.plant_took(same, 0.05)
    assert core.plant_took(core.plant_check(maps, data, "suppress_au14", 14, []), 0.05)  # no negatives: shift vs 0


def test_plant_across_seeds_tests_each_model_s_mean_shift_over_seeds():
    """One footprint shift per model (the mean over the images showing the AU, against a hand computation),
    then the control's fine-tunings against the negatives with the pooled t-test over seeds (scipy)."""
    rng = np.random.default_rng(5)
    data = _test_images()
    reference = rng.uniform(0, 1, (12, 8, 8))
    maps = {core.REFERENCE: reference}
    for name, keep in (("c", 0.5), ("c_seed1", 0.55), ("c_seed2", 0.45), ("n", 0.97), ("n1", 0.92), ("n2", 0.95)):
        maps[name] = reference.copy()
        maps[name][:, :, :4] *= keep  # the fine-tunings without the AU look much less at its half, negatives a little
    share = lambda m: m[:, :, :4].sum((1, 2)) / m.sum((1, 2))  # noqa: E731
    shifts = core.footprint_shifts(maps, data, 14, ["c", "c_seed1", "c_seed2", "n", "n1", "n2"])
    for name, value in shifts.items():
        assert np.isclose(value, (share(reference) - share(maps[name])).mean()), name
    mine, negatives = ["c", "c_seed1", "c_seed2"], ["n", "n1", "n2"]
    cell = core.plant_across_seeds(shifts, mine, negatives, 0.95)
    test = stats.ttest_ind([shifts[m] for m in mine], [shifts[n] for n in negatives])
    assert np.isclose(cell["pvalue"], test.pvalue) and cell["mean_diff"] > 0
    assert cell["ci_low"] == pytest.approx(test.confidence_interval(0.95).low)
    control = core.Control("c", 14, "contempt")
    row = core.plant_row(control, cell, 0.05)
    assert row["check"] == "plant_took_across_seeds" and row["passed"] and row["ci"][0] > 0
    assert (row["n_control_seeds"], row["n_negative_seeds"]) == (3, 3)
    # a negative standing in for the control (against the other negatives) does not pass
    stand_in = core.plant_row(core.Control("n", 14, "contempt"),
                              core.plant_across_seeds(shifts, ["n"], ["n1", "n2"], 0.95), 0.05)
    assert not stand_in["passed"]
    # the control's fine-tunings looking *more* at the AU than the negatives: no plant, whatever p says
    flipped = {name: -value for name, value in shifts.items()}
    assert not core.plant_row(control, core.plant_across_seeds(flipped, mine, negatives, 0.95), 0.05)["passed"]


def test_necessity_shift_compares_each_image_s_dependence_on_the_au():
    # Reference: right on all 10 images, wrong on 8 of them without the AU. Control: right on 4, and
    # without the AU still right on those 4 (it no longer needs the AU).
    right = {core.REFERENCE: np.ones(10, bool), "c": np.arange(10) < 4, "n": np.ones(10, bool)}
    without = {core.REFERENCE: np.arange(10) >= 8, "c": np.arange(10) < 4, "n": np.arange(10) >= 7}
    out = core.necessity_shift(right, without, "c", ["n"])
    assert np.isclose(out["drop_reference"], 0.8) and out["drop_control"] == 0.0
    assert np.isclose(out["drop_negatives"]["n"], 0.7)
    dependence = (right[core.REFERENCE].astype(float) - without[core.REFERENCE]
                  - (right["c"].astype(float) - without["c"]))
    assert np.isclose(out["pvalue"], stats.wilcoxon(dependence).pvalue) and out["pvalue"] < 0.05
    control = core.Control("suppress_au14", 14, "contempt")
    recall = pd.DataFrame({"contempt": [0.8, 0.6]}, index=[core.REFERENCE, "suppress_au14"])
    planted = {"n_images": 20, "mass_reference": 0.3, "mass_control": 0.2, "mean_diff": 0.1, "pvalue": 0.001}
    rows = core.positive_verdicts(control, {"contempt": _cell(0.2, 0.01)}, recall,
                                  _ranking({"contempt": [(14, 0.05, 0.01)]}),
                                  _reverse({"contempt": [(14, 0.04, 0.01)]}),
                                  _probe(14, True), planted, 0.05, out)
    assert rows[-1]["check"] == "necessity_fell" and rows[-1]["passed"] and rows[-1]["cls"] == "contempt"


def test_false_alarm_rate_is_the_share_of_negatives_where_the_same_check_fired():
    def rows(*passed):
        return [{"control": "x", "check": c, "passed": p}
                for c, p in zip(("plant_took", "recall_dropped"), passed, strict=True)]

    positive = rows(True, True)
    on_negatives = {"negative": rows(False, True), "negative_seed2024": rows(False, False),
                    "negative_seed2025": rows(True, False), "negative_seed2026": rows(False, False)}
    out = core.with_false_alarms(positive, on_negatives)
    assert [r["false_alarm_rate"] for r in out] == [0.25, 0.25] and all(r["n_negatives"] == 4 for r in out)
    assert out[0]["false_alarms"] == ["negative_seed2025"] and out[1]["false_alarms"] == ["negative"]
    assert [r["calibrated"] for r in out] == [False, False]  # 0.25 > 0.2
    table = core.verdict_table(out)
    assert table["false alarms on negatives"].tolist() == ["1/4 (0.25, NOT calibrated)"] * 2
    assert core.with_false_alarms(rows(True, True), on_negatives, max_rate=0.25)[0]["calibrated"]
    assert core.with_false_alarms(rows(True, False), {})[0]["false_alarm_rate"] is None


def test_recall_across_seeds_compares_the_controls_fine_tunings_with_the_negatives():
    """Negatives' mean recall minus the control's, the pooled t-test over seeds (scipy) and Holm over the classes;
    the row passes only for a drop whose Holm p is below alpha."""
    rng = np.random.default_rng(3)
    names = ["c", "c_seed1", "c_seed2", "n", "n1", "n2", "n3"]
    recall = pd.DataFrame(0.7 + 0.02 * rng.standard_normal((7, len(EMOTIONS))), index=names, columns=list(EMOTIONS))
    recall.loc[["c", "c_seed1", "c_seed2"], "contempt"] -= 0.2
    across = core.recall_across_seeds(recall, ["c", "c_seed1", "c_seed2"], ["n", "n1", "n2", "n3"], 0.95)
    negatives = recall.loc[["n", "n1", "n2", "n3"], "contempt"]
    mine = recall.loc[["c", "c_seed1", "c_seed2"], "contempt"]
    test = stats.ttest_ind(negatives, mine)
    cell = across["contempt"]
    assert np.isclose(cell["pvalue"], test.pvalue) and np.isclose(cell["mean_diff"], negatives.mean() - mine.mean())
    holm_p = multipletests([across[c]["pvalue"] for c in EMOTIONS], method="holm")[1]
    assert np.isclose(cell["pvalue_holm"], holm_p[EMOTIONS.index("contempt")])
    control = core.Control("c", 14, "contempt")
    row = core.recall_row(control, across, 0.05)
    assert row["check"] == "recall_dropped_across_seeds" and row["passed"]
    assert (row["n_control_seeds"], row["n_negative_seeds"]) == (3, 4) and row["ci"][0] > 0
    recall.loc[["c", "c_seed1", "c_seed2"], "contempt"] += 0.4  # better, not worse: no drop
    assert not core.recall_row(control, core.recall_across_seeds(recall, ["c", "c_seed1", "c_seed2"],
                                                                 ["n", "n1", "n2", "n3"], 0.95), 0.05)["passed"]
    one = core.recall_across_seeds(recall, ["n"], ["n1"], 0.95)  # two models: untestable, never passes
    assert one["contempt"]["pvalue"] is None and not core.recall_row(control, one, 0.05)["passed"]


def test_replicates_name_every_fine_tuning_of_each_control():
    cfg = ControlsConfig(suppress_aus=(14,), dependent_class={14: "contempt"}, extra_positive_seeds=(2028,),
                         negative_seed=2023, extra_negative_seeds=(2024,))
    assert core.replicates(cfg) == {"suppress_au14": ["suppress_au14", "suppress_au14_seed2028"],
                                    core.NEGATIVE: ["negative", "negative_seed2024"]}
    with pytest.raises(ValueError, match="extra_positive_seeds"):
        ControlsConfig(extra_positive_seeds=(2024,))  # a negative's seed
