"""Explanations: zennit LRP, Grad-CAM, AU-region relevance and localisation scores."""

from facetransfer.explain.gradcam import gradcam_maps, last_conv
from facetransfer.explain.lrp import (
    difference_maps,
    explain_images,
    lrp_relevance,
    lrp_session,
    normalise_maps,
    paper_composite,
)
from facetransfer.explain.ranking import rank_aus
from facetransfer.explain.scores import (
    dice_iou,
    pointing_game,
    region_mass,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    unpack_masks,
)

__all__ = [
    "dice_iou",
    "difference_maps",
    "explain_images",
    "gradcam_maps",
    "last_conv",
    "lrp_relevance",
    "lrp_session",
    "normalise_maps",
    "paper_composite",
    "pointing_game",
    "rank_aus",
    "region_mass",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "unpack_masks",
]
