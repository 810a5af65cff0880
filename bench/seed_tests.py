"""Which across-seed test keeps its false-alarm rate? A simulation for issue 17 (seeds as a pipeline dimension).

The study compares two models per training seed (the reference FreezeB5 and a FreezeBk, both trained with
that seed) on the same test images of one class. With no true difference, the per-seed recall difference
still moves from seed to seed (the default run's negative controls: contempt recall 0.65, 0.74 and 0.73
against the source's 0.74) and some images are hard for every model. A test whose unit of replication is
the image (McNemar on one seed, or on every seed's pairs pooled: a Mantel-Haenszel test with each image pair
as a stratum is this McNemar) takes the part of that movement that is not image-level
noise (b_sm below: how well a seed's training went as a whole) for an effect.

This script draws such null data and prints, per candidate test, the share of simulated studies it rejects
at alpha (with a 95 % Wilson interval), and its power against a real recall drop. Not a test: the
calibration test of whichever method the study adopts belongs in tests/stats.

Model of one class (logit scale), image i, seed s, model m in {reference, compared}:
    logit P(correct) = mu + a_i + b_sm + u_smi + delta * [m = compared]
    a_i ~ N(0, image_sd)     difficulty shared by every model
    b_sm ~ N(0, seed_sd)     how well this seed's training of this model went
    u_smi ~ N(0, idio_sd)    which images this particular trained model happens to get right
Defaults give a recall near 0.74 and a seed-to-seed SD of one model's recall near 0.05 (printed), as the negatives'.

Run from the project root (about 5 minutes on 2 cores, the mixed model most of it):
    .venv/bin/python bench/seed_tests.py [--sims 2000] [--glmm-sims 100] [--seed-sd 0.1 0.3]

What it showed (2026-12-01, defaults): the t-test over seeds keeps alpha everywhere (0.043-0.059) but has
little power with 2-3 seeds (0.11-0.27 for a 0.08 drop; 0.38-0.62 with 5); McNemar keeps alpha only while
b_sm is small (SD 0.1: 0.03-0.05; SD 0.3: 0.11-0.16); signed-rank can never reject with <= 5 seeds; the
variational-Bayes mixed model rejects 15-39 % of null studies. Which regime the study is in is for the
replicated seeds to measure, not for this script.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
from scipy import optimize, special, stats
from statsmodels.stats.proportion import proportion_confint

from facetransfer.stats import mcnemar_test

Study = tuple[np.ndarray, np.ndarray]  # correct_ref, correct_cmp: (n_seeds, n_images) bool each


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5],
                        help="seeds per study (smoke, default, paper)")
    parser.add_argument("--images", type=int, default=100, help="test images of the class (the default test set: 100)")
    parser.add_argument("--recall", type=float, default=0.74, help="the reference's mean recall")
    parser.add_argument("--image-sd", type=float, default=1.5)
    parser.add_argument("--seed-sd", type=float, nargs="+", default=[0.1, 0.3],
                        help="SDs of b_sm to try: 0.1 matches the negatives' recall spread, 0.3 a seed-dominated one")
    parser.add_argument("--idio-sd", type=float, default=1.0)
    parser.add_argument("--drop", type=float, default=0.08, help="recall drop of the compared model for the power rows")
    parser.add_argument("--sims", type=int, default=2000, help="simulated studies per cell")
    parser.add_argument("--glmm-sims", type=int, default=100, help="studies for the (slow) mixed model; 0 skips it")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--rng", type=int, default=2022)
    return parser.parse_args(argv)


def simulate(rng: np.random.Generator, args: argparse.Namespace, n_seeds: int, mu: float, delta: float,
             seed_sd: float) -> Study:
    """One simulated study: correctness of both models on the same images, per seed."""
    image = rng.normal(0.0, args.image_sd, size=(1, 1, args.images))          # (1, 1, N)
    seed_model = rng.normal(0.0, seed_sd, size=(n_seeds, 2, 1))               # (S, 2, 1)
    idio = rng.normal(0.0, args.idio_sd, size=(n_seeds, 2, args.images))       # (S, 2, N)
    shift = np.array([0.0, delta]).reshape(1, 2, 1)
    correct = rng.random((n_seeds, 2, args.images)) < special.expit(mu + image + seed_model + idio + shift)
    return correct[:, 0], correct[:, 1]


def calibrate(args: argparse.Namespace, drop: float, seed_sd: float, rng: np.random.Generator) -> tuple[float, float]:
    """(mu, delta): the intercept whose mean recall over images and seeds is args.recall (the noise terms pull
    the mean of expit toward 0.5, so mu != logit(recall)) and the shift that lowers it by `drop`; roots
    found on one large draw of the summed noise."""
    z = (rng.normal(0, args.image_sd, 200_000) + rng.normal(0, seed_sd, 200_000)
         + rng.normal(0, args.idio_sd, 200_000))

    def solve(target: float) -> float:  # mean expit(x + z) rises with x: one root in [-10, 10]
        return optimize.brentq(lambda x: special.expit(x + z).mean() - target, -10.0, 10.0, xtol=1e-10)

    mu = solve(args.recall)
    return mu, solve(args.recall - drop) - mu


# ----------------------------------------------------------------------------- the candidate tests (p-values)

def mcnemar_first_seed(study: Study) -> float:
    """Today's verdict: one seed, McNemar over images."""
    ref, cmp_ = study
    return mcnemar_test(ref[0], cmp_[0]).pvalue


