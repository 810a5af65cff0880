"""Figures like the paper's: recall per class per model (Fig. 3), the pain/emotion trade-off (Fig. 6).

Built on `matplotlib.figure.Figure` directly (no pyplot global state), so they
render headless and can be handed to MLflow or saved by the CLI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def recall_bars(table: pd.DataFrame) -> Figure:
    """Grouped bars: one group per class (and macro), one bar per model (rows of `table`)."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    n_models = len(table.index)
    width = 0.8 / n_models
    x = np.arange(len(table.columns))
    for i, model in enumerate(table.index):
        ax.bar(x + (i - (n_models - 1) / 2) * width, table.loc[model].to_numpy(), width, label=model)
    ax.set_xticks(x, table.columns)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test recall")
    ax.set_title("Emotion recall of the retrained heads (FreezeBk: first k conv blocks kept from the emotion model)")
    ax.legend(ncol=n_models, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08))
    return fig


def forgetting_forest(rows: pd.DataFrame, confidence: float) -> Figure:
    """One panel per compared model: each class's forgetting, recall(reference) - recall(model), mean over seeds
    with its interval (none with one seed); filled dots: Holm-corrected p < 1 - confidence; dots: single seeds."""
    models = list(dict.fromkeys(rows["model"]))
    fig = Figure(figsize=(2.6 * max(len(models), 1) + 1.2, 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(models), 1), sharey=True, squeeze=False)[0]
    # strict=False: with no rows there is one (empty) panel and no model.
    for ax, model in zip(axes, models, strict=False):
        part = rows[rows["model"] == model].reset_index(drop=True)
        y = np.arange(len(part))[::-1]  # first class on top
        for yi, (_, row) in zip(y, part.iterrows(), strict=True):
            ax.scatter([float(v) for v in row["per_seed"].split()], [yi] * len(row["per_seed"].split()),
                       s=9, color="tab:gray", alpha=0.6, zorder=1)
            if row["ci_low"] is not None and row["ci_low"] == row["ci_low"]:
                ax.plot([row["ci_low"], row["ci_high"]], [yi, yi], color="tab:blue", zorder=2)
            significant = row["pvalue_holm"] is not None and row["pvalue_holm"] < 1 - confidence
            ax.scatter(row["mean_diff"], yi, s=30, zorder=3, color="tab:red" if significant else "white",
                       edgecolors="tab:red" if significant else "tab:blue")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(y, part["class"])
        ax.set_title(model, fontsize="medium")
        ax.set_xlabel("recall lost vs reference")
    fig.suptitle(f"Forgetting across training seeds: mean, {confidence:.0%} interval, single seeds (grey)",
                 fontsize="medium")
    return fig


