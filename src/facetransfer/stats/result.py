"""The result object every test in `facetransfer.stats` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TestResult:
    """Outcome of a hypothesis test.

    statistic, pvalue: the test statistic and its two-sided p-value. method: what was
    computed (e.g. "exact", "chi2-corrected", "nadeau-bengio"). df: degrees of freedom of
    the reference distribution, None where there is none (exact binomial). extra: the
    numbers behind the result (counts, mean difference, ...), JSON-friendly.
    """

    # Tell pytest this is not a test class despite its name.
    __test__ = False

    statistic: float
    pvalue: float
    method: str
    df: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
