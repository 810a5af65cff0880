"""`facetransfer attention-study`: pretrained vs scratch, with and without SE / CBAM (Arabian et al. 2022)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic


def _datasets(ckplus: Path, tests: list[Path]):
    import pandas as pd

    from facetransfer.analysis import attention as core
    from facetransfer.analysis.saliency import load_test_images

    groups = pd.read_csv(ckplus / "all.csv", usecols=["subject"])["subject"].to_numpy()
    train, groups = core.basic_subset(load_test_images(ckplus, "all"), groups)
    return train, groups, {path.name: core.basic_subset(load_test_images(path))[0] for path in tests}


@app.command("attention-study")
def attention_study(
    source: Annotated[Path, typer.Option(help="The emotion source model's model.pt (the pretrained init).")],
    ckplus: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder (all.csv, images, AU masks): train and in-domain test.")],
    test: Annotated[list[Path], typer.Option(help="Prepared folders whose test split measures cross-dataset accuracy (repeatable).")],
    out: Annotated[Path, typer.Option(help="Folder for accuracy.csv/.md, localisation.csv/.md, folds.csv and figures.")],
    metrics: Annotated[Path, typer.Option(help="JSON: mean / SD accuracy per model and dataset, DICE / IoU per model.")],
    run_ids: Annotated[Path, typer.Option(help="JSON: tracking_uri and runs, <init>/<attention>/fold<k> -> MLflow run id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Arabian et al. 2022 on the benchmark: VGG16, VGG16 + SE, VGG16 + CBAM (after conv blocks 2-4), each from
    scratch (Glorot) and from the emotion model's weights; k subject-disjoint folds on CK+ six-class peak frames;
    accuracy in-domain and on the other datasets (Table 2); Grad-CAM DICE / IoU against the class's AU regions."""
    import pandas as pd

    from facetransfer.analysis import attention as core
    from facetransfer.report.figures import accuracy_boxes
    from facetransfer.training.loop import resolve_device
    from facetransfer.training.stages import EMOTION_SOURCE, load_model

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_ids])  # before any work
        cfg = load_section(params, "attention_study")
        device = resolve_device(cfg.device)
        source_model, saved = load_model(source, EMOTION_SOURCE)
        arch = saved["arch"]
        train, groups, tests = _datasets(ckplus, test)
        splits = core.folds(train.labels, groups, cfg.folds, cfg.seed)
        results, runs = [], {}
        for init in cfg.inits:
            for attention in cfg.attentions:
                for fold, split in enumerate(splits):
                    name = f"{init}/{attention}/fold{fold}"
                    with tracking.start_run("facetransfer-attention", f"attention-study/{name}",
                                            params=cfg.model_dump(mode="json") | {"init": init, "attention": attention, "fold": fold},
                                            tags=tracking.run_tags("attention_study", Path.cwd(), init=init,
                                                                   attention=attention, fold=fold),
                                            system_metrics=True) as run:
                        run.log_data_input(ckplus, context="training")
                        result = core.run_fold(init, attention, fold, split, train, tests, _spec(arch),
                                               source_model.state_dict(), cfg, device)
                        for epoch, loss in enumerate(result.train_loss, start=1):
                            run.log_metrics({"train_loss": loss}, step=epoch)
                        run.log_metrics({f"accuracy_{d}": a for d, a in result.accuracy.items()}
                                        | {"dice": float(result.localisation["dice"].mean()),
                                           "iou": float(result.localisation["iou"].mean())})
                        runs[name] = run.run_id
                    results.append(result)
                    typer.echo(f"attention-study {name}: " + ", ".join(f"{d} {a:.3f}" for d, a in result.accuracy.items()),
                               err=True)
        accuracy = core.accuracy_table(results)
        places = core.localisation_table(results)
        per_fold = pd.DataFrame([{"init": r.init, "attention": r.attention, "fold": r.fold, **r.accuracy} for r in results])
        figure = accuracy_boxes(per_fold)
        with atomic_dir(out) as tmp:
            accuracy.to_csv(tmp / "accuracy.csv", index=False)
            (tmp / "accuracy.md").write_text(accuracy.to_markdown(index=False, floatfmt=".3f") + "\n")
            places.to_csv(tmp / "localisation.csv", index=False)
            (tmp / "localisation.md").write_text(places.to_markdown(index=False, floatfmt=".3f") + "\n")
            per_fold.to_csv(tmp / "folds.csv", index=False)
            figure.savefig(tmp / "accuracy.png", dpi=120)
        write_json_atomic(metrics, _summary(accuracy, places))
        write_json_atomic(run_ids, {"tracking_uri": tracking.tracking_uri(), "runs": runs})
    typer.echo(accuracy.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


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
