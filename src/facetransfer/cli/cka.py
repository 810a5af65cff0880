"""`facetransfer cka`: how far each model's representation moved from the source model's, block by block."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic


def _model_files(pain: Path, controls: Path | None, seeds: tuple[int, ...], blocks: tuple[int, ...],
                 control_names: list[str]) -> list[tuple[str, int | None, Path]]:
    """(model name, seed or None, model.pt) of every compared model; a missing file is named."""
    files = [(f"freeze{k}", s, pain / f"seed{s}" / f"freeze{k}" / "model.pt") for s in seeds for k in blocks]
    if controls is not None:
        files += [(name, None, controls / name / "model.pt") for name in control_names]
    for _, _, path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the stage that trains it first, or check study.seeds)")
    return files


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
    import pandas as pd

    from facetransfer.analysis import cka as core
    from facetransfer.analysis.control_names import planned
    from facetransfer.report.figures import cka_lines
    from facetransfer.training.loop import resolve_device
    from facetransfer.training.stages import EMOTION_HEAD, EMOTION_SOURCE, PAIN_MODEL, load_model

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg, study = load_section(params, "cka"), load_section(params, "study")
        names = [c.name for c in planned(load_section(params, "controls"))] if controls is not None else []
        files = _model_files(pain, controls, study.seeds, cfg.freeze_blocks, names)
        device = str(resolve_device(cfg.device))
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
        figure = cka_lines(summary, cfg.confidence)
        with atomic_dir(out) as tmp:
            table.to_csv(tmp / "cka.csv", index=False)
            figure.savefig(tmp / "cka.png", dpi=120)
        write_json_atomic(metrics, summary)
        with tracking.start_run("facetransfer", "cka", params=cfg.model_dump(mode="json") | {"seeds": study.seeds},
                                tags=tracking.run_tags("cka", Path.cwd())) as run:
            run.log_table(table, "cka.json")
            run.log_figure(figure, "cka.png")
            run.log_dict(summary, "cka_summary.json")
            tracking.write_run_id(run_id, run.run_id)
    for name, per_block in summary.items():
        typer.echo(f"{name}: CKA with the source by block " + " ".join(f"{c['mean']:.3f}" for c in per_block.values()))


def _test_images(data: Path, max_images: int):
    """The first max_images test images, normalised as the models see them: (N, 3, H, W) float32."""
    import numpy as np
    import torch

    from facetransfer.training.data import load_split, normalize

    split = load_split(data, "test")
    rows = np.asarray(split.rows)[:max_images]
    return normalize(torch.from_numpy(np.array(split.images[rows])).permute(0, 3, 1, 2))
