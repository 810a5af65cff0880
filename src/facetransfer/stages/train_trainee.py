"""Stage `train-trainee` (one per seed): the RBDM trainee variants of Schiller et al. 2020, trained from scratch
(`trainee.model`: torchvision's ResNet-10 by default, or the paper's MobileNetV2) on plain images, on masked
images, or on masked images for `switch_epoch` epochs and plain ones after; validated on plain images.

Reads   prepared/ferplus (train/val), masked/<method>/ (the mask stage)
Writes  OUTPUTS: models/trainee/seed<s>/<variant>/model.pt, metrics/trainee/seed<s>/<variant>.json (curve
        summary), plots/trainee/seed<s>/<variant>/{history.csv, confusion.csv}, runs/trainee/seed<s>/<variant>.json
Core    facetransfer.masking.trainee (variants side by side, `trainee.workers` processes)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, SeedOption, app, user_errors
from facetransfer.config import ConfigError, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("train-trainee",)
# Each variant's files, inside the seed's folders (a variant's summary and run id are <variant>.json).
OUTPUTS = Outputs({"out": "models/trainee/seed{seed}", "metrics": "metrics/trainee/seed{seed}",
                   "plots": "plots/trainee/seed{seed}", "run_id": "runs/trainee/seed{seed}"},
                  {"model": ("out", "{variant}/" + MODEL_FILE), "summary": ("metrics", "{variant}.json"),
                   "history": ("plots", "{variant}/history.csv"), "confusion": ("plots", "{variant}/confusion.csv"),
                   "run": ("run_id", "{variant}.json"), "stage_run": ("run_id", "train-trainee.json")})


def run(cfg, names: list[str], data: Path, masked: Path, on_done) -> None:
    """Train the variants `names` (masking.trainee.train_variants); each finished one goes to `on_done`."""
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.masking import trainee as core

    core.train_variants(names, data, masked, len(EMOTIONS), cfg, cfg.workers, on_done=on_done)


@app.command("train-trainee")
def train_trainee(
    data: Annotated[Path, typer.Option(help="Prepared FER+(-like) folder: train.csv, val.csv, images.npy.")],
    masked: Annotated[Path, typer.Option(help="Folder with the mask stage's {negative,mean,perceptive}/ datasets.")],
    out: Annotated[Path, typer.Option(help="Folder for <variant>/model.pt.")],
    metrics: Annotated[Path, typer.Option(help="Folder for <variant>.json: final / best F1, steps to the target F1, "
                                               "area under the curve.")],
    plots: Annotated[Path, typer.Option(help="Folder for <variant>/history.csv (per epoch) and "
                                             "<variant>/confusion.csv (validation).")],
    run_id: Annotated[Path, typer.Option(help="Folder for <variant>.json, each variant's MLflow run id.")],
    variant: Annotated[list[str] | None, typer.Option(help="Train only this variant (repeatable); default: every one "
                                                           "of trainee.variants.")] = None,
    seed: SeedOption = 2022,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train the trainee variants of Schiller et al. 2020 from scratch (`trainee.model`: torchvision's ResNet-10 by
    default, or the paper's MobileNetV2) on plain images, on masked images, or on masked images for `switch_epoch`
    epochs and plain ones after; validated on plain images.
    `trainee.workers` variants train side by side, each on `trainee.threads` torch threads (masking/trainee.py)."""
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.masking import trainee as core

    with user_errors():
        cfg = load_section(params, "trainee").with_seed(seed)
        known = core.variants(cfg.switch_epoch)
        names = list(variant or cfg.variants)
        for name in names:
            if name not in known:
                raise ConfigError(f"--variant {name!r}: expected one of {', '.join(known)}")
        check_outputs(folders=[out, metrics, plots, run_id])
        methods = sorted({known[name].masked for name in names if known[name].masked})
        # A missing or mismatched input fails here, before any training; the validation labels serve every variant.
        val_labels = core.load_inputs(data, masked, methods).val_labels
        with tracking.start_run("facetransfer", f"train-trainee/seed{seed}", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("train_trainee", Path.cwd(), variants=",".join(names),
                                                       seed=seed),
                                system_metrics=True) as logged:
            logged.log_data_input(data, context="training")
            for method in methods:
                logged.log_data_input(masked / method, context="training")

            def save(result: core.TraineeResult) -> None:
                _save_variant(result, known[result.name], data, masked, val_labels, out, metrics, plots, run_id, cfg,
                              list(EMOTIONS))

            run(cfg, names, data, masked, on_done=save)
            # the stage's own run, beside its variants'
            tracking.write_run_id(run_id / OUTPUTS.name("stage_run"), logged.run_id)


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
        torch.save({"format": "facetransfer.trainee/2", "variant": name, "model": cfg.model.model_dump(),
                    "classes": classes, "state_dict": result.state.model, "config": cfg.model_dump(mode="json")},
                   tmp / MODEL_FILE)
    with atomic_dir(plots / name) as tmp:  # the variant's folder: {variant}/history.csv, {variant}/confusion.csv
        pd.DataFrame(history).to_csv(tmp / Path(OUTPUTS.name("history", variant=name)).name, index=False)
        confusion.to_csv(tmp / Path(OUTPUTS.name("confusion", variant=name)).name, index=False)
    write_json_atomic(OUTPUTS.file("summary", metrics, variant=name), summary)
    with tracking.start_run("facetransfer", f"train-trainee/seed{cfg.seed}/{name}", params=cfg.model_dump(mode="json"),
                            tags=tracking.run_tags("train_trainee", Path.cwd(), variant=name, seed=cfg.seed),
                            nested=True) as logged:
        plain_trains = chosen.masked is None or chosen.switch_epoch is not None
        logged.log_data_input(data, context="training" if plain_trains else "validation")
        if chosen.masked:
            logged.log_data_input(masked / chosen.masked, context="training")
        for record in history:
            logged.log_metrics({k: v for k, v in record.items() if k not in ("images", "step")}, step=record["step"])
        logged.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
        logged.log_table(pd.DataFrame(history), "history.json")
        tracking.write_run_id(OUTPUTS.file("run", run_ids, variant=name), logged.run_id)
    steps = summary["steps_to_target"]
    typer.echo(f"{name} seed {cfg.seed}: final val macro F1 {summary['final_f1']:.3f}, AUC {summary['auc']:.3f}, "
               f"steps to F1 {cfg.target_f1}: {steps if steps is not None else 'not reached'}")
