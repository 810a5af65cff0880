"""One training loop for every stage: data, losses, fit/predict, checkpoints, cached features."""
