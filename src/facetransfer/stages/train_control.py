"""Stage `train-control` (and its `-seed`, `-negative`, `-negative-seed` variants): one planted-forgetting control
model (params section `controls`). The emotion model fine-tuned, every block, on a re-rendering of its data
without one AU (a positive control: that AU is known to be forgotten) or on its own data (a negative control:
nothing is), then its head retrained on the unmodified data as the pain models' heads are.

Reads   models/emotion/model.pt, controls/prepared/suppress_au<N>/affectnet (or prepared/affectnet), prepared/affectnet
Writes  OUTPUTS: models/controls/<name>/{fine_tuned.pt, model.pt, test_predictions.csv, head/},
        metrics/controls/<name>.json
Core    facetransfer.training.recipes.fine_tune_emotion, then recipes.retrain_emotion
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from facetransfer import launch, tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import ControlsConfig, load_section
from facetransfer.fsutil import check_outputs
from facetransfer.names import MODEL_FILE, PREDICTIONS_FILE
from facetransfer.stages._training import (
    CheckpointOption,
    DataOption,
    MetricsOption,
    OutOption,
    RunIdOption,
    SourceOption,
    epoch_reporter,
    finish,
    save_model,
    torchrun_if_asked,
    writes,
)
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("train-control", "train-control-seed", "train-control-negative", "train-control-negative-seed")
# The head's plot data go to <out>/head/ (a control has no plots/ folder of its own).
OUTPUTS = Outputs({"out": "models/controls/{name}", "metrics": "metrics/controls/{name}.json",
                   "run_id": "runs/controls/{name}.json", "checkpoint": "checkpoints/controls/{name}.pt"},
                  {"fine_tuned": ("out", "fine_tuned.pt"), "model": ("out", MODEL_FILE),
                   "predictions": ("out", PREDICTIONS_FILE)})


@dataclass(frozen=True)
class Plan:
    """Which control this command trains: its name and its fine-tuning settings (seed included)."""

    name: str
    fine_tune: object  # config.ControlFineTune


def plan(cfg: ControlsConfig, suppressed_au: int | None, negative: bool, seed: int | None) -> Plan:
    """The control's name and fine-tuning settings; a seed the params do not list is refused."""
    from facetransfer.analysis.control_names import NEGATIVE, control_name, negative_name, positive_seed_name

    if negative == (suppressed_au is not None):
        raise typer.BadParameter("give exactly one of --suppressed-au N and --negative", param_hint="--negative")
    allowed, field = ((cfg.extra_negative_seeds, "extra_negative_seeds") if negative
                      else (cfg.extra_positive_seeds, "extra_positive_seeds"))
    if seed is not None and seed not in allowed:
        raise typer.BadParameter(f"{seed} is not one of controls.{field} {list(allowed)}", param_hint="--seed")
    default_seed = cfg.negative_seed if negative else cfg.fine_tune.seed
    fine = cfg.fine_tune.model_copy(update={"seed": default_seed if seed is None else seed})
    if negative:
        return Plan(NEGATIVE if seed is None else negative_name(seed), fine)
    return Plan(control_name(suppressed_au) if seed is None else positive_seed_name(suppressed_au, seed), fine)


def _check_data(data: Path, heads_data: Path, au: int) -> None:
    import pandas as pd

    from facetransfer.analysis.controls import check_rerendered

    for folder in (data, heads_data):
        if not (folder / "index.csv").is_file():
            raise FileNotFoundError(f"{folder / 'index.csv'}: not found (run `facetransfer prepare` on it first)")
    check_rerendered(pd.read_csv(data / "index.csv"), pd.read_csv(heads_data / "index.csv"), au,
                     str(data / "index.csv"))


def run(cfg: ControlsConfig, chosen: Plan, source: Path, data: Path, heads_data: Path, fine_tuned: Path,
        checkpoint: Path | None = None, on_epoch=None):
    """Both steps; the fine-tuned model is saved to `fine_tuned` in between (step 2 reads it as a model file, as
    the pain models' heads read theirs). Returns the head-retrained model (recipes.Trained)."""
    from facetransfer.training import recipes

    # Step 1: the emotion model fine-tuned, every block, on --data.
    tuned = recipes.fine_tune_emotion(source, data, chosen.fine_tune, checkpoint, on_epoch=on_epoch)
    if writes():
        save_model(tuned.saved, fine_tuned, fine_tuned.with_suffix(".partial"))  # archive "fine_tuned/"
    if launch.current().distributed:
        from facetransfer.training import ddp

        ddp.barrier()  # every process reads the file rank 0 wrote
    typer.echo(f"{chosen.name}: fine-tuned (best epoch {tuned.saved['best_epoch']}); retraining the head", err=True)
    # Step 2: its head retrained on the unmodified data, as the pain models' heads are.
    return recipes.retrain_emotion(fine_tuned, heads_data, cfg.head, section="controls.head",
                                   source_stages=recipes.FINE_TUNED)


@app.command("train-control")
def train_control(
    source: SourceOption, data: DataOption, out: OutOption, metrics: MetricsOption, run_id: RunIdOption,
    heads_data: Annotated[Path, typer.Option(help="Unmodified prepared AffectNet(-like): the head is retrained and "
                                                  "tested on it.")],
    suppressed_au: Annotated[int | None, typer.Option(help="Positive control: --data is --heads-data re-rendered "
                                                           "without this AU.")] = None,
    negative: Annotated[bool, typer.Option(help="Negative control: --data unmodified, seed "
                                                "controls.negative_seed.")] = False,
    seed: Annotated[int | None, typer.Option(help="Another fine-tuning seed: with --negative one of "
                                                  "controls.extra_negative_seeds "
                                                  "(control negative_seed<s>), with --suppressed-au N one of "
                                                  "controls.extra_positive_seeds (control "
                                                  "suppress_au<N>_seed<s>).")] = None,
    checkpoint: CheckpointOption = Path("checkpoints/control.pt"),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fine-tune the emotion model (every block) on --data, then retrain its head on --heads-data (section `controls`).

    Writes fine_tuned.pt, model.pt (head retrained) and test_predictions.csv into --out.
    """
    from facetransfer.data.labels import EMOTIONS

    with user_errors():
        torchrun_if_asked(params)
        cfg = load_section(params, "controls")
        chosen = plan(cfg, suppressed_au, negative, seed)
        if not negative:
            _check_data(data, heads_data, suppressed_au)
        check_outputs(folders=[out, out / "head"], files=[metrics, run_id, checkpoint])
        tags = tracking.run_tags("train_control", Path.cwd(), control=chosen.name)
        with tracking.start_run("facetransfer", f"train-control/{chosen.name}", params=cfg.model_dump(mode="json"),
                                tags=tags, system_metrics=True) as logged, \
                epoch_reporter(f"fine-tune {chosen.name}", chosen.fine_tune.epochs, logged) as report:
            logged.log_data_input(data, context="training")
            logged.log_data_input(heads_data, context="head retraining")
            headed = run(cfg, chosen, source, data, heads_data, OUTPUTS.file("fine_tuned", out), checkpoint, report)
            if not writes():
                return  # rank 0 writes and logs
            numbers = finish(headed, EMOTIONS, out, metrics, out / "head", run_id, logged, checkpoint)
    typer.echo(f"{chosen.name}: emotion test macro recall after head retraining {numbers['recall']['macro']:.3f}")
