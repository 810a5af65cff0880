"""The Python names of docs/design.md section 7 import as written there (other code relies on them)."""

from __future__ import annotations


def test_the_documented_python_api_imports():
    from facetransfer.data import DatasetFormatError, affectnet, ckplus, ferplus, unbc
    from facetransfer.data.errors import DatasetFormatError as FromErrors
    from facetransfer.explain import lrp_relevance
    from facetransfer.masking import mean_mask, negative_mask, perceptive_mask
    from facetransfer.stats import corrected_resampled_ttest, five_by_two_cv_ttest, mcnemar_test, paired_ttest

    assert DatasetFormatError is FromErrors and issubclass(DatasetFormatError, ValueError)
    assert all(callable(f) for f in (affectnet.read, unbc.read, ckplus.read, ferplus.read, lrp_relevance, mean_mask,
                                     negative_mask, perceptive_mask, corrected_resampled_ttest, five_by_two_cv_ttest,
                                     mcnemar_test, paired_ttest))
