"""The whole study on one page: every table and figure the pipeline wrote, read back from its output folders.

`build_report` returns the HTML text and the list of inputs it could not find (each
section then says so on the page instead of failing: a partial study still gets a report).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from facetransfer.config import ReportConfig
from facetransfer.names import MASKING_METHODS, freeze_name
from facetransfer.report import html
from facetransfer.stages.attention_study import OUTPUTS as ATTENTION
from facetransfer.stages.cka import OUTPUTS as CKA
from facetransfer.stages.concepts import OUTPUTS as CONCEPTS
from facetransfer.stages.controls import OUTPUTS as CONTROLS
from facetransfer.stages.forgetting import OUTPUTS as FORGETTING
from facetransfer.stages.mask import OUTPUTS as MASK
from facetransfer.stages.necessity import OUTPUTS as NECESSITY
from facetransfer.stages.outputs import Outputs
from facetransfer.stages.saliency import OUTPUTS as SALIENCY
from facetransfer.stages.trainee_report import OUTPUTS as TRAINEE
from facetransfer.stages.units import OUTPUTS as UNITS


@dataclass(frozen=True)
class StudyPaths:
    """Where the stages wrote: the pipeline's top folders (dvc.yaml's defaults, or the report command's options).
    Each file is found through its stage's OUTPUTS (facetransfer/stages/<stage>.py), moved under these folders."""

    metrics: Path = Path("metrics")
    reports: Path = Path("reports")
    saliency: Path = Path("saliency")
    masked: Path = Path("masked")

    def place(self, default: Path) -> Path:
        """A stage's default output path (metrics/cka.json) under this study's folders."""
        top, *rest = Path(default).parts
        roots = {"metrics": self.metrics, "reports": self.reports, "saliency": self.saliency, "masked": self.masked}
        return roots[top].joinpath(*rest)

    def option(self, outputs: Outputs, option: str) -> Path:
        """Where a stage wrote one of its path options (e.g. forgetting's metrics JSON)."""
        return self.place(outputs.path(option))

    def file(self, outputs: Outputs, key: str, **fields) -> Path:
        """One file a stage wrote into one of its folders."""
        return self.place(outputs.file(key, **fields))


class _Reader:
    """Reads pipeline outputs, remembers which ones were missing, and holds the output format (`fmt`: the
    facetransfer.report.html module, or a report.markdown.Markdown; both offer heading, text, note, table,
    preformatted, figure_file and page)."""

    def __init__(self, fmt: Any) -> None:
        self.fmt = fmt
        self.missing: list[str] = []

    def json(self, path: Path):
        if not path.is_file():
            self._missing(path)
            return None
        return json.loads(path.read_text())

    def csv(self, path: Path, **kwargs) -> pd.DataFrame | None:
        if not path.is_file():
            self._missing(path)
            return None
        return pd.read_csv(path, **kwargs)

    def figure(self, path: Path, caption: str) -> str:
        if not path.is_file():
            self._missing(path)
            return self.fmt.note(f"missing figure: {path}")
        return self.fmt.figure_file(path, caption)

    def _missing(self, path: Path) -> None:
        if str(path) not in self.missing:  # the verdicts section reads some files the detail sections read too
            self.missing.append(str(path))

    def absent(self, path: Path) -> str:
        return self.fmt.note(f"not available: {path} is missing (run the stage that writes it)")


def pain_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """Table 1 of Prajod et al.: accuracy and per-class / macro precision, recall, F1 per pain model."""
    rows = []
    for model, m in metrics.items():
        row = {"model": model, "accuracy": m["accuracy"]}
        row |= {f"{measure} {cls}": m[measure][cls] for measure in ("precision", "recall", "f1")
                for cls in ("no_pain", "pain", "macro")}
        rows.append(row)
    return pd.DataFrame(rows)


def mcnemar_table(mcnemar: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "class": cls, "statistic": t["statistic"], "p": t["pvalue"],
                          "p (Holm)": t["pvalue_holm"], "method": t["method"]}
                         for model, classes in mcnemar.items() for cls, t in classes.items()])


def ranking_table(ranking: dict, top: int) -> pd.DataFrame:
    """The `top` AUs per (model pair, class) of saliency/au_ranking.json."""
    rows = []
    for model, classes in ranking["pairs"].items():
        for cls, entry in classes.items():
            for place, au in enumerate(entry["ranking"][:top], start=1):
                rows.append({"model": model, "class": cls, "rank": place, "AU": au["au"],
                             "relevance share, reference": au["mass_reference"], "model's": au["mass_model"],
                             "difference": au["mean_diff"], "p (Holm)": au["pvalue_holm"], "images": au["n_images"]})
    return pd.DataFrame(rows)


