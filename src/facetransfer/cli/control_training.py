"""`facetransfer train-control`: one planted-forgetting control model (its own module: the training stages depend on it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.cli.train import (
    CheckpointOption,
    DataOption,
    MetricsOption,
    OutOption,
    RunIdOption,
    SourceOption,
    epoch_reporter,
)
from facetransfer.config import load_section
from facetransfer.fsutil import check_outputs


def _check_data(data: Path, heads_data: Path, au: int) -> None:
    import pandas as pd

    from facetransfer.analysis.controls import check_rerendered

    for folder in (data, heads_data):
        if not (folder / "index.csv").is_file():
            raise FileNotFoundError(f"{folder / 'index.csv'}: not found (run `facetransfer prepare` on it first)")
    check_rerendered(pd.read_csv(data / "index.csv"), pd.read_csv(heads_data / "index.csv"), au, str(data / "index.csv"))


@app.command("train-control")
def train_control(
    source: SourceOption, data: DataOption, out: OutOption, metrics: MetricsOption, run_id: RunIdOption,
    heads_data: Annotated[Path, typer.Option(help="Unmodified prepared AffectNet(-like): the head is retrained and tested on it.")],
    suppressed_au: Annotated[int | None, typer.Option(help="Positive control: --data is --heads-data re-rendered without this AU.")] = None,
    negative: Annotated[bool, typer.Option(help="Negative control: --data unmodified, seed controls.negative_seed.")] = False,
    seed: Annotated[int | None, typer.Option(help="Another fine-tuning seed: with --negative one of controls.extra_negative_seeds "
                                                  "(control negative_seed<s>), with --suppressed-au N one of "
                                                  "controls.extra_positive_seeds (control suppress_au<N>_seed<s>).")] = None,
    checkpoint: CheckpointOption = Path("checkpoints/control.pt"),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fine-tune the emotion model (every block) on --data, then retrain its head on --heads-data (section `controls`).

    Writes fine_tuned.pt, model.pt (head retrained) and test_predictions.csv into --out.
    """
    from facetransfer.analysis.controls import NEGATIVE, control_name, negative_name, positive_seed_name
    from facetransfer.cli.train import _finish
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.training import stages

    with user_errors():
        if negative == (suppressed_au is not None):
            raise typer.BadParameter("give exactly one of --suppressed-au N and --negative", param_hint="--negative")
        cfg = load_section(params, "controls")
        allowed, field = ((cfg.extra_negative_seeds, "extra_negative_seeds") if negative
                          else (cfg.extra_positive_seeds, "extra_positive_seeds"))
        if seed is not None and seed not in allowed:
            raise typer.BadParameter(f"{seed} is not one of controls.{field} {list(allowed)}", param_hint="--seed")
        default_seed = cfg.negative_seed if negative else cfg.fine_tune.seed
        fine = cfg.fine_tune.model_copy(update={"seed": default_seed if seed is None else seed})
        if negative:
            name = NEGATIVE if seed is None else negative_name(seed)
        else:
            name = control_name(suppressed_au) if seed is None else positive_seed_name(suppressed_au, seed)
        if not negative:
            _check_data(data, heads_data, suppressed_au)
        check_outputs(folders=[out, out / "head"], files=[metrics, run_id, checkpoint])
        tags = tracking.run_tags("train_control", Path.cwd(), control=name)
        with tracking.start_run("facetransfer", f"train-control/{name}", params=cfg.model_dump(mode="json"),
                                tags=tags, system_metrics=True) as run, \
                epoch_reporter(f"fine-tune {name}", fine.epochs, run) as report:
            run.log_data_input(data, context="training")
            run.log_data_input(heads_data, context="head retraining")
            tuned = stages.fine_tune_emotion(source, data, fine, checkpoint, on_epoch=report)
            out.mkdir(parents=True, exist_ok=True)
            _save(tuned.saved, out / "fine_tuned.pt")
            typer.echo(f"{name}: fine-tuned (best epoch {tuned.saved['best_epoch']}); retraining the head", err=True)
            headed = stages.retrain_emotion(out / "fine_tuned.pt", heads_data, cfg.head, section="controls.head",
                                             source_stages=("fine_tune_emotion",))
            numbers = _finish(headed, EMOTIONS, out, metrics, out / "head", run_id, run, checkpoint)
    typer.echo(f"{name}: emotion test macro recall after head retraining {numbers['recall']['macro']:.3f}")


def _save(saved: dict, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".partial")
    torch.save(saved, tmp)
    tmp.replace(path)
