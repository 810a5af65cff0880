"""Stage `mask`: relevance-based data masking (Schiller et al. 2020): masked copies of a dataset, versioned by DVC,
from the trainer's LRP maps.

LRP of the trainer's prediction for every image of the split, then negative (top 10 % relevance dropped), mean
(below-mean dropped) and perceptive (gaze-like heatmap around the most relevant pixels) masks, applied as I * M.

Reads   models/emotion/model.pt (the trainer), prepared/ferplus
Writes  OUTPUTS: masked/<method>/{images.npy, keep.npy, <split>.csv, meta.json, sample.png}, metrics/masking.json
Core    facetransfer.masking (masks.py: the three masks; dataset.py: relevance and application)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import MaskConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, load_array, write_json_atomic
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("mask",)
# One folder per method (masking.METHODS) under --out; its image list is named after the masked split.
OUTPUTS = Outputs({"out": "masked", "metrics": "metrics/masking.json"},
                  {"images": ("out", "{method}/images.npy"), "keep": ("out", "{method}/keep.npy"),
                   "meta": ("out", "{method}/meta.json"), "sample": ("out", "{method}/sample.png")})


@dataclass
class Result:
    summary: dict  # metrics/masking.json
    keep: dict  # method -> (N, H, W) bool keep-masks (the masked images are made as they are written: N x 3 bytes
    # per pixel and method would not fit at paper scale)
    figures: dict  # method -> sample sheet
    seconds: float  # LRP and masking time (to MLflow and the console, not the deterministic metrics)


def run(cfg: MaskConfig, model, images, labels, device) -> Result:
    """LRP of the trainer on every image, the three keep-masks, the masked images and a sample sheet each."""
    import numpy as np

    from facetransfer.masking import dataset as core
    from facetransfer.report.figures import mask_sheet

    start = time.perf_counter()
    relevance, predicted = core.trainer_relevance(model, images, cfg, device)
    keep = core.keep_masks(relevance, cfg)
    seconds = time.perf_counter() - start
    summary = {"images": len(images), "split": cfg.split,
               "trainer_accuracy": float(np.mean(predicted == labels)) if len(images) else None,
               "kept_fraction": {m: float(k.mean()) if k.size else None for m, k in keep.items()}}
    shown = slice(0, cfg.sample_images)
    figures = {method: mask_sheet(images[shown], mask_[shown], core.apply_mask(images[shown], mask_[shown]),
                                  f"{method} masking ({summary['kept_fraction'][method]:.0%} of pixels kept)")
               for method, mask_ in keep.items()}
    return Result(summary, keep, figures, seconds)


def write(result: Result, cfg: MaskConfig, images, table, data: Path, trainer: Path, out: Path,
          metrics: Path) -> None:
    """One dataset per method: the masked images (I * M), the packed keep-masks, the image list, meta.json, a
    sample sheet."""
    import numpy as np

    from facetransfer.masking.dataset import apply_mask

    for method, mask_ in result.keep.items():
        with atomic_dir(out / method) as tmp:
            np.save(tmp / Path(OUTPUTS.name("images", method=method)).name, apply_mask(images, mask_))
            np.save(tmp / Path(OUTPUTS.name("keep", method=method)).name, np.packbits(mask_, axis=-1))
            rows = table.drop(columns=["row"]).assign(row=np.arange(len(table)), source_row=table["row"])
            rows.to_csv(tmp / f"{cfg.split}.csv", index=False)
            write_json_atomic(tmp / Path(OUTPUTS.name("meta", method=method)).name,
                              {"method": method, "source": str(data), "trainer": str(trainer),
                               "config": cfg.model_dump(mode="json"), "fwhm_px": cfg.perceptive.fwhm_px,
                               "kept_fraction": result.summary["kept_fraction"][method]})
            result.figures[method].savefig(tmp / Path(OUTPUTS.name("sample", method=method)).name, dpi=100)
    write_json_atomic(metrics, result.summary)


def _inputs(cfg: MaskConfig, trainer: Path, data: Path) -> tuple[Any, Any]:
    """The split's image list and its images (N, H, W, 3) uint8; a missing file is named."""
    import numpy as np
    import pandas as pd

    table_path = data / f"{cfg.split}.csv"
    for path in (trainer, table_path, data / "images.npy"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run train-emotion and prepare first)")
    table = pd.read_csv(table_path)
    return table, load_array(data / "images.npy")[table["row"].to_numpy(np.int64)]


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
    from facetransfer.training.loop import resolve_device
    from facetransfer.training.recipes import EMOTION_CLASSIFIER, load_model

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg = load_section(params, "mask")
        table, images = _inputs(cfg, trainer, data)
        model = load_model(trainer, EMOTION_CLASSIFIER)[0]
        result = run(cfg, model, images, table["label"].to_numpy(), resolve_device(cfg.device))
        write(result, cfg, images, table, data, trainer, out, metrics)
        rate = len(images) / result.seconds if result.seconds else 0.0
        with tracking.start_run("facetransfer", "mask", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("mask", Path.cwd())) as logged:
            logged.log_dict(result.summary, "masking.json")
            for method, figure in result.figures.items():
                logged.log_figure(figure, f"{method}_sample.png")
            logged.log_metrics({f"kept_fraction_{m}": v for m, v in result.summary["kept_fraction"].items()
                                if v is not None} | {"images_per_second": rate, "seconds": result.seconds})
            tracking.write_run_id(run_id, logged.run_id)
    typer.echo(f"masked {len(images)} images in {result.seconds:.1f} s ({rate:.0f} images/s incl. LRP); "
               + ", ".join(f"{m} keeps {v:.0%}" for m, v in result.summary["kept_fraction"].items() if v is not None))