def localisation_table(scores: dict) -> pd.DataFrame:
    rows = []
    for model, s in scores.items():
        rows.append({"model": model, "images": s["n_images"],
                     **{f"LRP {k.replace('_', ' ')}": v for k, v in s["lrp"].items()},
                     **{f"Grad-CAM {k}": v for k, v in s.get("gradcam", {}).items()}})
    return pd.DataFrame(rows)


CONCEPT_COLUMNS = {"au": "AU", "model_b": "model", "mean_f1_a": "F1 reference", "mean_f1_b": "F1 model",
                   "ci_diff_corrected": "difference 95 % CI (corrected)", "plain_p": "plain p",
                   "corrected_p": "corrected p", "corrected_p_holm": "corrected p (Holm)", "five_by_two_p": "5x2cv p",
                   "forgotten": "forgotten"}


def _provenance(read: _Reader, params_text: str, provenance: dict[str, str]) -> list[str]:
    fmt = read.fmt
    facts = pd.DataFrame({"": list(provenance), "value": list(provenance.values())})
    return [fmt.table(facts), fmt.preformatted(params_text, summary="params.yaml (click to open)")]


def _transfer(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    folder = paths.option(FORGETTING, "pain_summary")
    found = sorted(folder.glob("freeze*.json")) if folder.is_dir() else []
    if not found:
        read.missing.append(str(folder))
        return [read.absent(folder)]
    metrics = {p.stem: json.loads(p.read_text()) for p in found}
    return [fmt.text("Table 1: the pain models (FreezeBk: the first k conv blocks kept from the emotion model), "
                     "on the pain test set, mean over the training seeds."), fmt.table(pain_table(metrics))]


def across_seeds_table(across: dict[str, dict]) -> pd.DataFrame:
    """metrics/forgetting.json -> across_seeds as rows: model, class, mean forgetting, interval, p-values."""
    return pd.DataFrame([{"model": model, "class": cls, "recall lost (mean)": c["mean_diff"], "CI low": c["ci_low"],
                          "CI high": c["ci_high"], "p": c["pvalue"], "p (Holm)": c["pvalue_holm"],
                          "seeds": c["n_seeds"]}
                         for model, classes in across.items() for cls, c in classes.items()])


def cka_table(cka: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """metrics/cka.json as one row per model: mean CKA per block, with its interval where there is one."""
    def cell(c: dict) -> str:
        return f"{c['mean']:.3f}" + ("" if c["ci_low"] is None else f" [{c['ci_low']:.3f}, {c['ci_high']:.3f}]")

    return pd.DataFrame([{"model": model, "seeds": next(iter(blocks.values()))["n_seeds"],
                          **{block: cell(c) for block, c in blocks.items()}} for model, blocks in cka.items()])


def _verdicts(read: _Reader, paths: StudyPaths) -> list[str]:
    """What held up: forgetting across seeds, representation drift per block, and the calibrated controls."""
    fmt = read.fmt
    parts = []
    summary = read.json(paths.option(FORGETTING, "metrics"))
    if summary is not None and "across_seeds" in summary:
        parts += [fmt.heading(f"Forgetting across {len(summary['seeds'])} training seeds, {summary['reference']} "
                              "vs each model"),
                  fmt.text("Per seed: recall of the reference minus recall of the model (both trained with that "
                           "seed) on a class's test images. Mean over seeds, Student-t interval, paired t-test "
                           f"over seeds; {summary['family_rule']}."),
                  fmt.table(across_seeds_table(summary["across_seeds"])),
                  read.figure(paths.file(FORGETTING, "across_seeds_figure"), "Forgetting across seeds")]
    elif summary is None:
        parts.append(read.absent(paths.option(FORGETTING, "metrics")))
    cka = read.json(paths.option(CKA, "metrics"))
    if cka is not None:
        parts += [fmt.heading("Representation drift: linear CKA with the source model, by conv block"),
                  fmt.text("1 = the same representation (up to rotation and scale); blocks a model kept frozen "
                           "are checked to be 1. Mean over training seeds with its 95 % interval; controls are "
                           "one model each."),
                  fmt.table(cka_table(cka)),
                  read.figure(paths.file(CKA, "figure"), "CKA by block, one line per model")]
    else:
        parts.append(read.absent(paths.option(CKA, "metrics")))
    ranking = read.json(paths.option(SALIENCY, "ranking"))
    if ranking is not None and "across_seeds" in ranking:
        flagged = pd.DataFrame([{"model": model, "class": cls, "AU": r["au"],
                                 "relevance share lost (mean)": r["mean_diff"],
                                 "CI low": r["ci_low"], "CI high": r["ci_high"], "p (Holm)": r["pvalue_holm"],
                                 "seeds": r["n_seeds"]}
                                for model, classes in ranking["across_seeds"].items() for cls, rows in classes.items()
                                for r in rows if r["flagged"]])
        parts += [fmt.heading(f"AU regions the reference used more, across {len(ranking['seeds'])} seeds"),
                  fmt.text(f"Rule: {ranking['across_seeds_rule']}; flagged at Holm p < {ranking['alpha']}.")]
        parts.append(fmt.table(flagged) if len(flagged) else fmt.text("No AU region is flagged across seeds."))
    verdicts = read.csv(paths.file(CONTROLS, "verdicts"))
    if verdicts is not None:
        parts += [fmt.heading("Calibrated against known answers: planted-forgetting controls"),
                  fmt.text("Each line of evidence on the positive controls (an AU planted as forgotten) beside "
                           "how often the same check fired on the negative controls (nothing planted, other "
                           "seeds): its false-alarm rate."),
                  fmt.table(verdicts)]
    return parts


def _forgetting(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    parts = []
    summary = read.json(paths.option(FORGETTING, "metrics"))
    recall = read.csv(paths.file(FORGETTING, "recall"))
    if recall is not None:
        parts += [fmt.text("Emotion recall per class after retraining the head on each pain model's frozen features "
                           "(mean over seeds)."),
                  fmt.table(recall)]
    parts.append(read.figure(paths.file(FORGETTING, "recall_figure"), "Fig. 3 analogue: recall per class per model"))
    if summary is None:
        return parts + [read.absent(paths.option(FORGETTING, "metrics"))]
    trade = summary["trade_off"]
    seed = summary.get("mcnemar_seed")
    parts += [fmt.heading(f"Detail: McNemar per class on one seed's test images{f' (seed {seed})' if seed else ''}, "
                          f"{summary['reference']} vs each model"),
              fmt.table(mcnemar_table(summary["mcnemar"])),
              fmt.heading("The pain/emotion trade-off"),
              fmt.text(f"Pareto front: {', '.join(trade['pareto_front'])}. Balanced choice: {trade['balanced']} "
                       f"(rule: {trade['rule']})."),
              read.figure(paths.file(FORGETTING, "trade_off_figure"), "Fig. 6 analogue: pain vs emotion recall")]
    return parts


def necessity_table(summary: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Rows the models, columns the planted cells ("class.AU<k>"): recall drop without that AU."""
    return pd.DataFrame.from_dict(summary, orient="index").rename_axis("model").reset_index()


def _necessity(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    summary = read.json(paths.option(NECESSITY, "summary"))
    if summary is None:
        return [read.absent(paths.option(NECESSITY, "summary"))]
    if "skipped" in summary:
        return [fmt.text(f"Skipped: {summary['skipped']}.")]
    return [fmt.text("Ground truth of what each model uses, measured without training: every test image rendered "
                     "again with one AU switched off (all else identical). A cell is the class's recall drop when "
                     "the AU is removed from the images of that class showing it; contempt needs AU14, surprise "
                     "AU5 and happy AU12 by construction. 'FreezeBk forgot AU14' should mean its contempt drop fell."),
            fmt.table(necessity_table(summary)),
            read.figure(paths.file(NECESSITY, "figure"),
                        "Recall drop per class (rows) and AU switched off (columns), per model")]


def _saliency(read: _Reader, paths: StudyPaths, cfg: ReportConfig) -> list[str]:
    fmt = read.fmt
    parts = []
    ranking = read.json(paths.option(SALIENCY, "ranking"))
    if ranking is not None:
        parts += [fmt.text(f"AU ranking ({ranking['rule']}); top {cfg.ranking_top} per class and model."),
                  fmt.table(ranking_table(ranking, cfg.ranking_top))]
    scores = read.json(paths.option(SALIENCY, "metrics"))
    truth = (ranking or {}).get("regions", "AU regions")
    if scores is not None and "skipped" in scores:
        parts += [fmt.heading(f"Localisation against the {truth}"), fmt.text(f"Skipped: {scores['skipped']}.")]
    elif scores is not None:
        parts += [fmt.heading(f"Localisation against the {truth} of the AUs present"),
                  fmt.table(localisation_table(scores))]
    grids = paths.file(SALIENCY, "grids")
    for k in cfg.grid_models:
        name = freeze_name(k)
        found = sorted(grids.glob(f"*_vs_{name}_*.png")) if grids.is_dir() else []
        if not found:
            read.missing.append(str(grids / f"*_vs_{name}_*.png"))
        parts += [read.figure(path, f"input | LRP reference | LRP {name} | difference (red: the reference looked "
                                    f"more) | Grad-CAM reference | Grad-CAM {name} ({path.stem})") for path in found]
    return parts


def _concepts(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    rows = read.json(paths.option(CONCEPTS, "metrics"))
    parts = []
    if rows is not None:
        table = pd.DataFrame([{"au": r["au"], "model_b": r["model_b"],
                               "mean_f1_a": r["mean_f1_a"], "mean_f1_b": r["mean_f1_b"],
                               "ci_diff_corrected": "[{:.3f}, {:.3f}]".format(*r["ci_diff_corrected"]),
                               "plain_p": r["plain"]["pvalue"], "corrected_p": r["corrected"]["pvalue"],
                               "corrected_p_holm": r["corrected"]["pvalue_holm"],
                               "five_by_two_p": r["five_by_two"]["pvalue"],
                               "forgotten": r["forgotten"]} for r in rows])
        parts += [fmt.text("Linear probes per AU on the last conv block: the paper's plain paired t-test beside the "
                           "Nadeau-Bengio corrected test and Dietterich's 5x2cv."),
                  fmt.table(table.rename(columns=CONCEPT_COLUMNS))]
    parts.append(read.figure(paths.file(CONCEPTS, "figure"), "Probe F1 differences, plain vs corrected CI"))
    return parts


def _masking(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    parts = []
    summary = read.json(paths.option(MASK, "metrics"))
    if summary is not None:
        kept = pd.DataFrame({"method": list(summary["kept_fraction"]),
                             "kept pixels": list(summary["kept_fraction"].values())})
        parts += [fmt.text(f"{summary['images']} training images masked; the trainer got "
                           f"{summary['trainer_accuracy']:.3f} of them right."), fmt.table(kept)]
    for method in MASKING_METHODS:
        parts.append(read.figure(paths.file(MASK, "sample", method=method),
                                 f"{method} masking: original | mask | masked"))
    table = read.csv(paths.file(TRAINEE, "summary"))
    summary = read.json(paths.option(TRAINEE, "metrics"))
    if table is not None:
        trainee = summary.get("trainee", "Trainee") if summary is not None else "Trainee"
        parts += [fmt.heading(f"Trainees ({trainee}), across training seeds"), fmt.table(table)]
    if summary is not None:
        v, test = summary["verdict"], summary["mcnemar_best_vs_plain"]
        holds = {True: "yes", False: "no", None: "untested (one seed)"}[v["masking_sped_learning"]]
        gain = f"{v['auc_gain']:+.3f}" + (f" [{v['auc_gain_ci'][0]:+.3f}, {v['auc_gain_ci'][1]:+.3f}], Holm p = "
                                          f"{v['auc_gain_pvalue_holm']:.3g}" if v["auc_gain_ci"][0] is not None else "")
        parts.append(fmt.text(f"Best masked variant by mean area under the F1 curve over {len(summary['seeds'])} "
                              f"seeds: {v['best_masked']} ({v['auc_best']:.3f} vs plain {v['auc_baseline']:.3f}; "
                              f"paired gain {gain}); masking sped learning across seeds: {holds}. Detail, seed "
                              f"{test['seed']}: McNemar on the validation images p = {test['pvalue']:.3g}."))
    parts += [read.figure(paths.file(TRAINEE, "curves"), "Fig. 10 analogue: learning curves of the trainees "
                          "(mean over seeds, band: ± 1 SD)"),
              read.figure(paths.file(TRAINEE, "confusion"), "Confusion matrices: plain vs best masked (detail seed)")]
    return parts


def _attention(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    accuracy = read.csv(paths.file(ATTENTION, "accuracy"))
    places = read.csv(paths.file(ATTENTION, "localisation"))
    parts = [fmt.text("Arabian et al. 2022: VGG16 with and without SE / CBAM after conv blocks 2-4, from scratch "
                      "(Glorot) or from the emotion model, trained on CK+ six-class peak frames in subject-disjoint "
                      "folds; accuracy on the held-out fold (ckplus) and on the other datasets' test images.")]
    if accuracy is not None:
        parts.append(fmt.table(accuracy))
    parts.append(read.figure(paths.file(ATTENTION, "figure"), "Table 2 analogue: accuracy per fold"))
    if places is not None:
        wide = places.pivot_table(index=["init", "attention"], columns="class", values="dice", sort=False).reset_index()
        parts += [fmt.heading("Grad-CAM DICE against the regions of each class's AUs (held-out CK+ images)"),
                  fmt.table(wide)]
    return parts


def _units(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    parts = [fmt.text("Khorrami et al.: units of the last conv layer whose peak activation detects an AU (ROC AUC) and "
                      "whose activation falls on the AU's region (lift over the region's area share), "
                      "on CK+ peak frames.")]
    survival = read.csv(paths.file(UNITS, "survival"))
    if survival is not None:
        parts += [fmt.heading("The emotion model's units for the tracked AUs, in each model"), fmt.table(survival)]
    found = read.csv(paths.file(UNITS, "detectors"))
    if found is not None:
        best = found.drop_duplicates(["model", "au"]).pivot_table(index="au", columns="model", values="auc", sort=False)
        parts += [fmt.heading("Best detector AUC per AU and model (blank: no detector)"), fmt.table(best.reset_index())]
    parts.append(read.figure(paths.file(UNITS, "figure"), "Top-activating patches of the tracked units"))
    return parts


def _controls(read: _Reader, paths: StudyPaths) -> list[str]:
    fmt = read.fmt
    parts = [fmt.text("Planted-forgetting controls: the emotion model fine-tuned on the AffectNet-like training set "
                      "re-rendered without one AU (positive: the tool should find that AU) or unmodified with another "
                      "seed (negative: the tool should flag nothing); heads retrained on unmodified data, then the "
                      "study's analyses run source vs each control. plant_took checks from ground truth whether the "
                      "control really looks less at the AU (relevance share in its counterfactual footprint on every "
                      "test image showing it) and by more than the negative controls do (plant_took_across_seeds: the "
                      "same shift per model, the control's fine-tunings against the negatives over seeds); "
                      "necessity_fell whether the "
                      "dependent class needs the AU less (recall drop without it on counterfactual images); "
                      "recall_dropped_across_seeds whether the dependent class's recall of the control's fine-tunings "
                      "over seeds is below the negatives' (a two-sample t-test over seeds, Holm over the classes; "
                      "recall_dropped is the single-seed McNemar).")]
    parts.append(fmt.text("The verdict table, with each check's false-alarm rate on the negatives, leads the "
                          "report (first section)."))
    recall = read.csv(paths.file(CONTROLS, "recall"))
    if recall is not None:
        parts += [fmt.heading("Recall per class after head retraining"), fmt.table(recall)]
    folder = paths.option(CONTROLS, "out")
    grids = sorted(folder.glob("suppress_au*.png")) if folder.is_dir() else []
    parts += [read.figure(path, f"LRP: input | source | control | difference ({path.stem})") for path in grids]
    return parts


def build_report(paths: StudyPaths, cfg: ReportConfig, params_text: str, provenance: dict[str, str],
                 fmt: Any = html) -> tuple[str, list[str]]:
    """(the page's text, inputs not found). `provenance`: e.g. git commit and data.dvc hash, shown first.
    `fmt`: facetransfer.report.html (one offline page) or report.markdown.Markdown (docs/results.md)."""
    read = _Reader(fmt)
    sections = [
        ("verdicts", "What held up: across seeds, block by block, against known answers", _verdicts(read, paths)),
        ("provenance", "Where this came from", _provenance(read, params_text, provenance)),
        ("transfer", "Transfer to pain (Prajod et al. 2022)", _transfer(read, paths)),
        ("forgetting", "What emotion recall was lost", _forgetting(read, paths)),
        ("necessity", "What each model needs: recall without one AU", _necessity(read, paths)),
        ("saliency", "Where the models look", _saliency(read, paths, cfg)),
        ("concepts", "Concept probes", _concepts(read, paths)),
        ("masking", "Relevance-based data masking (Schiller et al. 2020)", _masking(read, paths)),
        ("attention", "Pretrained vs scratch, with attention (Arabian et al. 2022)", _attention(read, paths)),
        ("units", "Units that behave like action units (Khorrami et al.)", _units(read, paths)),
        ("controls", "Does the tool find planted forgetting, and only that?", _controls(read, paths)),
    ]
    return (fmt.page("facetransfer: what did the transferred model gain, and what did it forget?", sections),
            read.missing)
