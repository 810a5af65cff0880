"""`facetransfer train-trainee`: the RBDM trainee variants (MobileNetV2, plain or masked training images);
`facetransfer trainee-report`: all variants compared with the plain baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import ConfigError, load_section
from facetransfer.fsutil import atomic_dir, write_json_atomic


@app.command("train-trainee")
def train_trainee(
    data: Annotated[Path, typer.Option(help="Prepared FER+(-like) folder: train.csv, val.csv, images.npy.")],
    masked: Annotated[Path, typer.Option(help="Folder with the mask stage's {negative,mean,perceptive}/ datasets.")],
    out: Annotated[Path, typer.Option(help="Folder for <variant>/model.pt.")],
    metrics: Annotated[Path, typer.Option(help="Folder for <variant>.json: final / best F1, steps to the target F1, area under the curve.")],
    plots: Annotated[Path, typer.Option(help="Folder for <variant>/history.csv (per epoch) and <variant>/confusion.csv (validation).")],
    run_id: Annotated[Path, typer.Option(help="Folder for <variant>.json, each variant's MLflow run id.")],
    variant: Annotated[list[str] | None, typer.Option(help="Train only this variant (repeatable); default: every one of trainee.variants.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train the trainee variants of Schiller et al. 2020 from scratch: MobileNetV2 (torchvision) on plain images,
    on masked images, or on masked images for `switch_epoch` epochs and plain ones after; validated on plain images.
    `trainee.workers` variants train side by side, each on `trainee.threads` torch threads (masking/trainee.py)."""
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.masking import trainee as core

    with user_errors():
        cfg = load_section(params, "trainee")
        known = core.variants(cfg.switch_epoch)
        names = list(variant or cfg.variants)
        for name in names:
            if name not in known:
                raise ConfigError(f"--variant {name!r}: expected one of {', '.join(known)}")
        methods = sorted({known[name].masked for name in names if known[name].masked})
        # A missing or mismatched input fails here, before any training; the validation labels serve every variant.
        val_labels = core.load_inputs(data, masked, methods).val_labels
        with tracking.start_run("facetransfer", "train-trainee", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("train_trainee", Path.cwd(), variants=",".join(names)),
                                system_metrics=True) as run:
            run.log_data_input(data, context="training")
            for method in methods:
                run.log_data_input(masked / method, context="training")

            def save(result: core.TraineeResult) -> None:
                _save_variant(result, known[result.name], data, masked, val_labels, out, metrics, plots, run_id, cfg,
                              list(EMOTIONS))

            core.train_variants(names, data, masked, len(EMOTIONS), cfg, cfg.workers, on_done=save)
            tracking.write_run_id(run_id / "train-trainee.json", run.run_id)  # the stage's own run, beside its variants'


def _save_variant(result, chosen, data: Path, masked: Path, val_labels, out: Path, metrics: Path, plots: Path,
                  run_ids: Path, cfg, classes: list[str]) -> None:
    """One finished variant: model.pt, history and confusion CSVs, the curve summary, and its own MLflow run
    (nested in the stage's run, which carries the system metrics of the whole training)."""
    import pandas as pd
    import torch

    from facetransfer.masking import trainee as core

    name, history = result.name, list(result.state.history)
    summary = {"variant": name, **core.curve_summary(history, cfg.target_f1)}
    confusion = pd.DataFrame({"actual": [classes[i] for i in val_labels],
                              "predicted": [classes[i] for i in result.predicted]})
    with atomic_dir(out / name) as tmp:
        torch.save({"format": "facetransfer.trainee/1", "variant": name, "width": cfg.width, "classes": classes,
                    "state_dict": result.state.model, "config": cfg.model_dump(mode="json")}, tmp / "model.pt")
    with atomic_dir(plots / name) as tmp:
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
        confusion.to_csv(tmp / "confusion.csv", index=False)
    write_json_atomic(metrics / f"{name}.json", summary)
    with tracking.start_run("facetransfer", f"train-trainee/{name}", params=cfg.model_dump(mode="json"),
                            tags=tracking.run_tags("train_trainee", Path.cwd(), variant=name), nested=True) as run:
        plain_trains = chosen.masked is None or chosen.switch_epoch is not None
        run.log_data_input(data, context="training" if plain_trains else "validation")
        if chosen.masked:
            run.log_data_input(masked / chosen.masked, context="training")
        for record in history:
            run.log_metrics({k: v for k, v in record.items() if k not in ("images", "step")}, step=record["step"])
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
        run.log_table(pd.DataFrame(history), "history.json")
        tracking.write_run_id(run_ids / f"{name}.json", run.run_id)
    steps = summary["steps_to_target"]
    typer.echo(f"{name}: final val macro F1 {summary['final_f1']:.3f}, AUC {summary['auc']:.3f}, "
               f"steps to F1 {cfg.target_f1}: {steps if steps is not None else 'not reached'}")


