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
