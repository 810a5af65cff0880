"""Stage `attention-study` (Arabian et al. 2022): pretrained vs scratch, with and without SE / CBAM.

VGG16, VGG16 + SE, VGG16 + CBAM (after conv blocks 2-4), each from scratch (Glorot) and from the emotion model's
weights; k subject-disjoint folds on CK+ six-class peak frames; accuracy in-domain and on the other datasets
(Table 2); Grad-CAM DICE / IoU against the class's AU regions. One MLflow run per (init, attention, fold).

Reads   models/emotion/model.pt, prepared/ckplus (train and in-domain test), prepared/ferplus and prepared/affectnet
        (cross-dataset test)
Writes  OUTPUTS: reports/attention/{accuracy.csv/.md, localisation.csv/.md, folds.csv, accuracy.png},
        metrics/attention.json, runs/attention.json (every fold's run id)
Core    facetransfer.analysis.attention, facetransfer.models.attention
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import AttentionStudyConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("attention-study",)
OUTPUTS = Outputs({"out": "reports/attention", "metrics": "metrics/attention.json", "run_ids": "runs/attention.json"},
                  {"accuracy": ("out", "accuracy.csv"), "accuracy_md": ("out", "accuracy.md"),
                   "localisation": ("out", "localisation.csv"), "localisation_md": ("out", "localisation.md"),
                   "folds": ("out", "folds.csv"), "figure": ("out", "accuracy.png")})


@dataclass
class Result:
    accuracy: Any  # DataFrame: mean / SD accuracy per init, attention and dataset
    places: Any  # DataFrame: Grad-CAM DICE / IoU per image
    per_fold: Any  # DataFrame: accuracy per fold
    figure: Any
    runs: dict  # <init>/<attention>/fold<k> -> MLflow run id


def _datasets(ckplus: Path, tests: list[Path]):
    import pandas as pd

    from facetransfer.analysis import attention as core
    from facetransfer.analysis.saliency import load_test_images

    groups = pd.read_csv(ckplus / "all.csv", usecols=["subject"])["subject"].to_numpy()
    train, groups = core.basic_subset(load_test_images(ckplus, "all"), groups)
    return train, groups, {path.name: core.basic_subset(load_test_images(path))[0] for path in tests}


def _fold(cfg: AttentionStudyConfig, init: str, attention: str, fold: int, split, train, tests, ckplus: Path,
          arch: dict, source_state: dict, device):
    """One (init, attention, fold): trained and scored in its own MLflow run; returns (result, run id)."""
    from facetransfer.analysis import attention as core

    name = f"{init}/{attention}/fold{fold}"
    with tracking.start_run("facetransfer-attention", f"attention-study/{name}",
                            params=cfg.model_dump(mode="json") | {"init": init, "attention": attention, "fold": fold},
                            tags=tracking.run_tags("attention_study", Path.cwd(), init=init, attention=attention,
                                                   fold=fold),
                            system_metrics=True) as logged:
        logged.log_data_input(ckplus, context="training")
        result = core.run_fold(init, attention, fold, split, train, tests, _spec(arch), source_state, cfg, device)
        for epoch, loss in enumerate(result.train_loss, start=1):
            logged.log_metrics({"train_loss": loss}, step=epoch)
        logged.log_metrics({f"accuracy_{d}": a for d, a in result.accuracy.items()}
                           | {"dice": float(result.localisation["dice"].mean()),
                              "iou": float(result.localisation["iou"].mean())})
    typer.echo(f"attention-study {name}: " + ", ".join(f"{d} {a:.3f}" for d, a in result.accuracy.items()), err=True)
    return result, logged.run_id


def run(cfg: AttentionStudyConfig, source: Path, ckplus: Path, tests: list[Path], device) -> Result:
    """Every init x attention x fold trained and scored; the accuracy and localisation tables."""
    import pandas as pd

    from facetransfer.analysis import attention as core
    from facetransfer.report.figures import accuracy_boxes
    from facetransfer.training.recipes import EMOTION_SOURCE, load_model

    source_model, saved = load_model(source, EMOTION_SOURCE)
    train, groups, test_sets = _datasets(ckplus, tests)
    splits = core.folds(train.labels, groups, cfg.folds, cfg.seed)
    results, runs = [], {}
    for init in cfg.inits:
        for attention in cfg.attentions:
            for fold, split in enumerate(splits):
                result, runs[f"{init}/{attention}/fold{fold}"] = _fold(
                    cfg, init, attention, fold, split, train, test_sets, ckplus, saved["arch"],
                    source_model.state_dict(), device)
                results.append(result)
    per_fold = pd.DataFrame([{"init": r.init, "attention": r.attention, "fold": r.fold, **r.accuracy}
                             for r in results])
    return Result(core.accuracy_table(results), core.localisation_table(results), per_fold,
                  accuracy_boxes(per_fold), runs)


def write(result: Result, out: Path, metrics: Path, run_ids: Path) -> None:
    with atomic_dir(out) as tmp:
        result.accuracy.to_csv(tmp / OUTPUTS.name("accuracy"), index=False)
        (tmp / OUTPUTS.name("accuracy_md")).write_text(result.accuracy.to_markdown(index=False, floatfmt=".3f") + "\n")
        result.places.to_csv(tmp / OUTPUTS.name("localisation"), index=False)
        (tmp / OUTPUTS.name("localisation_md")).write_text(
            result.places.to_markdown(index=False, floatfmt=".3f") + "\n")
        result.per_fold.to_csv(tmp / OUTPUTS.name("folds"), index=False)
        result.figure.savefig(tmp / OUTPUTS.name("figure"), dpi=120)
    write_json_atomic(metrics, _summary(result.accuracy, result.places))
    write_json_atomic(run_ids, {"tracking_uri": tracking.tracking_uri(), "runs": result.runs})


@app.command("attention-study")
def attention_study(
    source: Annotated[Path, typer.Option(help="The emotion source model's model.pt (the pretrained init).")],
    ckplus: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder (all.csv, images, AU masks): train and "
                                              "in-domain test.")],
    test: Annotated[list[Path], typer.Option(help="Prepared folders whose test split measures cross-dataset accuracy "
                                                  "(repeatable).")],
    out: Annotated[Path, typer.Option(help="Folder for accuracy.csv/.md, localisation.csv/.md, folds.csv and "
                                           "figures.")],
    metrics: Annotated[Path, typer.Option(help="JSON: mean / SD accuracy per model and dataset, DICE / IoU per "
                                               "model.")],
    run_ids: Annotated[Path, typer.Option(help="JSON: tracking_uri and runs, <init>/<attention>/fold<k> -> MLflow run "
                                               "id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Arabian et al. 2022 on the benchmark: VGG16, VGG16 + SE, VGG16 + CBAM (after conv blocks 2-4), each from
    scratch (Glorot) and from the emotion model's weights; k subject-disjoint folds on CK+ six-class peak frames;
    accuracy in-domain and on the other datasets (Table 2); Grad-CAM DICE / IoU against the class's AU regions."""
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_ids])  # before any work
        cfg = load_section(params, "attention_study")
        result = run(cfg, source, ckplus, test, resolve_device(cfg.device))
        write(result, out, metrics, run_ids)
    typer.echo(result.accuracy.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _spec(arch: dict):
    from facetransfer.config import ModelSpec

    return ModelSpec(**arch)


def _summary(accuracy, places) -> dict:
    """{"<init>/<attention>": {"accuracy": {dataset: {mean, sd}}, "dice": ..., "iou": ...}} for `dvc metrics show`."""
    out: dict[str, dict] = {}
    for row in accuracy.itertuples():
        out.setdefault(f"{row.init}/{row.attention}", {"accuracy": {}})["accuracy"][row.dataset] = {
            "mean": float(row.mean), "sd": float(row.sd)}
    for (init, attention), group in places.groupby(["init", "attention"], sort=False):
        out[f"{init}/{attention}"] |= {"dice": float(group["dice"].mean()), "iou": float(group["iou"].mean())}
    return out
