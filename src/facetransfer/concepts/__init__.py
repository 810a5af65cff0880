"""Concept probes (Prajod et al. 2022, section 4.3): does a model's latent space encode an action unit?

`last_block_features` extracts the probed representation; `probe_f1` trains linear SVMs
on it over repeated stratified 2-fold CV with folds shared between models (paired
scores); `compare_probes` runs the three paired tests on two models' scores.
"""

from facetransfer.concepts.compare import compare_probes
from facetransfer.concepts.features import block_features, last_block_features
from facetransfer.concepts.probes import ProbeSettings, fold_plan, probe_f1

__all__ = ["ProbeSettings", "block_features", "compare_probes", "fold_plan", "last_block_features", "probe_f1"]
