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


def trade_off_plot(trade: dict) -> Figure:
    """Pain macro recall against emotion macro recall per model, Pareto front joined, balanced choice marked."""
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    points = trade["points"]
    for model, p in points.items():
        ax.scatter(p["pain_macro_recall"], p["emotion_macro_recall"], color="tab:blue")
        ax.annotate(model, (p["pain_macro_recall"], p["emotion_macro_recall"]), textcoords="offset points",
                    xytext=(4, 4), fontsize="small")
    front = sorted(trade["pareto_front"], key=lambda m: points[m]["pain_macro_recall"])
    ax.plot([points[m]["pain_macro_recall"] for m in front], [points[m]["emotion_macro_recall"] for m in front],
            "--", color="tab:gray", label="Pareto front")
    best = points[trade["balanced"]]
    ax.scatter(best["pain_macro_recall"], best["emotion_macro_recall"], s=160, facecolors="none",
               edgecolors="tab:red", label=f"balanced: {trade['balanced']}")
    ax.set_xlabel("pain macro recall")
    ax.set_ylabel("emotion macro recall after retraining")
    ax.set_title("What pain gained vs what emotion lost")
    ax.legend(fontsize="small")
    return fig


def concept_forest(rows: list[dict]) -> Figure:
    """Forest plot of probe F1 differences (reference - model) per AU and model, plain vs corrected 95 % CI.

    A difference above 0 means the reference's features detect the AU better (the model
    forgot some of it). The plain interval treats overlapping CV resamples as independent.
    """
    fig = Figure(figsize=(8, 0.32 * len(rows) + 1.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows):
        ax.plot(row["ci_diff_plain"], [yi + 0.15] * 2, color="tab:gray", lw=1)
        colour = "tab:red" if row["forgotten"] else "tab:blue"
        ax.plot(row["ci_diff_corrected"], [yi] * 2, color=colour, lw=3, solid_capstyle="butt")
        ax.plot(row["mean_diff"], yi, "o", color=colour, ms=4)
    ax.axvline(0.0, color="black", lw=0.8)
    labels = [f"AU{r['au']}{' (upper face)' if r['view'] == 'upper' else ''}  {r['model_a']} - {r['model_b']}"
              for r in rows]
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlabel("mean F1 difference of the AU probe (reference - model)")
    ax.set_title("Concept probes, reference vs each model\nthick: corrected 95 % CI (red: forgotten); "
                 "thin grey: the plain CI", fontsize="medium")
    return fig


def saliency_grid(images: np.ndarray, reference: np.ndarray, model: np.ndarray, difference: np.ndarray,
                  names: tuple[str, str], title: str) -> Figure:
    """Rows of input | reference map | model map | difference, maps in [0, 1] (like the paper's Fig. 4).

    images (n, H, W, 3) uint8; reference, model, difference (n, H, W) already scaled to [0, 1].
    """
    n = max(len(images), 1)
    fig = Figure(figsize=(6.4, 1.6 * n + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 4, squeeze=False))
    headers = ("input", f"LRP {names[0]}", f"LRP {names[1]}", f"{names[0]} - {names[1]}")
    for i in range(len(images)):
        panels = (images[i], reference[i], model[i], difference[i])
        for j, panel in enumerate(panels):
            axes[i, j].imshow(panel, cmap=None if j == 0 else "inferno", vmin=0, vmax=1 if j else None)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for j, header in enumerate(headers):
        axes[0, j].set_title(header, fontsize="small")
    if len(images) == 0:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center", transform=axes[0, 0].transAxes)
    fig.suptitle(title, fontsize="medium")
    return fig


def localisation_bars(scores: dict) -> Figure:
    """Per model: LRP relevance mass / rank accuracy, pointing game, Grad-CAM DICE / IoU against true AU regions."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.subplots()
    measures = [("lrp", "relevance_mass_accuracy", "LRP mass acc."), ("lrp", "relevance_rank_accuracy", "LRP rank acc."),
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


def learning_curves(histories: dict[str, pd.DataFrame], target_f1: float | None = None) -> Figure:
    """The paper's Fig. 10: validation macro F1 and loss against optimiser steps, one line per trainee variant.

    Colour = masking method (black: plain); solid = masked throughout, dashed = masked, then plain.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_f1, ax_loss = fig.subplots(1, 2)
    colours = {"negative": "tab:blue", "mean": "tab:orange", "perceptive": "tab:green"}
    for name, history in histories.items():
        method = name.removesuffix("-then-plain")
        style = {"color": colours.get(method, "black"), "linestyle": "--" if name.endswith("-then-plain") else "-",
                 "linewidth": 2.2 if name == "plain" else 1.4}
        ax_f1.plot(history["step"], history["val_macro_f1"], label=name, **style)
        ax_loss.plot(history["step"], history["val_loss"], label=name, **style)
    if target_f1 is not None:
        ax_f1.axhline(target_f1, color="tab:gray", linewidth=0.8, linestyle=":", label=f"target F1 {target_f1}")
    ax_f1.set_ylabel("validation macro F1 (plain images)")
    ax_loss.set_ylabel("validation cross-entropy")
    for ax in (ax_f1, ax_loss):
        ax.set_xlabel("training steps")
    ax_f1.legend(fontsize="small")
    fig.suptitle("MobileNetV2 trainees: plain vs relevance-masked training images")
    return fig


def confusion_pair(matrices: dict[str, np.ndarray], classes: list[str]) -> Figure:
    """Row-normalised confusion matrices side by side (rows: true class, columns: predicted), counts in cells."""
    fig = Figure(figsize=(5.2 * len(matrices), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (name, counts) in zip(axes, matrices.items()):
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
    models = list(dict.fromkeys(zip(per_fold["init"], per_fold["attention"])))
    for ax, dataset in zip(axes, datasets):
        values = [per_fold[(per_fold["init"] == i) & (per_fold["attention"] == a)][dataset].to_numpy() for i, a in models]
        ax.boxplot(values, tick_labels=[f"{i}\n{a}" for i, a in models])
        ax.set_title(dataset)
        ax.tick_params(axis="x", labelsize="x-small")
    axes[0].set_ylabel("accuracy (six basic emotions)")
    return fig
