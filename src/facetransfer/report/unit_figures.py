"""Figures of the units stage (Khorrami et al.): what excites a unit most.

Kept apart from `figures.py`, which the other analysis stages depend on, so that adding a
figure here does not rerun them.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def unit_patches(rows: list[tuple[str, np.ndarray]]) -> Figure:
    """One row per (title, (k, p, p, 3) patches): the image patches that excite each tracked unit most."""
    k = max((len(p) for _, p in rows), default=1)
    fig = Figure(figsize=(1.3 * k + 1.5, 1.4 * max(len(rows), 1) + 0.4), layout="constrained")
    axes = fig.subplots(max(len(rows), 1), k, squeeze=False)
    for r, (title, patches) in enumerate(rows):
        for c in range(k):
            axes[r, c].set_axis_off()
            if c < len(patches):
                axes[r, c].imshow(patches[c])
        axes[r, 0].set_title(title, fontsize="small", loc="left")
    return fig
