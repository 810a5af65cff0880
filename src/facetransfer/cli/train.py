"""`facetransfer train-emotion | train-pain | retrain-emotion`: the transfer sweep's training stages.

Each command: load its params section, run the core function in
facetransfer.training.stages, write model + metrics + plot data, and log one
MLflow run (params, per-epoch metrics, tags, the checkpoint as a state dict).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterator

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, SeedOption, app, err_console, user_errors
from facetransfer.config import load_section
from facetransfer.data.labels import EMOTIONS, PAIN_CLASSES
from facetransfer.fsutil import check_outputs, write_json_atomic

if TYPE_CHECKING:  # torch and the training code load only when a command runs: `--help` stays fast
    import pandas as pd

    from facetransfer.training import stages

DataOption = Annotated[Path, typer.Option(help="Prepared dataset folder (from `facetransfer prepare`).")]
OutOption = Annotated[Path, typer.Option(help="Folder for model.pt and test predictions.")]
MetricsOption = Annotated[Path, typer.Option(help="Metrics JSON (DVC metrics).")]
PlotsOption = Annotated[Path, typer.Option(help="Folder for plot data: history.csv, confusion.csv (DVC plots).")]
RunIdOption = Annotated[Path, typer.Option(help="Small JSON with the MLflow run id (links dvc.lock and the run).")]
CheckpointOption = Annotated[Path, typer.Option(help="Per-epoch checkpoint; a rerun with the same config resumes from it.")]
SourceOption = Annotated[Path, typer.Option(help="model.pt of the model to start from.")]


@contextmanager
def epoch_reporter(title: str, epochs: int, run: tracking.RunLogger) -> Iterator[Callable[[dict], None]]:
    """Per-epoch callback: a progress line (loss, validation macro recall) and MLflow metrics."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    live = err_console.is_terminal  # a bar on a terminal, one line per epoch in logs (dvc, CI)
    with Progress(TextColumn(f"{title:>22}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err_console, disable=not live) as bars:
        task = bars.add_task(title, total=epochs, info="")

        def report(record: dict) -> None:
            info = f"loss {record['train_loss']:.3f}  val macro recall {record['val_macro_recall']:.3f}"
            bars.update(task, completed=record["epoch"], info=info)
            if not live:
                err_console.print(f"{title}: epoch {record['epoch']}/{epochs}  {info}  ({record['seconds']:.0f} s)",
                                  highlight=False)
            run.log_metrics({"train_loss": record["train_loss"], "val_macro_recall": record["val_macro_recall"],
                             "lr": record["lr"], "epoch_seconds": record["seconds"]}, step=record["epoch"])

        yield report


def _save_model(saved: dict, out: Path) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.pt.partial"
    torch.save(saved, tmp)
    tmp.replace(out / "model.pt")


def _write_plots(trained: stages.Trained, classes: tuple[str, ...], plots: Path) -> None:
    import pandas as pd

    plots.mkdir(parents=True, exist_ok=True)
    # Seconds per epoch go to MLflow only: plot data must not change when nothing else did.
    pd.DataFrame(trained.fit.history).drop(columns="seconds").to_csv(plots / "history.csv", index=False)
    predicted = trained.test_probs.argmax(1)
    pd.DataFrame({"actual": [classes[i] for i in trained.test_labels],
                  "predicted": [classes[i] for i in predicted]}).to_csv(plots / "confusion.csv", index=False)


def _predictions(trained: stages.Trained, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per test image: prepared row id, true and predicted class, class probabilities."""
    import pandas as pd

    frame = pd.DataFrame({"row": trained.test_rows, "label": trained.test_labels,
                          "predicted": trained.test_probs.argmax(1)})
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = trained.test_probs[:, k]
    return frame


def _finish(trained: stages.Trained, classes: tuple[str, ...], out: Path, metrics: Path, plots: Path,
            run_id: Path, run: tracking.RunLogger, checkpoint: Path) -> dict:
    from facetransfer.training import stages

    numbers = stages.classification_metrics(trained.test_labels, trained.test_probs, classes)
    numbers |= {key: trained.saved[key] for key in ("best_epoch", "epochs_run", "val_macro_recall", "train_dtype")}
    run.set_tags({"train_dtype": trained.saved["train_dtype"]})  # what `precision: auto` resolved to here
    _save_model(trained.saved, out)
    predictions = _predictions(trained, classes)
    predictions.to_csv(out / "test_predictions.csv", index=False)
    _write_plots(trained, classes, plots)
    write_json_atomic(metrics, {k: v for k, v in numbers.items() if k != "confusion"})
    run.log_metrics({"test_accuracy": numbers["accuracy"], "test_macro_recall": numbers["recall"]["macro"],
                     "test_macro_f1": numbers["f1"]["macro"]})
    run.log_dict(numbers, "metrics.json")
    run.log_table(predictions, "test_predictions.json")
    run.log_state_dict(trained.saved["state_dict"], "checkpoint")
    tracking.write_run_id(run_id, run.run_id)
    checkpoint.unlink(missing_ok=True)  # finished: nothing left to resume
    return numbers


def _check_outputs(out: Path, metrics: Path, plots: Path, run_id: Path, checkpoint: Path) -> None:
    """Every output of a training command can be written: checked before the training, not after it."""
    check_outputs(folders=[out, plots], files=[metrics, run_id, checkpoint])


def _run_tags(stage: str, **extra) -> dict:
    return tracking.run_tags(stage, Path.cwd(), **extra)


@app.command("train-emotion")
def train_emotion(data: DataOption, out: OutOption, metrics: MetricsOption, plots: PlotsOption,
                  run_id: RunIdOption, checkpoint: CheckpointOption = Path("checkpoints/emotion.pt"),
                  params: ParamsOption = Path("params.yaml")) -> None:
    """Train the source model: VGG16 on 8 emotions (section `train_emotion`).

    Focal loss (gamma) with class-balanced weights (beta), SGD, horizontal flip;
    the epoch with the best validation macro recall is kept.
    """
    from facetransfer.training import stages

    with user_errors():
        cfg = load_section(params, "train_emotion")
        _check_outputs(out, metrics, plots, run_id, checkpoint)
        with tracking.start_run("facetransfer", "train-emotion", params=cfg.model_dump(mode="json"),
                                tags=_run_tags("train_emotion", freeze_blocks="none"), system_metrics=True) as run, \
                epoch_reporter("train-emotion", cfg.epochs, run) as report:
            run.log_data_input(data, context="training")
            trained = stages.train_emotion(data, cfg, checkpoint, on_epoch=report)
            numbers = _finish(trained, EMOTIONS, out, metrics, plots, run_id, run, checkpoint)
    typer.echo(f"emotion test macro recall {numbers['recall']['macro']:.3f} (best epoch {numbers['best_epoch']})")


@app.command("train-pain")
def train_pain(source: SourceOption, data: DataOption, freeze_blocks: Annotated[int, typer.Option(
                   min=0, max=5, help="Conv blocks (from the input) frozen: FreezeB0..FreezeB5.")],
               out: OutOption, metrics: MetricsOption, plots: PlotsOption, run_id: RunIdOption,
               seed: SeedOption = 2022, checkpoint: CheckpointOption = Path("checkpoints/pain.pt"),
               params: ParamsOption = Path("params.yaml")) -> None:
    """Fine-tune a copy of the emotion model to pain with the first k conv blocks frozen (section `train_pain`).

    Writes the paper's Table 1 numbers: accuracy and per-class + macro precision, recall, F1.
    """
    from facetransfer.training import stages

    with user_errors():
        cfg = load_section(params, "train_pain").with_seed(seed)
        _check_outputs(out, metrics, plots, run_id, checkpoint)
        name = f"FreezeB{freeze_blocks}"
        with tracking.start_run("facetransfer", f"train-pain/{name}/seed{seed}", params=cfg.model_dump(mode="json"),
                                tags=_run_tags("train_pain", freeze_blocks=freeze_blocks, seed=seed),
                                system_metrics=True) as run, \
                epoch_reporter(f"train-pain {name} seed {seed}", cfg.epochs, run) as report:
            run.log_data_input(data, context="training")
            trained = stages.train_pain(source, data, freeze_blocks, cfg, checkpoint, on_epoch=report)
            numbers = _finish(trained, PAIN_CLASSES, out, metrics, plots, run_id, run, checkpoint)
    typer.echo(f"{name} seed {seed}: pain test macro recall {numbers['recall']['macro']:.3f}, accuracy {numbers['accuracy']:.3f}")


@app.command("retrain-emotion")
def retrain_emotion(source: SourceOption, data: DataOption, out: OutOption, metrics: MetricsOption,
                    plots: PlotsOption, run_id: RunIdOption, seed: SeedOption = 2022,
                    checkpoint: CheckpointOption = Path("checkpoints/retrain.pt"),
                    params: ParamsOption = Path("params.yaml")) -> None:
    """Freeze every conv block of a pain model and train a new emotion head (section `retrain_emotion`).

    How much emotion a pain model still knows; test predictions are saved for
    the forgetting analysis. With flip as the only augmentation the frozen
    features are computed once per image and mirror (exact, and much faster).
    """
    from facetransfer.training import stages

    with user_errors():
        cfg = load_section(params, "retrain_emotion").with_seed(seed)
        _check_outputs(out, metrics, plots, run_id, checkpoint)
        source_freeze = stages.load_model(source, stages.PAIN_MODEL)[1].get("freeze_blocks")
        name = f"FreezeB{source_freeze}"
        with tracking.start_run("facetransfer", f"retrain-emotion/{name}/seed{seed}", params=cfg.model_dump(mode="json"),
                                tags=_run_tags("retrain_emotion", freeze_blocks=source_freeze, seed=seed),
                                system_metrics=True) as run, \
                epoch_reporter(f"retrain-emotion {name} seed {seed}", cfg.epochs, run) as report:
            run.log_data_input(data, context="training")
            trained = stages.retrain_emotion(source, data, cfg, checkpoint, on_epoch=report)
            numbers = _finish(trained, EMOTIONS, out, metrics, plots, run_id, run, checkpoint)
    typer.echo(f"{name} seed {seed}: emotion test macro recall after retraining {numbers['recall']['macro']:.3f}")


@app.command("track-init")
def track_init() -> None:
    """Create the MLflow tracking store once (SQLite mlflow.db + mlruns/), before stages run in parallel."""
    with user_errors():
        tracking.init_store()
    typer.echo(f"MLflow store ready: {tracking.tracking_uri()}")
