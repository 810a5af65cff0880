"""Significance tests for model comparisons (DESIGN.md section 7)."""

from facetransfer.stats.correction import add_holm, holm, mean_ci
from facetransfer.stats.mcnemar import mcnemar_test
from facetransfer.stats.result import TestResult
from facetransfer.stats.seeds import GROUPS_TEST, SEED_TEST, seed_difference, seed_groups_difference
from facetransfer.stats.ttests import (
    corrected_resampled_ci,
    corrected_resampled_ttest,
    five_by_two_cv_ttest,
    paired_ttest,
)

__all__ = [
    "GROUPS_TEST",
    "SEED_TEST",
    "TestResult",
    "add_holm",
    "corrected_resampled_ci",
    "corrected_resampled_ttest",
    "five_by_two_cv_ttest",
    "holm",
    "mcnemar_test",
    "mean_ci",
    "paired_ttest",
    "seed_difference",
    "seed_groups_difference",
]
