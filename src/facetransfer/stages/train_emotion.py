"""Stage `train-emotion`: the source model, VGG16 trained on 8 emotions (params section `train_emotion`).

Reads   prepared/affectnet (train/val/test lists, images.npy)
Writes  OUTPUTS: models/emotion/{model.pt, test_predictions.csv}, metrics/emotion.json, plots/emotion/
Core    facetransfer.training.recipes.train_emotion (focal loss, class-balanced weights, SGD, best validation epoch)
"""

from __future__ import annotations

from pathlib import Path

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import TrainEmotionConfig, load_section
from facetransfer.stages._training import (
    CheckpointOption,
    DataOption,
    MetricsOption,
    OutOption,
    PlotsOption,
    RunIdOption,
    check_training_outputs,
    epoch_reporter,
    finish,
    run_tags,
    torchrun_if_asked,
    training_outputs,
    writes,
)

DVC_STAGES = ("train-emotion",)
OUTPUTS = training_outputs(out="models/emotion", metrics="metrics/emotion.json", plots="plots/emotion",
                           run_id="runs/emotion.json", checkpoint="checkpoints/emotion.pt")


def run(cfg: TrainEmotionConfig, data: Path, checkpoint: Path | None = None, on_epoch=None):
    """The trained source model and its test predictions (recipes.Trained); nothing written but the checkpoint."""
    from facetransfer.training import recipes

    return recipes.train_emotion(data, cfg, checkpoint, on_epoch=on_epoch)


@app.command("train-emotion")
def train_emotion(data: DataOption, out: OutOption, metrics: MetricsOption, plots: PlotsOption,
                  run_id: RunIdOption, checkpoint: CheckpointOption = Path("checkpoints/emotion.pt"),
                  params: ParamsOption = Path("params.yaml")) -> None:
    """Train the source model: VGG16 on 8 emotions (section `train_emotion`).

    Focal loss (gamma) with class-balanced weights (beta), SGD, horizontal flip;
    the epoch with the best validation macro recall is kept.
    """
    from facetransfer.data.labels import EMOTIONS

    with user_errors():
        torchrun_if_asked(params)
        cfg = load_section(params, "train_emotion")
        check_training_outputs(out, metrics, plots, run_id, checkpoint)
        with tracking.start_run("facetransfer", "train-emotion", params=cfg.model_dump(mode="json"),
                                tags=run_tags("train_emotion", freeze_blocks="none"), system_metrics=True) as logged, \
                epoch_reporter("train-emotion", cfg.epochs, logged) as report:
            logged.log_data_input(data, context="training")
            trained = run(cfg, data, checkpoint, on_epoch=report)
            if not writes():
                return  # rank 0 writes and logs
            numbers = finish(trained, EMOTIONS, out, metrics, plots, run_id, logged, checkpoint)
    typer.echo(f"emotion test macro recall {numbers['recall']['macro']:.3f} (best epoch {numbers['best_epoch']})")

