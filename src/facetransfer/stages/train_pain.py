"""Stage `train-pain` (one per freeze block and seed): a copy of the emotion model fine-tuned to pain with its
first k conv blocks frozen (params section `train_pain`): FreezeB0..FreezeB5 of Prajod et al. 2022.

Reads   models/emotion/model.pt, prepared/unbc
Writes  OUTPUTS: models/pain/seed<s>/freeze<k>/{model.pt, test_predictions.csv}, metrics/by_seed/pain/...,
        plots/pain/...
Core    facetransfer.training.recipes.train_pain
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, SeedOption, app, user_errors
from facetransfer.config import TrainPainConfig, load_section
from facetransfer.names import freeze_label
from facetransfer.stages._training import (
    CheckpointOption,
    DataOption,
    MetricsOption,
    OutOption,
    PlotsOption,
    RunIdOption,
    SourceOption,
    check_training_outputs,
    epoch_reporter,
    finish,
    run_tags,
    torchrun_if_asked,
    training_outputs,
    writes,
)

DVC_STAGES = ("train-pain",)
OUTPUTS = training_outputs(out="models/pain/seed{seed}/freeze{freeze}",
                           metrics="metrics/by_seed/pain/seed{seed}/freeze{freeze}.json",
                           plots="plots/pain/seed{seed}/freeze{freeze}",
                           run_id="runs/pain/seed{seed}/freeze{freeze}.json",
                           checkpoint="checkpoints/pain/seed{seed}/freeze{freeze}.pt")

FreezeOption = Annotated[int, typer.Option(min=0, max=5, help="Conv blocks (from the input) frozen: "
                                                               "FreezeB0..FreezeB5.")]


def run(cfg: TrainPainConfig, source: Path, data: Path, freeze: int, checkpoint: Path | None = None, on_epoch=None):
    """The fine-tuned pain model and its test predictions (recipes.Trained)."""
    from facetransfer.training import recipes

    return recipes.train_pain(source, data, freeze, cfg, checkpoint, on_epoch=on_epoch)


@app.command("train-pain")
def train_pain(source: SourceOption, data: DataOption, freeze_blocks: FreezeOption, out: OutOption,
               metrics: MetricsOption, plots: PlotsOption, run_id: RunIdOption, seed: SeedOption = 2022,
               checkpoint: CheckpointOption = Path("checkpoints/pain.pt"),
               params: ParamsOption = Path("params.yaml")) -> None:
    """Fine-tune a copy of the emotion model to pain with the first k conv blocks frozen (section `train_pain`).

    Writes the paper's Table 1 numbers: accuracy and per-class + macro precision, recall, F1.
    """
    from facetransfer.data.labels import PAIN_CLASSES

    with user_errors():
        torchrun_if_asked(params)
        cfg = load_section(params, "train_pain").with_seed(seed)
        check_training_outputs(out, metrics, plots, run_id, checkpoint)
        name = freeze_label(freeze_blocks)
        with tracking.start_run("facetransfer", f"train-pain/{name}/seed{seed}", params=cfg.model_dump(mode="json"),
                                tags=run_tags("train_pain", freeze_blocks=freeze_blocks, seed=seed),
                                system_metrics=True) as logged, \
                epoch_reporter(f"train-pain {name} seed {seed}", cfg.epochs, logged) as report:
            logged.log_data_input(data, context="training")
            trained = run(cfg, source, data, freeze_blocks, checkpoint, on_epoch=report)
            if not writes():
                return  # rank 0 writes and logs
            numbers = finish(trained, PAIN_CLASSES, out, metrics, plots, run_id, logged, checkpoint)
    typer.echo(f"{name} seed {seed}: pain test macro recall {numbers['recall']['macro']:.3f}, "
               f"accuracy {numbers['accuracy']:.3f}")