def mcnemar_pooled(study: Study) -> float:
    """Every seed's image pairs pooled, as if each were another image."""
    ref, cmp_ = study
    return mcnemar_test(ref.ravel(), cmp_.ravel()).pvalue


def paired_t_over_seeds(study: Study) -> float:
    """The seed is the unit: one recall difference per seed, one-sample t-test (S - 1 df)."""
    ref, cmp_ = study
    diffs = cmp_.mean(axis=1) - ref.mean(axis=1)
    with warnings.catch_warnings():  # identical differences: t is +-inf (p 0) or, all zero, undefined (nan)
        warnings.simplefilter("ignore")
        p = stats.ttest_1samp(diffs, 0.0).pvalue
    return 1.0 if np.isnan(p) else float(p)


def wilcoxon_over_seeds(study: Study) -> float:
    """Signed-rank over seeds, exact: its smallest two-sided p is 2 / 2**S, so with <= 5 seeds never < 0.05."""
    ref, cmp_ = study
    diffs = cmp_.mean(axis=1) - ref.mean(axis=1)
    if np.all(diffs == 0):
        return 1.0
    return stats.wilcoxon(diffs, zero_method="zsplit", method="exact").pvalue


def bayes_mixed_glm(study: Study) -> float:
    """statsmodels' variational-Bayes logistic mixed model: correct ~ model, random image and seed x model
    intercepts; a two-sided normal p-value of the model coefficient's posterior mean / SD."""
    import pandas as pd
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    ref, cmp_ = study
    n_seeds, n_images = ref.shape
    seed, image = np.meshgrid(np.arange(n_seeds), np.arange(n_images), indexing="ij")
    frame = pd.DataFrame({
        "correct": np.concatenate([ref.ravel(), cmp_.ravel()]).astype(float),
        "compared": np.repeat([0.0, 1.0], ref.size),
        "image": np.tile(image.ravel(), 2),
        "seed_model": np.concatenate([seed.ravel(), seed.ravel() + n_seeds]),
    })
    model = BinomialBayesMixedGLM.from_formula(
        "correct ~ compared", {"image": "0 + C(image)", "seed_model": "0 + C(seed_model)"}, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit_vb()
    z = fit.fe_mean[1] / fit.fe_sd[1]
    return float(2 * stats.norm.sf(abs(z)))


TESTS: dict[str, Callable[[Study], float]] = {
    "McNemar, first seed only (today)": mcnemar_first_seed,
    "McNemar, all seeds' pairs pooled": mcnemar_pooled,
    "paired t over seeds": paired_t_over_seeds,
    "Wilcoxon signed-rank over seeds": wilcoxon_over_seeds,
    "logistic mixed model (VB), Wald z": bayes_mixed_glm,
}


def main() -> None:
    args = parse_args()
    rng = np.random.default_rng(args.rng)
    print(f"one class, {args.images} test images, reference recall {args.recall}; logit-scale SDs: image "
          f"{args.image_sd}, per-image {args.idio_sd}, seed x model {args.seed_sd}; alpha {args.alpha}")
    print(f"power: the compared model's recall lower by {args.drop}. Default run's negative controls, for scale: "
          "contempt recall 0.65, 0.74, 0.73 (SD ~0.05)\n")
    print(f"| seed x model SD | seeds | test | rejects under no difference [95 % CI] | power, drop {args.drop} | "
          "s per study |")
    print("|---|---|---|---|---|---|")
    for seed_sd in args.seed_sd:
        mu, delta = calibrate(args, args.drop, seed_sd, rng)
        spread = np.std([simulate(rng, args, 1, mu, 0.0, seed_sd)[0].mean() for _ in range(4000)])
        for n_seeds in args.seeds:
            for name, test in TESTS.items():
                sims = args.glmm_sims if test is bayes_mixed_glm else args.sims
                if sims == 0:
                    continue
                started = time.perf_counter()
                null = sum(test(simulate(rng, args, n_seeds, mu, 0.0, seed_sd)) < args.alpha for _ in range(sims))
                power = sum(test(simulate(rng, args, n_seeds, mu, delta, seed_sd)) < args.alpha for _ in range(sims))
                per_study = (time.perf_counter() - started) / (2 * sims)
                low, high = proportion_confint(null, sims, alpha=0.05, method="wilson")
                print(f"| {seed_sd} (recall SD {spread:.3f}) | {n_seeds} | {name} | {null / sims:.3f} "
                      f"[{low:.3f}, {high:.3f}] (n={sims}) | {power / sims:.3f} | {per_study:.4f} |")


if __name__ == "__main__":
    main()
