"""Stage `controls`: the planted-forgetting controls judged (does the tool find what is there, and only that?).

The study's analyses (recall + McNemar, LRP AU ranking, reverse contrast, concept probes, necessity on
counterfactuals) run source vs each control model: a positive control's suppressed AU should be found, a
negative control should flag nothing; each check's false-alarm rate comes from the negatives.

Reads   models/emotion/model.pt, models/controls/<name>/{model.pt, test_predictions.csv} (train-control*),
        prepared/affectnet (head retraining, test images, AU regions, counterfactuals), prepared/ckplus (probes)
Writes  OUTPUTS: reports/controls/ (verdicts, recall, probes, analyses.json, contrast maps, grids),
        metrics/controls.json, metrics/controls_summary.json
Core    facetransfer.analysis.controls
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import ControlsConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE, PREDICTIONS_FILE
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("controls",)
# Also <control>_<class>.png: a saliency grid per positive control and its dependent class.
OUTPUTS = Outputs({"out": "reports/controls", "metrics": "metrics/controls.json",
                   "summary": "metrics/controls_summary.json"},
                  {"verdicts": ("out", "verdicts.csv"), "verdicts_md": ("out", "verdicts.md"),
                   "recall": ("out", "recall.csv"), "probes": ("out", "probes.csv"),
                   "analyses": ("out", "analyses.json"), "contrast_maps": ("out", "contrast_maps.npz")})


@dataclass
class Result:
    evaluation: Any  # analysis.controls.Evaluation: verdicts, recall, McNemar, rankings, probes, maps, ...
    grids: dict  # file name -> saliency grid of a positive control's dependent class
    regions: str  # where the AU regions came from (landmark regions or rendered masks)
    further: list[str]  # the positive controls' further fine-tunings (controls.extra_positive_seeds)


def _load_controls(folder: Path, names: list[str], stage: str = "train-control") -> tuple[dict, dict]:
    """name -> head-retrained model and name -> test predictions of the controls `names` (`stage` made them)."""
    import pandas as pd

    from facetransfer.training.recipes import EMOTION_HEAD, load_model

    models, predictions = {}, {}
    for name in names:
        for path in (folder / name / MODEL_FILE, folder / name / PREDICTIONS_FILE):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the {stage} stage of {name} first)")
        models[name] = load_model(folder / name / MODEL_FILE, EMOTION_HEAD)[0]
        predictions[name] = pd.read_csv(folder / name / PREDICTIONS_FILE, usecols=["row", "label", "predicted"])
    return models, predictions


def _reference(source: Path, data: Path, cfg) -> tuple:
    """The source model with its head retrained like the controls' (same data, same settings)."""
    import pandas as pd

    from facetransfer.training import recipes

    trained = recipes.retrain_emotion(source, data, cfg.head, section="controls.head",
                                      source_stages=recipes.EMOTION_SOURCE)
    frame = pd.DataFrame({"row": trained.test_rows, "label": trained.test_labels,
                          "predicted": trained.test_probs.argmax(1)})
    return trained.model.eval(), frame


def _grids(result, controls, test) -> dict:
    """Input | reference | control | difference for each positive control's dependent class (first 6 images)."""
    from facetransfer.explain import normalise_maps
    from facetransfer.report.figures import saliency_grid, signed_difference

    grids = {}
    for c in controls:
        if c.dependent is None:
            continue
        a = result.contrast[c.name][c.dependent]
        shown = a["index"][:6]
        n = len(shown)
        grids[f"{c.name}_{c.dependent}.png"] = saliency_grid(
            test.images[shown], normalise_maps(a["reference"][:n]), normalise_maps(a["model"][:n]),
            signed_difference(a["reference"][:n], a["model"][:n]), ("source", c.name),
            f"{c.dependent}: right by the source, wrong by {c.name} ({a['index'].size} images)")
    return grids


def _write(out: Path, result, grids: dict, regions: str) -> None:
    import numpy as np

    from facetransfer.analysis import controls as core
    from facetransfer.concepts.study import rows_table

    table = core.verdict_table(result.verdicts)
    with atomic_dir(out) as tmp:
        table.to_csv(tmp / OUTPUTS.name("verdicts"), index=False)
        (tmp / OUTPUTS.name("verdicts_md")).write_text(table.to_markdown(index=False) + "\n")
        result.recall.to_csv(tmp / OUTPUTS.name("recall"), index_label="model")
        rows_table(result.probes).to_csv(tmp / OUTPUTS.name("probes"), index=False)
        write_json_atomic(tmp / OUTPUTS.name("analyses"), {"mcnemar": result.mcnemar, "au_ranking": result.rankings,
                                                   "reverse_contrast": result.reverse, "planted": result.planted,
                                                   "necessity": result.necessity, "regions": regions})
        np.savez_compressed(tmp / OUTPUTS.name("contrast_maps"), **{f"{name}_{cls}_{key}": value
                                                          for name, per_class in result.contrast.items()
                                                          for cls, arrays in per_class.items()
                                                          for key, value in arrays.items()})
        for file, figure in grids.items():
            figure.savefig(tmp / file, dpi=90)