def cka_lines(summary: dict[str, dict[str, dict]], confidence: float) -> Figure:
    """Linear CKA with the source model by conv block, one line per model (mean over seeds, interval band)."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for model, per_block in summary.items():
        blocks = np.arange(1, len(per_block) + 1)
        mean = np.array([c["mean"] for c in per_block.values()])
        line = ax.plot(blocks, mean, marker="o", label=model, ls="-" if model.startswith("freeze") else "--")[0]
        cells = list(per_block.values())
        if all(c["ci_low"] is not None for c in cells):
            ax.fill_between(blocks, [c["ci_low"] for c in cells], [c["ci_high"] for c in cells],
                            color=line.get_color(), alpha=0.15)
    ax.set_xticks(np.arange(1, 6), [f"block {b}" for b in range(1, 6)])
    ax.set_ylim(top=1.02)
    ax.set_ylabel("linear CKA with the source model")
    ax.set_title(f"Representation drift by conv block (bands: {confidence:.0%} interval over seeds)")
    ax.legend(fontsize="small", ncol=2)
    return fig


def trade_off_plot(trade: dict) -> Figure:
    """Pain macro recall against emotion macro recall per model, Pareto front joined, balanced choice marked;
    one more panel per class in `trade["most_forgotten"]` (pain macro recall against that class's recall)."""
    classes = trade.get("most_forgotten", {})
    fig = Figure(figsize=(5.5 + 4.5 * len(classes), 4.5), layout="constrained")
    axes = fig.subplots(1, 1 + len(classes), squeeze=False)[0]
    _trade_panel(axes[0], trade["points"], "emotion_macro_recall", trade["pareto_front"])
    best = trade["points"][trade["balanced"]]
    axes[0].scatter(best["pain_macro_recall"], best["emotion_macro_recall"], s=160, facecolors="none",
                    edgecolors="tab:red", label=f"balanced: {trade['balanced']}")
    axes[0].set_ylabel("emotion macro recall after retraining")
    axes[0].set_title("What pain gained vs what emotion lost")
    axes[0].legend(fontsize="small")
    for ax, (cls, panel) in zip(axes[1:], classes.items(), strict=True):
        _trade_panel(ax, panel["points"], "class_recall", panel["pareto_front"])
        ax.set_ylabel(f"{cls} recall after retraining")
        ax.set_title(f"... and on {cls} (among the most forgotten)")
    return fig


def _trade_panel(ax, points: dict, y_key: str, front: list[str]) -> None:
    for model, p in points.items():
        ax.scatter(p["pain_macro_recall"], p[y_key], color="tab:blue")
        ax.annotate(model, (p["pain_macro_recall"], p[y_key]), textcoords="offset points", xytext=(4, 4),
                    fontsize="small")
    front = sorted(front, key=lambda m: points[m]["pain_macro_recall"])
    ax.plot([points[m]["pain_macro_recall"] for m in front], [points[m][y_key] for m in front], "--",
            color="tab:gray", label="Pareto front")
    ax.set_xlabel("pain macro recall")


def concept_forest(rows: list[dict]) -> Figure:
    """Forest plot of probe F1 differences (reference - model) per AU and model, plain vs corrected 95 % CI.

    A difference above 0 means the reference's features detect the AU better (the model
    forgot some of it). The plain interval treats overlapping CV resamples as independent.
    """
    fig = Figure(figsize=(8, 0.32 * len(rows) + 1.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows, strict=True):
        ax.plot(row["ci_diff_plain"], [yi + 0.15] * 2, color="tab:gray", lw=1)
        colour = "tab:red" if row["forgotten"] else "tab:blue"
        ax.plot(row["ci_diff_corrected"], [yi] * 2, color=colour, lw=3, solid_capstyle="butt")
        ax.plot(row["mean_diff"], yi, "o", color=colour, ms=4)
    ax.axvline(0.0, color="black", lw=0.8)
    labels = [_probe_label(r) for r in rows]
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlabel("mean F1 difference of the AU probe (reference - model)")
    ax.set_title("Concept probes, reference vs each model\nthick: corrected 95 % CI (red: forgotten); "
                 "thin grey: the plain CI", fontsize="medium")
    return fig


def _probe_label(row: dict) -> str:
    view = " (upper face)" if row["view"] == "upper" else ""
    block = f" block {row['block']}" if "block" in row else ""
    return f"AU{row['au']}{view}{block}  {row['model_a']} - {row['model_b']}"


def signed_difference(reference: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Raw maps (n, H, W) -> reference minus model, each divided by its largest |value|: (n, H, W) in [-1, 1].

    Signed, so that where the reference looked more (> 0) and where the model looked more
    (< 0) stay apart; a map with no difference is all 0.
    """
    d = np.asarray(reference, np.float64) - np.asarray(model, np.float64)
    peak = np.abs(d).max(axis=(-2, -1), keepdims=True) if d.size else np.ones(d.shape[:-2] + (1, 1))
    return np.divide(d, peak, out=np.zeros_like(d), where=peak > 0)


def saliency_grid(images: np.ndarray, reference: np.ndarray, model: np.ndarray, difference: np.ndarray,
                  names: tuple[str, str], title: str, gradcam: tuple[np.ndarray, np.ndarray] | None = None) -> Figure:
    """Rows of input | reference LRP | model LRP | difference [| reference Grad-CAM | model Grad-CAM] (cf. Fig. 4).

    images (n, H, W, 3) uint8; reference, model and Grad-CAM maps (n, H, W) in [0, 1];
    difference (n, H, W) in [-1, 1] (`signed_difference`), drawn red where the reference
    put more relevance and blue where the model did.
    """
    n = max(len(images), 1)
    columns = [("input", None, (None, None)), (f"LRP {names[0]}", "inferno", (0, 1)),
               (f"LRP {names[1]}", "inferno", (0, 1)), (f"{names[0]} - {names[1]}", "RdBu_r", (-1, 1))]
    panels = [images, reference, model, difference]
    if gradcam is not None:
        columns += [(f"Grad-CAM {names[0]}", "inferno", (0, 1)), (f"Grad-CAM {names[1]}", "inferno", (0, 1))]
        panels += list(gradcam)
    fig = Figure(figsize=(1.6 * len(columns), 1.6 * n + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, len(columns), squeeze=False))
    for i in range(len(images)):
        for j, ((_, cmap, (vmin, vmax)), panel) in enumerate(zip(columns, panels, strict=True)):
            axes[i, j].imshow(panel[i], cmap=cmap, vmin=vmin, vmax=vmax)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for j, (header, _, _) in enumerate(columns):
        axes[0, j].set_title(header, fontsize="small")
    if len(images) == 0:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center", transform=axes[0, 0].transAxes)
    fig.suptitle(title, fontsize="medium")
    return fig


def localisation_bars(scores: dict) -> Figure:
    """Per model: LRP relevance mass / rank accuracy, pointing game, Grad-CAM DICE / IoU against true AU regions."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.subplots()
    measures = [("lrp", "relevance_mass_accuracy", "LRP mass acc."),
                ("lrp", "relevance_rank_accuracy", "LRP rank acc."),
                ("lrp", "pointing_game", "LRP pointing game"), ("gradcam", "dice", "Grad-CAM DICE"),
                ("gradcam", "iou", "Grad-CAM IoU")]
    models = list(scores)
    width = 0.8 / len(measures)
    x = np.arange(len(models))
    for i, (group, key, label) in enumerate(measures):
        ax.bar(x + (i - (len(measures) - 1) / 2) * width, [scores[m][group][key] for m in models], width, label=label)
    ax.set_xticks(x, models)
    ax.set_ylim(0, 1)
    ax.set_title("How well each model's maps land on the regions of the AUs present")
    ax.legend(ncol=len(measures), fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08))
    return fig


def mask_sheet(images: np.ndarray, keep: np.ndarray, masked: np.ndarray, title: str) -> Figure:
    """Rows of original | keep-mask (white = kept) | masked image, for a person to look at."""
    n = max(len(images), 1)
    fig = Figure(figsize=(4.8, 1.6 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(len(images)):
        axes[i, 0].imshow(images[i])
        axes[i, 1].imshow(keep[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 2].imshow(masked[i])
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for j, header in enumerate(("original", "mask (white: kept)", "masked")):
        axes[0, j].set_title(header, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    return fig


def learning_curves(histories: dict[str, pd.DataFrame], target_f1: float | None = None, n_seeds: int = 1,
                    architecture: str = "trainee") -> Figure:
    """The paper's Fig. 10: validation macro F1 and loss against optimiser steps, one line per trainee variant.

    Colour = masking method (black: plain); solid = masked throughout, dashed = masked, then plain.
    With `n_seeds` > 1 the lines are means over seeds and `val_macro_f1_sd` / `val_loss_sd` columns, where
    present, draw a band of +- 1 SD around them.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_f1, ax_loss = fig.subplots(1, 2)
    colours = {"negative": "tab:blue", "mean": "tab:orange", "perceptive": "tab:green"}
    for name, history in histories.items():
        method = name.removesuffix("-then-plain")
        style = {"color": colours.get(method, "black"), "linestyle": "--" if name.endswith("-then-plain") else "-",
                 "linewidth": 2.2 if name == "plain" else 1.4}
        for ax, column in ((ax_f1, "val_macro_f1"), (ax_loss, "val_loss")):
            ax.plot(history["step"], history[column], label=name, **style)
            if f"{column}_sd" in history:
                ax.fill_between(history["step"], history[column] - history[f"{column}_sd"],
                                history[column] + history[f"{column}_sd"], color=style["color"], alpha=0.08,
                                linewidth=0)
    if target_f1 is not None:
        ax_f1.axhline(target_f1, color="tab:gray", linewidth=0.8, linestyle=":", label=f"target F1 {target_f1}")
    ax_f1.set_ylabel("validation macro F1 (plain images)")
    ax_loss.set_ylabel("validation cross-entropy")
    for ax in (ax_f1, ax_loss):
        ax.set_xlabel("training steps")
    ax_f1.legend(fontsize="small")
    over = f" (mean, band ± 1 SD, over {n_seeds} seeds)" if n_seeds > 1 else ""
    fig.suptitle(f"{architecture} trainees: plain vs relevance-masked training images" + over)
    return fig


def confusion_pair(matrices: dict[str, np.ndarray], classes: list[str]) -> Figure:
    """Row-normalised confusion matrices side by side (rows: true class, columns: predicted), counts in cells."""
    fig = Figure(figsize=(5.2 * len(matrices), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (name, counts) in zip(axes, matrices.items(), strict=True):
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i, j in np.ndindex(counts.shape):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize="x-small",
                    color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize="small")
        ax.set_yticks(range(len(classes)), classes, fontsize="small")
        ax.set_xlabel("predicted")
        ax.set_title(name)
    axes[0].set_ylabel("true class")
    return fig


def accuracy_boxes(per_fold: pd.DataFrame) -> Figure:
    """Box plots of fold accuracies: one panel per dataset, one box per (init, attention) (Arabian et al., Table 2)."""
    datasets = [c for c in per_fold.columns if c not in ("init", "attention", "fold")]
    fig = Figure(figsize=(4.2 * len(datasets), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(datasets), sharey=True))
    models = list(dict.fromkeys(zip(per_fold["init"], per_fold["attention"], strict=True)))
    for ax, dataset in zip(axes, datasets, strict=True):
        values = [per_fold[(per_fold["init"] == i) & (per_fold["attention"] == a)][dataset].to_numpy()
                  for i, a in models]
        ax.boxplot(values, tick_labels=[f"{i}\n{a}" for i, a in models])
        ax.set_title(dataset)
        ax.tick_params(axis="x", labelsize="x-small")
    axes[0].set_ylabel("accuracy (six basic emotions)")
    return fig


def necessity_heatmaps(matrices: dict[str, pd.DataFrame], alpha_marks: dict[str, pd.DataFrame] | None = None) -> Figure:
    """One class x AU panel per model: the recall drop when that AU alone is switched off (red: the class needs it).

    matrices: model -> DataFrame (classes x AU<k>) of drops, NaN where no image shows the AU;
    alpha_marks: model -> same-shaped booleans, marked in the cell's corner where the drop is significant (Holm).
    """
    columns = sorted({c for m in matrices.values() for c in m.columns}, key=lambda c: int(c[2:]))
    n = len(matrices)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.6 * cols + 1.0, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    # strict=False: the grid can hold more panels than models (the spare ones are hidden below).
    for ax, (model, table) in zip(axes, matrices.items(), strict=False):
        values = table.reindex(columns=columns).to_numpy(dtype=float)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(columns)), [c[2:] for c in columns], fontsize="x-small")
        ax.set_yticks(range(len(table.index)), table.index, fontsize="small")
        ax.set_xlabel("AU switched off", fontsize="small")
        ax.set_title(model, fontsize="medium")
        if alpha_marks is not None and model in alpha_marks:
            ys, xs = np.nonzero(alpha_marks[model].reindex(columns=columns).fillna(False).to_numpy(dtype=bool))
            ax.scatter(xs + 0.3, ys - 0.28, s=5, marker="s", color="black")  # a corner mark, clear of the text
        for (y, x), v in np.ndenumerate(values):
            if np.isfinite(v) and abs(v) >= 0.1:
                ax.text(x, y, f"{v:.1f}".replace("0.", "."), ha="center", va="center", fontsize=5.5,
                        color="white" if abs(v) > 0.6 else "black")
    for ax in axes[n:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:n]), shrink=0.8, label="recall drop (with - without the AU)")
    fig.suptitle("Necessity: how much of each class's recall needs each AU (corner mark: Holm p < alpha)")
    return fig
