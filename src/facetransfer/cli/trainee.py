"""`facetransfer train-trainee`: the RBDM trainee variants (ResNet-10 by default, plain or masked training images);
`facetransfer trainee-report`: all variants compared with the plain baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, SeedOption, app, user_errors
from facetransfer.config import ConfigError, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic


@app.command("train-trainee")
def train_trainee(
    data: Annotated[Path, typer.Option(help="Prepared FER+(-like) folder: train.csv, val.csv, images.npy.")],
    masked: Annotated[Path, typer.Option(help="Folder with the mask stage's {negative,mean,perceptive}/ datasets.")],
    out: Annotated[Path, typer.Option(help="Folder for <variant>/model.pt.")],
    metrics: Annotated[Path, typer.Option(help="Folder for <variant>.json: final / best F1, steps to the target F1, area under the curve.")],
    plots: Annotated[Path, typer.Option(help="Folder for <variant>/history.csv (per epoch) and <variant>/confusion.csv (validation).")],
    run_id: Annotated[Path, typer.Option(help="Folder for <variant>.json, each variant's MLflow run id.")],
    variant: Annotated[list[str] | None, typer.Option(help="Train only this variant (repeatable); default: every one of trainee.variants.")] = None,
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
                                tags=tracking.run_tags("train_trainee", Path.cwd(), variants=",".join(names), seed=seed),
                                system_metrics=True) as run:
            run.log_data_input(data, context="training")
            for method in methods:
                run.log_data_input(masked / method, context="training")

            def save(result: core.TraineeResult) -> None:
                _save_variant(result, known[result.name], data, masked, val_labels, out, metrics, plots, run_id, cfg,
                              list(EMOTIONS))

            core.train_variants(names, data, masked, len(EMOTIONS), cfg, cfg.workers, on_done=save)
            tracking.write_run_id(run_id / "train-trainee.json", run.run_id)  # the stage's own run, beside its variants'


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
        torch.save({"format": "facetransfer.trainee/2", "variant": name, "model": cfg.model.model_dump(), "classes": classes,
                    "state_dict": result.state.model, "config": cfg.model_dump(mode="json")}, tmp / "model.pt")
    with atomic_dir(plots / name) as tmp:
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
        confusion.to_csv(tmp / "confusion.csv", index=False)
    write_json_atomic(metrics / f"{name}.json", summary)
    with tracking.start_run("facetransfer", f"train-trainee/seed{cfg.seed}/{name}", params=cfg.model_dump(mode="json"),
                            tags=tracking.run_tags("train_trainee", Path.cwd(), variant=name, seed=cfg.seed),
                            nested=True) as run:
        plain_trains = chosen.masked is None or chosen.switch_epoch is not None
        run.log_data_input(data, context="training" if plain_trains else "validation")
        if chosen.masked:
            run.log_data_input(masked / chosen.masked, context="training")
        for record in history:
            run.log_metrics({k: v for k, v in record.items() if k not in ("images", "step")}, step=record["step"])
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
        run.log_table(pd.DataFrame(history), "history.json")
        tracking.write_run_id(run_ids / f"{name}.json", run.run_id)
    steps = summary["steps_to_target"]
    typer.echo(f"{name} seed {cfg.seed}: final val macro F1 {summary['final_f1']:.3f}, AUC {summary['auc']:.3f}, "
               f"steps to F1 {cfg.target_f1}: {steps if steps is not None else 'not reached'}")


def _finite_or_none(value):
    """JSON has no NaN / inf: a variant that never reached the target gets null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _trainee_outputs(summaries: Path, curves: Path, names: list[str], seed: int):
    """One seed's curve summaries, histories and validation predictions, from `<folder>/seed<seed>/`."""
    import pandas as pd

    loaded, histories, predictions = {}, {}, {}
    for name in names:
        summary_path = summaries / f"seed{seed}" / f"{name}.json"
        history_path, confusion_path = (curves / f"seed{seed}" / name / file for file in ("history.csv", "confusion.csv"))
        for path in (summary_path, history_path, confusion_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run `facetransfer train-trainee --seed {seed} "
                                        f"--variant {name}` first, or check study.seeds)")
        loaded[name] = json.loads(summary_path.read_text())
        histories[name] = pd.read_csv(history_path)
        predictions[name] = pd.read_csv(confusion_path)
    return loaded, histories, predictions


def _mean_curves(histories_by_seed: dict[int, dict]):
    """variant -> per-step mean and SD over seeds of the validation F1 and loss (every seed takes the same steps)."""
    import pandas as pd

    out = {}
    for name in next(iter(histories_by_seed.values())):
        stacked = pd.concat([h[name][["epoch", "step", "val_macro_f1", "val_loss"]] for h in histories_by_seed.values()])
        grouped = stacked.groupby(["epoch", "step"])
        out[name] = grouped.mean().join(grouped.std(ddof=1).fillna(0.0).add_suffix("_sd")).reset_index()
    return out