def run(cfg: ControlsConfig, source: Path, controls_dir: Path, data: Path, ckplus: Path, device: str) -> Result:
    """Every control model and the source (head retrained like theirs) through the study's analyses, judged."""
    from facetransfer.analysis import controls as core
    from facetransfer.analysis.necessity import has_counterfactuals, load_counterfactual_test_set
    from facetransfer.analysis.saliency import load_test_images
    from facetransfer.concepts.study import load_probe_images

    planned = core.planned(cfg)
    test, probe_data = load_test_images(data), load_probe_images(ckplus)
    counterfactual = load_counterfactual_test_set(data) if has_counterfactuals(data) else None
    if counterfactual is None:
        typer.echo(f"controls: {data} has no counterfactual test images; the necessity check is skipped", err=True)
    models, predictions = _load_controls(controls_dir, [c.name for c in planned])
    further = [n for group in core.replicates(cfg).values() for n in group if n not in models]
    # the positive controls' further fine-tunings (controls.extra_positive_seeds): tested across seeds
    seed_models, seed_predictions = _load_controls(controls_dir, further, "train-control-seed")
    typer.echo("controls: retraining the source model's head", err=True)
    models[core.REFERENCE], predictions[core.REFERENCE] = _reference(source, data, cfg)
    typer.echo(f"controls: LRP, AU ranking and concept probes ({cfg.repeats} repeats), source vs "
               + ", ".join(c.name for c in planned), err=True)
    result = core.evaluate(models, predictions, planned, test, probe_data, cfg, device, counterfactual,
                           seed_predictions, seed_models)
    return Result(result, _grids(result, planned, test), test.region_source, further)


@app.command()
def controls(
    source: Annotated[Path, typer.Option(help="The emotion source model.pt.")],
    controls_dir: Annotated[Path, typer.Option("--controls", help="Folder with <control>/model.pt and "
                                                                  "test_predictions.csv.")],
    data: Annotated[Path, typer.Option(help="Unmodified prepared AffectNet(-like) folder (head retraining, test "
                                            "images, AU regions).")],
    ckplus: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder: the concept probes' images and AU labels.")],
    out: Annotated[Path, typer.Option(help="Folder for the verdict table, recall, probe tests, maps and figures.")],
    metrics: Annotated[Path, typer.Option(help="metrics/controls.json: the verdict rows.")],
    summary: Annotated[Path, typer.Option(help="metrics/controls_summary.json: control -> check -> passed.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the train-control runs' <control>.json, to "
                                                          "link them.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Run the study's analyses (recall + McNemar, LRP AU ranking, concept probes) source vs each control and judge
    them: a positive control's AU should be found, the negative control should flag nothing."""
    from facetransfer.analysis import controls as core
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[metrics, summary, run_id])  # before any work
        cfg = load_section(params, "controls")
        judged = run(cfg, source, controls_dir, data, ckplus, str(resolve_device(cfg.device)))
        result, grids = judged.evaluation, judged.grids
        _write(out, result, grids, judged.regions)
        write_json_atomic(metrics, result.verdicts)
        write_json_atomic(summary, core.summary(result.verdicts))
        names = [c.name for c in core.planned(cfg)] + judged.further
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "controls", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("controls", Path.cwd(), **links)) as logged:
            logged.log_table(core.verdict_table(result.verdicts), "verdicts.json")
            logged.log_table(result.recall.reset_index(names="model"), "recall.json")
            logged.log_dict({"verdicts": result.verdicts, "planted": result.planted, "necessity": result.necessity},
                            "controls.json")
            for file, figure in grids.items():
                logged.log_figure(figure, f"grids/{file}")
            logged.log_metrics({f"{r['control']}.{r['check']}": float(r["passed"]) for r in result.verdicts})
            tracking.write_run_id(run_id, logged.run_id)
    for row in result.verdicts:
        typer.echo(f"{row['control']:>14}  {row['check']:<31} {'pass' if row['passed'] else 'FAIL'}")
