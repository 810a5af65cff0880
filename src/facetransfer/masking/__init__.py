"""Relevance-based data masking (Schiller et al. 2020): keep-masks from a trainer's LRP maps."""

from facetransfer.masking.masks import (
    fixation_points,
    fwhm_to_sigma,
    mean_mask,
    negative_mask,
    perceptive_heatmap,
    perceptive_mask,
)

__all__ = ["fixation_points", "fwhm_to_sigma", "mean_mask", "negative_mask", "perceptive_heatmap", "perceptive_mask"]