def _across_seeds_table(table: dict[str, dict]):
    """The across-seed verdict table for people: one row per variant."""
    import pandas as pd

    def spread(cell: dict, digits: int = 3) -> str:
        if cell["mean"] is None:
            return "never"
        return f"{cell['mean']:.{digits}f}" + (f" ± {cell['sd']:.{digits}f}" if cell["sd"] is not None else "")

    def gain(cell: dict | None) -> str:
        if cell is None:
            return ""
        if cell["ci_low"] is None:
            return f"{cell['mean_diff']:+.3f}"
        return f"{cell['mean_diff']:+.3f} [{cell['ci_low']:+.3f}, {cell['ci_high']:+.3f}] p_holm {cell['pvalue_holm']:.2g}"

    rows = []
    for name, row in table.items():
        steps = row["steps_to_target"]
        rows.append({"variant": name, "final F1 (mean ± SD)": spread(row["final_f1"]), "AUC (mean ± SD)": spread(row["auc"]),
                     "steps to target": f"{spread(steps, 0)} ({steps['n']}/{row['n_seeds']} seeds)",
                     "final F1 - plain": gain(row.get("vs_plain", {}).get("final_f1")),
                     "AUC - plain": gain(row.get("vs_plain", {}).get("auc"))})
    return pd.DataFrame(rows).set_index("variant")


@app.command("trainee-report")
def trainee_report(
    summaries: Annotated[Path, typer.Option(help="Folder with seed<s>/<variant>.json curve summaries (train-trainee, one per seed).")],
    curves: Annotated[Path, typer.Option(help="Folder with seed<s>/<variant>/history.csv and confusion.csv.")],
    out: Annotated[Path, typer.Option(help="Folder for summary.csv / .md (across seeds), by_seed.csv, curves.png (Fig. 10, mean over seeds) and confusion.png.")],
    metrics: Annotated[Path, typer.Option(help="JSON: the across-seed table and verdict, each seed's numbers, McNemar best masked vs plain.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the trainee runs' seed<s>/<variant>.json run ids, to link the MLflow run to them.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Did relevance-based masking speed learning, across training seeds? Per variant the mean and SD over
    `study.seeds` of final F1, area under the F1 curve and steps to the target F1, each masked variant's paired
    difference from plain with a t-test over seeds (Holm per variant); the mean curves (Schiller et al. 2020,
    Fig. 10); as detail, the detail seed's confusion matrices of the best masked variant and plain with McNemar."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    from facetransfer.analysis import trainee as core
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.report.figures import confusion_pair, learning_curves

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg, study = load_section(params, "trainee"), load_section(params, "study")
        outputs = {s: _trainee_outputs(summaries, curves, list(cfg.variants), s) for s in study.seeds}
        by_seed = {s: core.summary_table(outputs[s][0]) for s in study.seeds}
        table = core.across_seeds(by_seed)
        verdict = core.verdict_across_seeds(table)
        best, predictions = verdict["best_masked"], outputs[study.detail_seed][2]
        actual = predictions[core.BASELINE]["actual"].to_numpy()
        if not np.array_equal(actual, predictions[best]["actual"].to_numpy()):
            raise ValueError(f"{curves}: {best} and {core.BASELINE} were validated on different images (rerun both)")
        mcnemar = core.compare_predictions(actual, predictions[core.BASELINE]["predicted"].to_numpy(),
                                           predictions[best]["predicted"].to_numpy()) | {"seed": study.detail_seed}
        matrices = {name: confusion_matrix(predictions[name]["actual"], predictions[name]["predicted"], labels=list(EMOTIONS))
                    for name in (core.BASELINE, best)}
        readable = _across_seeds_table(table)
        detail = pd.concat({s: t for s, t in by_seed.items()}, names=["seed"])
        curves_figure = learning_curves(_mean_curves({s: outputs[s][1] for s in study.seeds}), cfg.target_f1,
                                        n_seeds=len(study.seeds), architecture=cfg.model.title)
        confusion_figure = confusion_pair(matrices, list(EMOTIONS))
        with atomic_dir(out) as tmp:
            readable.to_csv(tmp / "summary.csv")
            (tmp / "summary.md").write_text(readable.to_markdown() + "\n")
            detail.to_csv(tmp / "by_seed.csv")
            curves_figure.savefig(tmp / "curves.png", dpi=120)
            confusion_figure.savefig(tmp / "confusion.png", dpi=120)
        result = {"trainee": cfg.model.title, "seeds": list(study.seeds), "detail_seed": study.detail_seed,
                  "across_seeds": table, "verdict": verdict,
                  "by_seed": {str(s): {name: {k: _finite_or_none(float(v)) for k, v in row.items()}
                                       for name, row in t.iterrows()} for s, t in by_seed.items()},
                  "mcnemar_best_vs_plain": mcnemar}
        write_json_atomic(metrics, result)
        names = [f"seed{s}/{name}" for s in study.seeds for name in cfg.variants]
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "trainee-report", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("trainee_report", Path.cwd(), **links)) as run:
            run.log_table(readable.reset_index(), "trainee_summary.json")
            run.log_figure(curves_figure, "learning_curves.png")
            run.log_figure(confusion_figure, "confusion.png")
            run.log_dict(result, "trainee.json")
            run.log_metrics({f"auc_{name}": row["auc"]["mean"] for name, row in table.items()})
            tracking.write_run_id(run_id, run.run_id)
    typer.echo(readable.to_string())
    holds = {True: "yes", False: "no", None: "untested (one seed)"}[verdict["masking_sped_learning"]]
    typer.echo(f"best masked variant {best}: mean AUC {verdict['auc_best']:.3f} vs plain {verdict['auc_baseline']:.3f} over "
               f"{len(study.seeds)} seeds (masking sped learning, across seeds: {holds}); McNemar on seed "
               f"{study.detail_seed}'s validation p {mcnemar['pvalue']:.2g} ({mcnemar['method']})")
