"""What the training stages (train-emotion, train-pain, retrain-emotion, train-control) share: their options,
the per-epoch progress line, and how a trained model is written (model.pt, test predictions, plot data, metrics,
its MLflow run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from facetransfer import launch, tracking
from facetransfer.cli.app import err_console
from facetransfer.fsutil import check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE, PREDICTIONS_FILE
from facetransfer.stages.outputs import Outputs

if TYPE_CHECKING:  # torch and the training code load only when a command runs: `--help` stays fast
    import pandas as pd

    from facetransfer.training.recipes import Trained

DataOption = Annotated[Path, typer.Option(help="Prepared dataset folder (from `facetransfer prepare`).")]
OutOption = Annotated[Path, typer.Option(help="Folder for model.pt and test predictions.")]
MetricsOption = Annotated[Path, typer.Option(help="Metrics JSON (DVC metrics).")]
PlotsOption = Annotated[Path, typer.Option(help="Folder for plot data: history.csv, confusion.csv (DVC plots).")]
RunIdOption = Annotated[Path, typer.Option(help="Small JSON with the MLflow run id (links dvc.lock and the run).")]
CheckpointOption = Annotated[Path, typer.Option(help="Per-epoch checkpoint; a rerun with the same config resumes from "
                                                     "it.")]
SourceOption = Annotated[Path, typer.Option(help="model.pt of the model to start from.")]

# The files every training stage writes into its --out and --plots folders.
MODEL_FILES = {"model": ("out", MODEL_FILE), "predictions": ("out", PREDICTIONS_FILE),
               "history": ("plots", "history.csv"), "confusion": ("plots", "confusion.csv")}


def training_outputs(**options: str) -> Outputs:
    """A training stage's OUTPUTS: its path options' defaults, and MODEL_FILES inside --out and --plots."""
    return Outputs(options, MODEL_FILES)


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


def save_model(saved: dict, path: Path, partial: Path | None = None) -> None:
    """torch.save through a temporary file (`partial`, default <name>.partial): a model file is either whole or
    absent. torch names the archive inside the file after the file it writes, so the temporary name is part of
    the file's bytes: the controls' fine_tuned.pt goes through fine_tuned.partial, as it always has."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial if partial is not None else path.with_name(path.name + ".partial")
    torch.save(saved, tmp)
    tmp.replace(path)


def _write_plots(trained: Trained, classes: tuple[str, ...], plots: Path) -> None:
    import pandas as pd

    plots.mkdir(parents=True, exist_ok=True)
    # Seconds per epoch go to MLflow only: plot data must not change when nothing else did.
    pd.DataFrame(trained.fit.history).drop(columns="seconds").to_csv(plots / MODEL_FILES["history"][1], index=False)
    predicted = trained.test_probs.argmax(1)
    confusion = pd.DataFrame({"actual": [classes[i] for i in trained.test_labels],
                              "predicted": [classes[i] for i in predicted]})
    confusion.to_csv(plots / MODEL_FILES["confusion"][1], index=False)


def _predictions(trained: Trained, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per test image: prepared row id, true and predicted class, class probabilities."""
    import pandas as pd

    frame = pd.DataFrame({"row": trained.test_rows, "label": trained.test_labels,
                          "predicted": trained.test_probs.argmax(1)})
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = trained.test_probs[:, k]
    return frame


def finish(trained: Trained, classes: tuple[str, ...], out: Path, metrics: Path, plots: Path,
           run_id: Path, run: tracking.RunLogger, checkpoint: Path) -> dict:
    """Write a trained model's files and log them; returns its test numbers (the paper's Table 1 layout)."""
    from facetransfer.training.recipes import classification_metrics

    numbers = classification_metrics(trained.test_labels, trained.test_probs, classes)
    numbers |= {key: trained.saved[key] for key in ("best_epoch", "epochs_run", "val_macro_recall", "train_dtype")}
    run.set_tags({"train_dtype": trained.saved["train_dtype"]})  # what `precision: auto` resolved to here
    save_model(trained.saved, out / MODEL_FILES["model"][1])
    predictions = _predictions(trained, classes)
    predictions.to_csv(out / MODEL_FILES["predictions"][1], index=False)
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


def check_training_outputs(out: Path, metrics: Path, plots: Path, run_id: Path, checkpoint: Path) -> None:
    """Every output of a training command can be written: checked before the training, not after it."""
    check_outputs(folders=[out, plots], files=[metrics, run_id, checkpoint])


def torchrun_if_asked(params: Path) -> None:
    """Rerun this command under torchrun when the params' `distributed` section asks for several processes
    (launch.relaunch_under_torchrun); under torchrun, or with one process asked for, go on here."""
    from facetransfer.config import load_section

    launch.relaunch_under_torchrun(load_section(params, "distributed"))


def writes() -> bool:
    """True in the process that writes the model and logs the run: all but rank 0 stop after training."""
    return launch.is_main()


def run_tags(stage: str, **extra) -> dict:
    return tracking.run_tags(stage, Path.cwd(), **extra)
