"""The names of the study's models, defined once: keys in tables and metrics, folders on disk, run names.

Dependency-free (no torch, no pandas): every stage and the report import it.

  freeze_name(3)   "freeze3"    a pain model with its first 3 conv blocks frozen (or its retrained emotion
                                head): the key in every metrics file and the folder name under models/
  freeze_label(3)  "FreezeB3"   the same model as the paper writes it (run names, printed lines)
  seed_folder(7)   "seed7"      one training seed's models, under models/pain, models/retrain, ...
  SOURCE           "emotion"    the source emotion model, as the transfer-sweep analyses key it

"Reference" means the model the others are compared with: FreezeB5 (all emotion conv blocks kept;
the `reference` param of forgetting, saliency and concepts) in the transfer sweep, and the source
model in the planted-forgetting controls, whose outputs key it CONTROLS_REFERENCE.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = "emotion"
# The source model as metrics/controls.json and reports/controls/ key it (their schema predates SOURCE).
CONTROLS_REFERENCE = "reference"
# Relevance-based masking methods (Schiller et al. 2020): masked/<method>/ datasets, trainee variants
# <method> and <method>-then-plain.
MASKING_METHODS = ("negative", "mean", "perceptive")

# What every training stage writes into its --out folder (stages/_training.py), and the analyses read.
MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "test_predictions.csv"  # one row per test image: row, label, predicted, p_<class>


def freeze_name(k: int) -> str:
    return f"freeze{k}"


def freeze_label(k: int) -> str:
    return f"FreezeB{k}"


def freeze_block(name: str) -> int:
    """freeze_name's inverse: "freeze3" -> 3."""
    if not name.startswith("freeze") or not name[6:].isdigit():
        raise ValueError(f"{name!r} is not a freeze model name (freeze0..freeze5)")
    return int(name[6:])


def seed_folder(seed: int) -> str:
    return f"seed{seed}"


def sweep_model(root: Path, seed: int, k: int, file: str = MODEL_FILE) -> Path:
    """A file of one model of the transfer sweep: <root>/seed<s>/freeze<k>/<file> (models/pain, models/retrain)."""
    return Path(root) / seed_folder(seed) / freeze_name(k) / file