def _finite_or_none(value):
    """JSON has no NaN / inf: a variant that never reached the target gets null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _trainee_outputs(summaries: Path, curves: Path, names: list[str]):
    import pandas as pd

    loaded, histories, predictions = {}, {}, {}
    for name in names:
        summary_path, history_path = summaries / f"{name}.json", curves / name / "history.csv"
        for path in (summary_path, history_path, curves / name / "confusion.csv"):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run `facetransfer train-trainee --variant {name}` first)")
        loaded[name] = json.loads(summary_path.read_text())
        histories[name] = pd.read_csv(history_path)
        predictions[name] = pd.read_csv(curves / name / "confusion.csv")
    return loaded, histories, predictions


@app.command("trainee-report")
def trainee_report(
    summaries: Annotated[Path, typer.Option(help="Folder with the train-trainee stages' <variant>.json curve summaries.")],
    curves: Annotated[Path, typer.Option(help="Folder with <variant>/history.csv and <variant>/confusion.csv.")],
    out: Annotated[Path, typer.Option(help="Folder for summary.csv / .md, curves.png (Fig. 10) and confusion.png.")],
    metrics: Annotated[Path, typer.Option(help="JSON: per-variant numbers, the verdict, McNemar best masked vs plain.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the trainee runs' <variant>.json run ids, to link the MLflow run to them.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Did relevance-based masking speed learning? The trainee variants' curves in one figure (Schiller et al. 2020,
    Fig. 10), steps to the target F1, area under the curve, final F1, and the confusion matrices of the best masked
    variant and the plain baseline with McNemar between them."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    from facetransfer.analysis import trainee as core
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.report.figures import confusion_pair, learning_curves

    with user_errors():
        cfg = load_section(params, "trainee")
        loaded, histories, predictions = _trainee_outputs(summaries, curves, list(cfg.variants))
        table = core.summary_table(loaded)
        best = core.best_masked(table)
        verdict = core.verdict(table, best, cfg.target_f1)
        actual = predictions[core.BASELINE]["actual"].to_numpy()
        if not np.array_equal(actual, predictions[best]["actual"].to_numpy()):
            raise ValueError(f"{curves}: {best} and {core.BASELINE} were validated on different images (rerun both)")
        mcnemar = core.compare_predictions(actual, predictions[core.BASELINE]["predicted"].to_numpy(),
                                           predictions[best]["predicted"].to_numpy())
        matrices = {name: confusion_matrix(predictions[name]["actual"], predictions[name]["predicted"], labels=list(EMOTIONS))
                    for name in (core.BASELINE, best)}
        curves_figure = learning_curves(histories, cfg.target_f1)
        confusion_figure = confusion_pair(matrices, list(EMOTIONS))
        with atomic_dir(out) as tmp:
            table.to_csv(tmp / "summary.csv")
            (tmp / "summary.md").write_text(table.to_markdown(floatfmt=".3f") + "\n")
            curves_figure.savefig(tmp / "curves.png", dpi=120)
            confusion_figure.savefig(tmp / "confusion.png", dpi=120)
        result = {"variants": {name: {k: _finite_or_none(float(v)) for k, v in row.items()} for name, row in table.iterrows()},
                  "verdict": verdict, "mcnemar_best_vs_plain": mcnemar}
        write_json_atomic(metrics, result)
        links = tracking.source_run_tags(source_runs, list(cfg.variants)) if source_runs else {}
        with tracking.start_run("facetransfer", "trainee-report", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("trainee_report", Path.cwd(), **links)) as run:
            run.log_table(table.reset_index(), "trainee_summary.json")
            run.log_figure(curves_figure, "learning_curves.png")
            run.log_figure(confusion_figure, "confusion.png")
            run.log_dict(result, "trainee.json")
            run.log_metrics({f"auc_{name}": float(row["auc"]) for name, row in table.iterrows()})
            tracking.write_run_id(run_id, run.run_id)
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"best masked variant {best}: AUC {verdict['auc_best']:.3f} vs plain {verdict['auc_baseline']:.3f} "
               f"(masking sped learning: {'yes' if verdict['masking_sped_learning'] else 'no'}); McNemar on validation "
               f"p {mcnemar['pvalue']:.2g} ({mcnemar['method']})")
