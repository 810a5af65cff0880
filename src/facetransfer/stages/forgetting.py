"""Stage `forgetting`: what the pain models forgot about emotions, and what pain gained (Prajod et al. 2022,
Fig. 3 and 6, McNemar per class).

Reads   models/retrain/seed<s>/freeze<k>/test_predictions.csv (retrain-emotion), metrics/by_seed/pain/seed<s>/
        freeze<k>.json (train-pain), models/emotion/test_predictions.csv (train-emotion)
Writes  OUTPUTS: reports/forgetting/ (tables and figures), metrics/forgetting.json, metrics/pain/freeze<k>.json
Core    facetransfer.analysis.forgetting
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import ForgettingConfig, StudyConfig, load_section
from facetransfer.data.labels import EMOTIONS
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import PREDICTIONS_FILE, freeze_name, seed_folder, sweep_model
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("forgetting",)
OUTPUTS = Outputs({"out": "reports/forgetting", "metrics": "metrics/forgetting.json", "pain_summary": "metrics/pain"},
                  {"recall": ("out", "recall.csv"), "recall_md": ("out", "recall.md"),
                   "recall_by_seed": ("out", "recall_by_seed.csv"), "forgetting": ("out", "forgetting.csv"),
                   "across_seeds": ("out", "across_seeds.csv"), "across_seeds_md": ("out", "across_seeds.md"),
                   "mcnemar": ("out", "mcnemar.csv"), "mcnemar_md": ("out", "mcnemar.md"),
                   "recall_figure": ("out", "recall.png"), "trade_off_figure": ("out", "trade_off.png"),
                   "across_seeds_figure": ("out", "across_seeds.png")})

# The model registry entry of the balanced pain model; alias "balanced" points at the newest choice.
REGISTERED_PAIN_MODEL = "facetransfer-pain-balanced"


@dataclass
class Inputs:
    """seed -> (freeze k -> retrained head's test predictions, freeze k -> pain model's metrics); the source
    model's test predictions (None: not compared)."""

    by_seed: dict[int, tuple[dict, dict]]
    source_predictions: Any = None


@dataclass
class Result:
    recall: Any  # DataFrame model x class, mean over seeds
    recall_by_seed: dict
    forgotten: Any  # reference recall - model recall, per class
    across_rows: Any  # DataFrame: forgetting across seeds, one row per model and class
    tests: Any  # DataFrame: McNemar per seed, model and class
    pain: dict  # freeze k -> the pain model's numbers over seeds
    trade: dict
    summary: dict  # metrics/forgetting.json
    figures: dict  # file name -> matplotlib figure


def _read_seed(retrain: Path, pain_metrics: Path, seed: int, blocks: tuple[int, ...]):
    """One seed's models: freeze k -> test predictions of the retrained head, and -> the pain model's metrics."""
    import pandas as pd

    predictions, pain = {}, {}
    for k in blocks:
        table = sweep_model(retrain, seed, k, PREDICTIONS_FILE)
        metrics = pain_metrics / seed_folder(seed) / f"{freeze_name(k)}.json"
        for path in (table, metrics):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the train-pain / retrain-emotion stages of seed "
                                        f"{seed} first, or check study.seeds)")
        predictions[k] = pd.read_csv(table, usecols=["row", "label", "predicted"])
        pain[k] = json.loads(metrics.read_text())
    return predictions, pain


def read_inputs(retrain: Path, pain_metrics: Path, source: Path | None, seeds: tuple[int, ...],
                blocks: tuple[int, ...]) -> Inputs:
    """Every file the stage reads, each checked (a missing one is named) before any work."""
    by_seed = {s: _read_seed(retrain, pain_metrics, s, blocks) for s in seeds}
    return Inputs(by_seed, _source_predictions(source) if source is not None else None)


