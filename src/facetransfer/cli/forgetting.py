"""`facetransfer forgetting`: what the pain models forgot about emotions, and what pain gained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.data.labels import EMOTIONS
from facetransfer.fsutil import atomic_dir, write_json_atomic

# The model registry entry of the balanced pain model; alias "balanced" points at the newest choice.
REGISTERED_PAIN_MODEL = "facetransfer-pain-balanced"


def _read_inputs(retrain: Path, pain_metrics: Path, blocks: tuple[int, ...]):
    import pandas as pd

    predictions, pain = {}, {}
    for k in blocks:
        table = retrain / f"freeze{k}" / "test_predictions.csv"
        metrics = pain_metrics / f"freeze{k}.json"
        for path in (table, metrics):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the train-pain / retrain-emotion stages first)")
        predictions[k] = pd.read_csv(table, usecols=["row", "label", "predicted"])
        pain[k] = json.loads(metrics.read_text())["recall"]["macro"]
    return predictions, pain


@app.command()
def forgetting(
    retrain: Annotated[Path, typer.Option(help="Folder with freeze{k}/test_predictions.csv of the retrained heads.")],
    pain_metrics: Annotated[Path, typer.Option(help="Folder with freeze{k}.json of the pain models.")],
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV, Markdown) and figures (PNG).")],
    metrics: Annotated[Path, typer.Option(help="metrics/forgetting.json (recall, McNemar, trade-off).")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with pain/ and retrain/freeze{k}.json run ids, to link the MLflow run to them.")] = None,
    source: Annotated[Path | None, typer.Option(help="Folder with the emotion source model's test_predictions.csv: is the reference better than the source?")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Per-class recall of the retrained heads (Fig. 3), McNemar per class vs the reference with Holm
    correction and recall-difference intervals, and the pain/emotion trade-off with its Pareto front (Fig. 6)."""
    from facetransfer.analysis import forgetting as core
    from facetransfer.report.figures import recall_bars, trade_off_plot

    with user_errors():
        cfg = load_section(params, "forgetting")
        predictions, pain = _read_inputs(retrain, pain_metrics, cfg.freeze_blocks)
        recall = core.recall_table(predictions, EMOTIONS)
        mcnemar = core.mcnemar_by_class(predictions, EMOTIONS, cfg.reference, cfg.confidence)
        trade = core.trade_off(pain, {k: float(recall.loc[core.name(k), "macro"]) for k in cfg.freeze_blocks})
        forgotten = (recall.loc[core.name(cfg.reference)] - recall).drop(index=core.name(cfg.reference))
        trade["most_forgotten"] = core.class_trade_offs(pain, recall, core.most_forgotten(forgotten, cfg.trade_off_classes))
        trade["most_forgotten_rule"] = "largest mean forgetting (reference recall - model recall) over the models"
        tests = _mcnemar_rows(mcnemar)
        figures = {"recall.png": recall_bars(recall), "trade_off.png": trade_off_plot(trade)}
        with atomic_dir(out) as tmp:
            recall.to_csv(tmp / "recall.csv", index_label="model")
            (tmp / "recall.md").write_text(recall.round(3).to_markdown() + "\n")
            forgotten.to_csv(tmp / "forgetting.csv", index_label="model")
            tests.to_csv(tmp / "mcnemar.csv", index=False)
            (tmp / "mcnemar.md").write_text(_mcnemar_markdown(tests) + "\n")
            for file, figure in figures.items():
                figure.savefig(tmp / file, dpi=120)
        summary = {"reference": core.name(cfg.reference), "recall": recall.to_dict(orient="index"),
                   "forgetting": forgotten.to_dict(orient="index"), "mcnemar": mcnemar, "trade_off": trade}
        if source is not None:
            summary["source_vs_reference"] = core.source_vs_reference(
                _source_predictions(source), predictions[cfg.reference], len(EMOTIONS), cfg.confidence)
        write_json_atomic(metrics, summary)
        names = [f"{stage}/freeze{k}" for stage in ("pain", "retrain") for k in cfg.freeze_blocks]
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "forgetting", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("forgetting", Path.cwd(), **links)) as run:
            run.log_table(recall.reset_index(names="model"), "recall.json")
            run.log_table(tests, "mcnemar.json")
            for file, figure in figures.items():
                run.log_figure(figure, file)
            run.log_dict(summary, "forgetting.json")
            if links:  # the chosen pain model's run is known: put it in the model registry
                version = tracking.register_model_version(
                    REGISTERED_PAIN_MODEL, links[f"source_run.pain.{trade['balanced']}"], "checkpoint", "balanced",
                    {"model": trade["balanced"], "rule": trade["rule"], "forgetting_run": run.run_id},
                    description=f"{trade['balanced']}: the balanced pain/emotion choice of the forgetting stage")
                run.set_tags({"registered_model": f"{REGISTERED_PAIN_MODEL}/{version}"})
            tracking.write_run_id(run_id, run.run_id)
    typer.echo("macro recall after retraining: " + ", ".join(f"{m} {v:.3f}" for m, v in recall["macro"].items()))
    if "source_vs_reference" in summary:
        s = summary["source_vs_reference"]
        typer.echo(f"source model macro recall {s['source_macro_recall']:.3f}; {summary['reference']} - source accuracy "
                   f"{s['accuracy_difference']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}], McNemar p {s['pvalue']:.2g}")
    typer.echo(f"balanced pain/emotion choice: {trade['balanced']} (Pareto front: {', '.join(trade['pareto_front'])})"
               + (f"; registered as {REGISTERED_PAIN_MODEL}@balanced" if links else ""))


def _source_predictions(source: Path):
    import pandas as pd

    path = source / "test_predictions.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the train-emotion stage first)")
    return pd.read_csv(path, usecols=["row", "label", "predicted"])


def _mcnemar_rows(mcnemar: dict):
    import pandas as pd

    return pd.DataFrame([{"model": model, "class": cls, **cell} for model, per_class in mcnemar.items()
                         for cls, cell in per_class.items()])


def _mcnemar_markdown(tests) -> str:
    """The McNemar table for people: one row per model and class, p-values in scientific notation."""
    shown = tests[["model", "class", "recall_difference", "ci_low", "ci_high", "discordant_reference_only",
                   "discordant_other_only", "method", "statistic", "pvalue", "pvalue_holm"]]
    formats = {"recall_difference": "{:+.3f}", "ci_low": "{:+.3f}", "ci_high": "{:+.3f}", "statistic": "{:.3g}",
               "pvalue": "{:.2g}", "pvalue_holm": "{:.2g}"}
    return shown.assign(**{c: shown[c].map(f.format) for c, f in formats.items()}).to_markdown(index=False, disable_numparse=True)
