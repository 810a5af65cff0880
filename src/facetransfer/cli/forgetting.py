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
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic

# The model registry entry of the balanced pain model; alias "balanced" points at the newest choice.
REGISTERED_PAIN_MODEL = "facetransfer-pain-balanced"


def _read_seed(retrain: Path, pain_metrics: Path, seed: int, blocks: tuple[int, ...]):
    """One seed's models: freeze k -> test predictions of the retrained head, and -> the pain model's metrics."""
    import pandas as pd

    predictions, pain = {}, {}
    for k in blocks:
        table = retrain / f"seed{seed}" / f"freeze{k}" / "test_predictions.csv"
        metrics = pain_metrics / f"seed{seed}" / f"freeze{k}.json"
        for path in (table, metrics):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the train-pain / retrain-emotion stages of seed "
                                        f"{seed} first, or check study.seeds)")
        predictions[k] = pd.read_csv(table, usecols=["row", "label", "predicted"])
        pain[k] = json.loads(metrics.read_text())
    return predictions, pain


@app.command()
def forgetting(
    retrain: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}/test_predictions.csv of the retrained heads.")],
    pain_metrics: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}.json of the pain models.")],
    pain_summary: Annotated[Path, typer.Option(help="Folder for freeze{k}.json: each pain model's numbers, mean over seeds.")],
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV, Markdown) and figures (PNG).")],
    metrics: Annotated[Path, typer.Option(help="metrics/forgetting.json (recall, across seeds, McNemar, trade-off).")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with pain/ and retrain/seed{s}/freeze{k}.json run ids, to link the MLflow run to them.")] = None,
    source: Annotated[Path | None, typer.Option(help="Folder with the emotion source model's test_predictions.csv: is the reference better than the source?")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Per-class recall of the retrained heads (Fig. 3, mean over seeds), each class's forgetting across
    training seeds (mean, t interval, paired t-test over seeds, Holm per model), McNemar per class and seed
    as detail, and the pain/emotion trade-off with its Pareto front (Fig. 6)."""
    from facetransfer.analysis import forgetting as core
    from facetransfer.report.figures import forgetting_forest, recall_bars, trade_off_plot

    with user_errors():
        check_outputs(folders=[out, pain_summary], files=[metrics, run_id])  # before any work
        cfg, study = load_section(params, "forgetting"), load_section(params, "study")
        by_seed = {s: _read_seed(retrain, pain_metrics, s, cfg.freeze_blocks) for s in study.seeds}
        recall_by_seed = {s: core.recall_table(predictions, EMOTIONS) for s, (predictions, _) in by_seed.items()}
        recall = core.mean_over_seeds(recall_by_seed)
        pain = {k: core.summarise_pain({s: by_seed[s][1][k] for s in study.seeds}) for k in cfg.freeze_blocks}
        across = core.across_seeds(recall_by_seed, EMOTIONS, cfg.reference, cfg.confidence)
        mcnemar_by_seed = {s: core.mcnemar_by_class(by_seed[s][0], EMOTIONS, cfg.reference, cfg.confidence)
                           for s in study.seeds}
        trade = core.trade_off({k: pain[k]["recall"]["macro"] for k in cfg.freeze_blocks},
                               {k: float(recall.loc[core.name(k), "macro"]) for k in cfg.freeze_blocks})
        forgotten = (recall.loc[core.name(cfg.reference)] - recall).drop(index=core.name(cfg.reference))
        trade["most_forgotten"] = core.class_trade_offs({k: pain[k]["recall"]["macro"] for k in cfg.freeze_blocks},
                                                        recall, core.most_forgotten(forgotten, cfg.trade_off_classes))
        trade["most_forgotten_rule"] = "largest mean forgetting (reference recall - model recall) over the models"
        tests = _mcnemar_rows(mcnemar_by_seed)
        across_rows = _across_rows(across)
        figures = {"recall.png": recall_bars(recall), "trade_off.png": trade_off_plot(trade),
                   "across_seeds.png": forgetting_forest(across_rows, cfg.confidence)}
        with atomic_dir(out) as tmp:
            recall.to_csv(tmp / "recall.csv", index_label="model")
            (tmp / "recall.md").write_text(recall.round(3).to_markdown() + "\n")
            _long_recall(recall_by_seed).to_csv(tmp / "recall_by_seed.csv", index=False)
            forgotten.to_csv(tmp / "forgetting.csv", index_label="model")
            across_rows.to_csv(tmp / "across_seeds.csv", index=False)
            (tmp / "across_seeds.md").write_text(_across_markdown(across_rows) + "\n")
            tests.to_csv(tmp / "mcnemar.csv", index=False)
            (tmp / "mcnemar.md").write_text(_mcnemar_markdown(tests) + "\n")
            for file, figure in figures.items():
                figure.savefig(tmp / file, dpi=120)
        with atomic_dir(pain_summary) as tmp:
            for k, numbers in pain.items():
                write_json_atomic(tmp / f"freeze{k}.json", numbers)
        summary = {"reference": core.name(cfg.reference), "seeds": list(study.seeds), "detail_seed": study.detail_seed,
                   "family_rule": "Holm within one model's comparison with the reference, over its classes",
                   "recall": recall.to_dict(orient="index"),
                   "recall_by_seed": {f"seed{s}": t.to_dict(orient="index") for s, t in recall_by_seed.items()},
                   "forgetting": forgotten.to_dict(orient="index"), "across_seeds": across,
                   "mcnemar": mcnemar_by_seed[study.detail_seed], "mcnemar_seed": study.detail_seed,
                   "mcnemar_by_seed": {f"seed{s}": m for s, m in mcnemar_by_seed.items()}, "trade_off": trade}
        if source is not None:
            summary["source_vs_reference"] = core.source_vs_reference(
                _source_predictions(source), by_seed[study.detail_seed][0][cfg.reference], len(EMOTIONS),
                cfg.confidence) | {"seed": study.detail_seed}
        write_json_atomic(metrics, summary)
        names = [f"{stage}/seed{study.detail_seed}/freeze{k}" for stage in ("pain", "retrain") for k in cfg.freeze_blocks]
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "forgetting", params=cfg.model_dump(mode="json") | {"seeds": study.seeds},
                                tags=tracking.run_tags("forgetting", Path.cwd(), **links)) as run:
            run.log_table(recall.reset_index(names="model"), "recall.json")
            run.log_table(across_rows, "across_seeds.json")
            run.log_table(tests, "mcnemar.json")
            for file, figure in figures.items():
                run.log_figure(figure, file)
            run.log_dict(summary, "forgetting.json")
            if links:  # the chosen pain model's run (detail seed) is known: put it in the model registry
                version = tracking.register_model_version(
                    REGISTERED_PAIN_MODEL, links[f"source_run.pain.seed{study.detail_seed}.{trade['balanced']}"],
                    "checkpoint", "balanced",
                    {"model": trade["balanced"], "seed": str(study.detail_seed), "rule": trade["rule"],
                     "forgetting_run": run.run_id},
                    description=f"{trade['balanced']} (seed {study.detail_seed}): the balanced pain/emotion choice "
                                "of the forgetting stage")
                run.set_tags({"registered_model": f"{REGISTERED_PAIN_MODEL}/{version}"})
            tracking.write_run_id(run_id, run.run_id)
    _echo(recall, across, summary, trade, links, cfg.confidence)


def _echo(recall, across: dict, summary: dict, trade: dict, links: dict, confidence: float) -> None:
    typer.echo(f"macro recall after retraining (mean over {len(summary['seeds'])} seeds): "
               + ", ".join(f"{m} {v:.3f}" for m, v in recall["macro"].items()))
    flagged = [f"{model} {cls} {c['mean_diff']:+.3f}" for model, per_class in across.items()
               for cls, c in per_class.items() if c["pvalue_holm"] is not None and c["pvalue_holm"] < 1 - confidence]
    typer.echo(f"forgotten across seeds (Holm p < {1 - confidence:.2g}): " + (", ".join(flagged) or "none"))
    if "source_vs_reference" in summary:
        s = summary["source_vs_reference"]
        typer.echo(f"source model macro recall {s['source_macro_recall']:.3f}; {summary['reference']} - source accuracy "
                   f"{s['accuracy_difference']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}], McNemar p {s['pvalue']:.2g}"
                   f" (seed {s['seed']})")
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
    fmt = {"mean_diff": "{:+.3f}", "ci_low": "{:+.3f}", "ci_high": "{:+.3f}", "pvalue": "{:.2g}", "pvalue_holm": "{:.2g}"}
    return shown.assign(**{c: shown[c].map(lambda v, f=f: "-" if v is None or v != v else f.format(v))
                           for c, f in fmt.items()}).to_markdown(index=False, disable_numparse=True)


def _source_predictions(source: Path):
    import pandas as pd

    path = source / "test_predictions.csv"
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
    return shown.assign(**{c: shown[c].map(f.format) for c, f in formats.items()}).to_markdown(index=False, disable_numparse=True)