def run(cfg: ForgettingConfig, study: StudyConfig, inputs: Inputs) -> Result:
    """Recall per class (mean over seeds), forgetting across seeds, McNemar per seed, the pain/emotion trade-off."""
    from facetransfer.analysis import forgetting as core
    from facetransfer.report.figures import forgetting_forest, recall_bars, trade_off_plot

    by_seed = inputs.by_seed
    recall_by_seed = {s: core.recall_table(predictions, EMOTIONS) for s, (predictions, _) in by_seed.items()}
    recall = core.mean_over_seeds(recall_by_seed)
    pain = {k: core.summarise_pain({s: by_seed[s][1][k] for s in study.seeds}) for k in cfg.freeze_blocks}
    across = core.across_seeds(recall_by_seed, EMOTIONS, cfg.reference, cfg.confidence)
    mcnemar_by_seed = {s: core.mcnemar_by_class(by_seed[s][0], EMOTIONS, cfg.reference, cfg.confidence)
                       for s in study.seeds}
    reference = freeze_name(cfg.reference)
    trade = core.trade_off({k: pain[k]["recall"]["macro"] for k in cfg.freeze_blocks},
                           {k: float(recall.loc[freeze_name(k), "macro"]) for k in cfg.freeze_blocks})
    forgotten = (recall.loc[reference] - recall).drop(index=reference)
    trade["most_forgotten"] = core.class_trade_offs({k: pain[k]["recall"]["macro"] for k in cfg.freeze_blocks},
                                                    recall, core.most_forgotten(forgotten, cfg.trade_off_classes))
    trade["most_forgotten_rule"] = "largest mean forgetting (reference recall - model recall) over the models"
    tests = _mcnemar_rows(mcnemar_by_seed)
    across_rows = _across_rows(across)
    figures = {OUTPUTS.name("recall_figure"): recall_bars(recall),
               OUTPUTS.name("trade_off_figure"): trade_off_plot(trade),
               OUTPUTS.name("across_seeds_figure"): forgetting_forest(across_rows, cfg.confidence)}
    summary = {"reference": reference, "seeds": list(study.seeds), "detail_seed": study.detail_seed,
               "family_rule": "Holm within one model's comparison with the reference, over its classes",
               "recall": recall.to_dict(orient="index"),
               "recall_by_seed": {seed_folder(s): t.to_dict(orient="index") for s, t in recall_by_seed.items()},
               "forgetting": forgotten.to_dict(orient="index"), "across_seeds": across,
               "mcnemar": mcnemar_by_seed[study.detail_seed], "mcnemar_seed": study.detail_seed,
               "mcnemar_by_seed": {seed_folder(s): m for s, m in mcnemar_by_seed.items()}, "trade_off": trade}
    if inputs.source_predictions is not None:
        summary["source_vs_reference"] = core.source_vs_reference(
            inputs.source_predictions, by_seed[study.detail_seed][0][cfg.reference], len(EMOTIONS),
            cfg.confidence) | {"seed": study.detail_seed}
    return Result(recall, recall_by_seed, forgotten, across_rows, tests, pain, trade, summary, figures)


def write(result: Result, out: Path, pain_summary: Path, metrics: Path) -> None:
    with atomic_dir(out) as tmp:
        result.recall.to_csv(tmp / OUTPUTS.name("recall"), index_label="model")
        (tmp / OUTPUTS.name("recall_md")).write_text(result.recall.round(3).to_markdown() + "\n")
        _long_recall(result.recall_by_seed).to_csv(tmp / OUTPUTS.name("recall_by_seed"), index=False)
        result.forgotten.to_csv(tmp / OUTPUTS.name("forgetting"), index_label="model")
        result.across_rows.to_csv(tmp / OUTPUTS.name("across_seeds"), index=False)
        (tmp / OUTPUTS.name("across_seeds_md")).write_text(_across_markdown(result.across_rows) + "\n")
        result.tests.to_csv(tmp / OUTPUTS.name("mcnemar"), index=False)
        (tmp / OUTPUTS.name("mcnemar_md")).write_text(_mcnemar_markdown(result.tests) + "\n")
        for file, figure in result.figures.items():
            figure.savefig(tmp / file, dpi=120)
    with atomic_dir(pain_summary) as tmp:
        for k, numbers in result.pain.items():
            write_json_atomic(tmp / f"{freeze_name(k)}.json", numbers)
    write_json_atomic(metrics, result.summary)


def _log(result: Result, cfg: ForgettingConfig, study: StudyConfig, source_runs: Path | None, run_id: Path) -> dict:
    """The MLflow run (tables, figures, the summary), and the balanced pain model registered; returns the links."""
    trade, seed = result.trade, study.detail_seed
    names = [f"{stage}/{seed_folder(seed)}/{freeze_name(k)}" for stage in ("pain", "retrain")
             for k in cfg.freeze_blocks]
    links = tracking.source_run_tags(source_runs, names) if source_runs else {}
    with tracking.start_run("facetransfer", "forgetting", params=cfg.model_dump(mode="json") | {"seeds": study.seeds},
                            tags=tracking.run_tags("forgetting", Path.cwd(), **links)) as logged:
        logged.log_table(result.recall.reset_index(names="model"), "recall.json")
        logged.log_table(result.across_rows, "across_seeds.json")
        logged.log_table(result.tests, "mcnemar.json")
        for file, figure in result.figures.items():
            logged.log_figure(figure, file)
        logged.log_dict(result.summary, "forgetting.json")
        if links:  # the chosen pain model's run (detail seed) is known: put it in the model registry
            version = tracking.register_model_version(
                REGISTERED_PAIN_MODEL, links[f"source_run.pain.{seed_folder(seed)}.{trade['balanced']}"],
                "checkpoint", "balanced",
                {"model": trade["balanced"], "seed": str(seed), "rule": trade["rule"], "forgetting_run": logged.run_id},
                description=f"{trade['balanced']} (seed {seed}): the balanced pain/emotion choice "
                            "of the forgetting stage")
            logged.set_tags({"registered_model": f"{REGISTERED_PAIN_MODEL}/{version}"})
        tracking.write_run_id(run_id, logged.run_id)
    return links


