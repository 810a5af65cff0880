"""Stage `cka`: how far each model's representation moved from the source model's, block by block (linear CKA
at every conv block's output, on the same test images).

Reads   models/emotion/model.pt, models/pain/seed<s>/freeze<k>/model.pt (every seed), models/controls/<name>/
        model.pt, prepared/affectnet (test images)
Writes  OUTPUTS: reports/cka/{cka.csv, cka.png}, metrics/cka.json
Core    facetransfer.analysis.cka
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import CkaConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE, freeze_name, sweep_model
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("cka",)
OUTPUTS = Outputs({"out": "reports/cka", "metrics": "metrics/cka.json"},
                  {"table": ("out", "cka.csv"), "figure": ("out", "cka.png")})


@dataclass
class Result:
    table: Any  # DataFrame: model, seed, block, cka
    summary: dict  # metrics/cka.json: model -> block<b> -> mean, interval, n_seeds
    figure: Any


def _model_files(pain: Path, controls: Path | None, seeds: tuple[int, ...], blocks: tuple[int, ...],
                 control_names: list[str]) -> list[tuple[str, int | None, Path]]:
    """(model name, seed or None, model.pt) of every compared model; a missing file is named."""
    files = [(freeze_name(k), s, sweep_model(pain, s, k)) for s in seeds for k in blocks]
    if controls is not None:
        files += [(name, None, controls / name / MODEL_FILE) for name in control_names]
    for _, _, path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the stage that trains it first, or check study.seeds)")
    return files


def run(cfg: CkaConfig, source: Path, files: list[tuple[str, int | None, Path]], data: Path, device: str) -> Result:
    """CKA of every model in `files` with the source model, block by block; frozen blocks checked to give 1."""
    import pandas as pd

    from facetransfer.analysis import cka as core
    from facetransfer.report.figures import cka_lines
    from facetransfer.training.recipes import EMOTION_HEAD, EMOTION_SOURCE, PAIN_MODEL, load_model

    images = _test_images(data, cfg.max_images)
    reference = core.block_outputs(load_model(source, EMOTION_SOURCE)[0], images, cfg.batch_size, device)
    rows = []
    for i, (name, seed, path) in enumerate(files, 1):
        model, saved = load_model(path, PAIN_MODEL if name.startswith("freeze") else EMOTION_HEAD)  # or a control
        frozen = saved.get("freeze_blocks") or 0  # controls fine-tune every block: 0
        values = core.cka_by_block(reference, core.block_outputs(model, images, cfg.batch_size, device), frozen,
                                   str(path))
        rows += [{"model": name, "seed": seed, "block": b, "cka": v} for b, v in enumerate(values, 1)]
        typer.echo(f"cka: {i}/{len(files)} {name}{f' seed {seed}' if seed is not None else ''}: "
                   + " ".join(f"{v:.3f}" for v in values), err=True)
    table = pd.DataFrame(rows)
    summary = core.summarise(table, cfg.confidence)
    return Result(table, summary, cka_lines(summary, cfg.confidence))


@app.command()
def cka(
    source: Annotated[Path, typer.Option(help="model.pt of the emotion source model.")],
    pain: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}/model.pt of the pain models.")],
    data: Annotated[Path, typer.Option(help="Prepared AffectNet(-like) folder: the test images compared.")],
    out: Annotated[Path, typer.Option(help="Folder for cka.csv (every model, seed and block) and cka.png.")],
    metrics: Annotated[Path, typer.Option(help="metrics/cka.json: model -> block{b} -> mean, interval, n_seeds.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    controls: Annotated[Path | None, typer.Option(help="Folder with <control>/model.pt of the planted-forgetting "
                                                       "controls (section `controls`), compared the same way.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Linear CKA between the source model and each pain model (every seed) and control at every conv block's
    output, on the same test images; blocks a model kept frozen are checked to give CKA = 1."""
    from facetransfer.analysis.control_names import planned
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg, study = load_section(params, "cka"), load_section(params, "study")
        names = [c.name for c in planned(load_section(params, "controls"))] if controls is not None else []
        files = _model_files(pain, controls, study.seeds, cfg.freeze_blocks, names)
        result = run(cfg, source, files, data, str(resolve_device(cfg.device)))
        with atomic_dir(out) as tmp:
            result.table.to_csv(tmp / OUTPUTS.name("table"), index=False)
            result.figure.savefig(tmp / OUTPUTS.name("figure"), dpi=120)
        write_json_atomic(metrics, result.summary)
        with tracking.start_run("facetransfer", "cka", params=cfg.model_dump(mode="json") | {"seeds": study.seeds},
                                tags=tracking.run_tags("cka", Path.cwd())) as logged:
            logged.log_table(result.table, "cka.json")
            logged.log_figure(result.figure, "cka.png")
            logged.log_dict(result.summary, "cka_summary.json")
            tracking.write_run_id(run_id, logged.run_id)
    for name, per_block in result.summary.items():
        typer.echo(f"{name}: CKA with the source by block " + " ".join(f"{c['mean']:.3f}" for c in per_block.values()))


def _test_images(data: Path, max_images: int):
    """The first max_images test images, normalised as the models see them: (N, 3, H, W) float32."""
    import numpy as np
    import torch

    from facetransfer.training.data import load_split, normalize

    split = load_split(data, "test")
    rows = np.asarray(split.rows)[:max_images]
    return normalize(torch.from_numpy(np.array(split.images[rows])).permute(0, 3, 1, 2))
