"""Stage `retrain-emotion` (one per pain model): every conv block of a pain model frozen, a new 8-class head
trained on emotions (params section `retrain_emotion`): how much emotion the pain model still knows.

Reads   models/pain/seed<s>/freeze<k>/model.pt, prepared/affectnet
Writes  OUTPUTS: models/retrain/seed<s>/freeze<k>/{model.pt, test_predictions.csv} (read by forgetting, saliency,
        necessity), metrics/by_seed/retrain/..., plots/retrain/...
Core    facetransfer.training.recipes.retrain_emotion (frozen features cached once per image and mirror when
        flip is the only augmentation: exact, and much faster)
"""

from __future__ import annotations

from pathlib import Path

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, SeedOption, app, user_errors
from facetransfer.config import RetrainEmotionConfig, load_section
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

DVC_STAGES = ("retrain-emotion",)
OUTPUTS = training_outputs(out="models/retrain/seed{seed}/freeze{freeze}",
                           metrics="metrics/by_seed/retrain/seed{seed}/freeze{freeze}.json",
                           plots="plots/retrain/seed{seed}/freeze{freeze}",
                           run_id="runs/retrain/seed{seed}/freeze{freeze}.json",
                           checkpoint="checkpoints/retrain/seed{seed}/freeze{freeze}.pt")


def run(cfg: RetrainEmotionConfig, source: Path, data: Path, checkpoint: Path | None = None, on_epoch=None):
    """The pain model with its new emotion head, and the head's test predictions (recipes.Trained)."""
    from facetransfer.training import recipes

    return recipes.retrain_emotion(source, data, cfg, checkpoint, on_epoch=on_epoch)


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
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.training.recipes import PAIN_MODEL, load_model

    with user_errors():
        torchrun_if_asked(params)
        cfg = load_section(params, "retrain_emotion").with_seed(seed)
        check_training_outputs(out, metrics, plots, run_id, checkpoint)
        source_freeze = load_model(source, PAIN_MODEL)[1].get("freeze_blocks")
        name = freeze_label(source_freeze)
        with tracking.start_run("facetransfer", f"retrain-emotion/{name}/seed{seed}",
                                params=cfg.model_dump(mode="json"),
                                tags=run_tags("retrain_emotion", freeze_blocks=source_freeze, seed=seed),
                                system_metrics=True) as logged, \
                epoch_reporter(f"retrain-emotion {name} seed {seed}", cfg.epochs, logged) as report:
            logged.log_data_input(data, context="training")
            trained = run(cfg, source, data, checkpoint, on_epoch=report)
            if not writes():
                return  # rank 0 writes and logs
            numbers = finish(trained, EMOTIONS, out, metrics, plots, run_id, logged, checkpoint)
    typer.echo(f"{name} seed {seed}: emotion test macro recall after retraining {numbers['recall']['macro']:.3f}")