@app.command()
def forgetting(
    retrain: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}/test_predictions.csv of the retrained "
                                               "heads.")],
    pain_metrics: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}.json of the pain models.")],
    pain_summary: Annotated[Path, typer.Option(help="Folder for freeze{k}.json: each pain model's numbers, mean over "
                                                    "seeds.")],
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV, Markdown) and figures (PNG).")],
    metrics: Annotated[Path, typer.Option(help="metrics/forgetting.json (recall, across seeds, McNemar, trade-off).")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with pain/ and retrain/seed{s}/freeze{k}.json run "
                                                          "ids, to link the MLflow run to them.")] = None,
    source: Annotated[Path | None, typer.Option(help="Folder with the emotion source model's test_predictions.csv: is "
                                                     "the reference better than the source?")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Per-class recall of the retrained heads (Fig. 3, mean over seeds), each class's forgetting across
    training seeds (mean, t interval, paired t-test over seeds, Holm per model), McNemar per class and seed
    as detail, and the pain/emotion trade-off with its Pareto front (Fig. 6)."""
    with user_errors():
        check_outputs(folders=[out, pain_summary], files=[metrics, run_id])  # before any work
        cfg, study = load_section(params, "forgetting"), load_section(params, "study")
        inputs = read_inputs(retrain, pain_metrics, source, study.seeds, cfg.freeze_blocks)
        result = run(cfg, study, inputs)
        write(result, out, pain_summary, metrics)
        links = _log(result, cfg, study, source_runs, run_id)
    _echo(result.recall, result.summary["across_seeds"], result.summary, result.trade, links, cfg.confidence)


def _echo(recall, across: dict, summary: dict, trade: dict, links: dict, confidence: float) -> None:
    typer.echo(f"macro recall after retraining (mean over {len(summary['seeds'])} seeds): "
               + ", ".join(f"{m} {v:.3f}" for m, v in recall["macro"].items()))
    flagged = [f"{model} {cls} {c['mean_diff']:+.3f}" for model, per_class in across.items()
               for cls, c in per_class.items() if c["pvalue_holm"] is not None and c["pvalue_holm"] < 1 - confidence]
    typer.echo(f"forgotten across seeds (Holm p < {1 - confidence:.2g}): " + (", ".join(flagged) or "none"))
    if "source_vs_reference" in summary:
        s = summary["source_vs_reference"]
        typer.echo(f"source model macro recall {s['source_macro_recall']:.3f}; {summary['reference']} - source "
                   f"accuracy {s['accuracy_difference']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}], "
                   f"McNemar p {s['pvalue']:.2g} (seed {s['seed']})")
    typer.echo(f"balanced pain/emotion choice: {trade['balanced']} (Pareto front: {', '.join(trade['pareto_front'])})"
               + (f"; registered as {REGISTERED_PAIN_MODEL}@balanced" if links else ""))


def _long_recall(recall_by_seed: dict):
    import pandas as pd

    return pd.concat([t.rename_axis("model").reset_index().assign(seed=s) for s, t in recall_by_seed.items()],
                     ignore_index=True)


def _across_rows(across: dict):
    import pandas as pd

    return pd.DataFrame([{"model": model, "class": cls, **{k: v for k, v in cell.items() if k != "per_seed"},
                          "per_seed": " ".join(f"{v:+.3f}" for v in cell["per_seed"])}
                         for model, per_class in across.items() for cls, cell in per_class.items()])


def _across_markdown(rows) -> str:
    """The across-seed forgetting table for people: mean difference, interval, p-values."""
    shown = rows[["model", "class", "mean_diff", "ci_low", "ci_high", "pvalue", "pvalue_holm", "n_seeds", "per_seed"]]
    fmt = {"mean_diff": "{:+.3f}", "ci_low": "{:+.3f}", "ci_high": "{:+.3f}", "pvalue": "{:.2g}",
           "pvalue_holm": "{:.2g}"}
    return shown.assign(**{c: shown[c].map(lambda v, f=f: "-" if v is None or v != v else f.format(v))
                           for c, f in fmt.items()}).to_markdown(index=False, disable_numparse=True)


def _source_predictions(source: Path):
    import pandas as pd

    path = source / PREDICTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the train-emotion stage first)")
    return pd.read_csv(path, usecols=["row", "label", "predicted"])


def _mcnemar_rows(mcnemar_by_seed: dict):
    import pandas as pd

    return pd.DataFrame([{"seed": seed, "model": model, "class": cls, **cell}
                         for seed, mcnemar in mcnemar_by_seed.items()
                         for model, per_class in mcnemar.items() for cls, cell in per_class.items()])


def _mcnemar_markdown(tests) -> str:
    """The McNemar table for people: one row per model and class, p-values in scientific notation."""
    shown = tests[["seed", "model", "class", "recall_difference", "ci_low", "ci_high", "discordant_reference_only",
                   "discordant_other_only", "method", "statistic", "pvalue", "pvalue_holm"]]
    formats = {"recall_difference": "{:+.3f}", "ci_low": "{:+.3f}", "ci_high": "{:+.3f}", "statistic": "{:.3g}",
               "pvalue": "{:.2g}", "pvalue_holm": "{:.2g}"}
    shown = shown.assign(**{c: shown[c].map(f.format) for c, f in formats.items()})
    return shown.to_markdown(index=False, disable_numparse=True)
