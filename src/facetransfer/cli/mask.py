"""`facetransfer mask`: masked copies of a dataset, versioned by DVC, from the trainer's LRP maps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, check_outputs, load_array, write_json_atomic


@app.command()
def mask(
    trainer: Annotated[Path, typer.Option(help="The trainer's model.pt (the emotion source model).")],
    data: Annotated[Path, typer.Option(help="Prepared dataset to mask (FER+-like): <split>.csv, images.npy.")],
    out: Annotated[Path, typer.Option(help="Folder for masked/{negative,mean,perceptive}/ (one dataset each).")],
    metrics: Annotated[Path, typer.Option(help="metrics/masking.json: kept fraction per method, trainer accuracy.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Relevance-based data masking (Schiller et al. 2020): LRP of the trainer's prediction for every image of the
    split, then negative (top 10 % relevance dropped), mean (below-mean dropped) and perceptive (gaze-like heatmap
    around the most relevant pixels) masks, applied as I * M. Each method's dataset gets images.npy, keep.npy
    (packed bits), <split>.csv, meta.json and a sample sheet."""
    import numpy as np
    import pandas as pd

    from facetransfer.masking import dataset as core
    from facetransfer.report.figures import mask_sheet
    from facetransfer.training.loop import resolve_device
    from facetransfer.training.stages import EMOTION_CLASSIFIER, load_model

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg = load_section(params, "mask")
        table_path = data / f"{cfg.split}.csv"
        for path in (trainer, table_path, data / "images.npy"):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run train-emotion and prepare first)")
        table = pd.read_csv(table_path)
        images = load_array(data / "images.npy")[table["row"].to_numpy(np.int64)]
        model = load_model(trainer, EMOTION_CLASSIFIER)[0]
        start = time.perf_counter()
        relevance, predicted = core.trainer_relevance(model, images, cfg, resolve_device(cfg.device))
        keep = core.keep_masks(relevance, cfg)
        seconds = time.perf_counter() - start
        rate = len(images) / seconds if seconds else 0.0  # to MLflow and the console, not the (deterministic) metrics
        summary = {"images": len(images), "split": cfg.split,
                   "trainer_accuracy": float(np.mean(predicted == table["label"].to_numpy())) if len(images) else None,
                   "kept_fraction": {m: float(k.mean()) if k.size else None for m, k in keep.items()}}
        figures = {}
        for method, mask_ in keep.items():
            masked = core.apply_mask(images, mask_)
            shown = slice(0, cfg.sample_images)
            figures[method] = mask_sheet(images[shown], mask_[shown], masked[shown],
                                         f"{method} masking ({summary['kept_fraction'][method]:.0%} of pixels kept)")
            with atomic_dir(out / method) as tmp:
                np.save(tmp / "images.npy", masked)
                np.save(tmp / "keep.npy", np.packbits(mask_, axis=-1))
                rows = table.drop(columns=["row"]).assign(row=np.arange(len(table)), source_row=table["row"])
                rows.to_csv(tmp / f"{cfg.split}.csv", index=False)
                write_json_atomic(tmp / "meta.json", {"method": method, "source": str(data), "trainer": str(trainer),
                                                      "config": cfg.model_dump(mode="json"),
                                                      "fwhm_px": cfg.perceptive.fwhm_px,
                                                      "kept_fraction": summary["kept_fraction"][method]})
                figures[method].savefig(tmp / "sample.png", dpi=100)
        write_json_atomic(metrics, summary)
        with tracking.start_run("facetransfer", "mask", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("mask", Path.cwd())) as run:
            run.log_dict(summary, "masking.json")
            for method, figure in figures.items():
                run.log_figure(figure, f"{method}_sample.png")
            run.log_metrics({f"kept_fraction_{m}": v for m, v in summary["kept_fraction"].items() if v is not None}
                            | {"images_per_second": rate, "seconds": seconds})
            tracking.write_run_id(run_id, run.run_id)
    typer.echo(f"masked {len(images)} images in {seconds:.1f} s ({rate:.0f} images/s incl. LRP); "
               + ", ".join(f"{m} keeps {v:.0%}" for m, v in summary["kept_fraction"].items() if v is not None))
