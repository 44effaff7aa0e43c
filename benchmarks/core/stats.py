"""Confidence intervals and paired comparisons for accuracy figures.

* `wilson_interval`: the Wilson score interval for a binomial proportion (default 95%); unlike the
  normal approximation it stays inside [0, 1] and behaves at 0/n and n/n.
* `mcnemar_exact`: the exact (binomial) McNemar test on the discordant pairs of two runs over the
  same samples.
* `paired_bootstrap`: a percentile bootstrap interval of the accuracy difference (B - A),
  resampling samples (pairs) with a seeded generator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy.stats import binomtest, norm


@dataclass
class Proportion:
    """``k`` successes of ``n`` with its interval (``low``, ``high``) at ``level``."""

    k: int
    n: int
    value: float
    low: float
    high: float
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson_interval(k: int, n: int, level: float = 0.95) -> Proportion:
    """Wilson score interval of ``k/n``; for ``n == 0`` the value is NaN and the interval [0, 1]."""
    if n == 0:
        return Proportion(0, 0, float("nan"), 0.0, 1.0, level)
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp: rounding can put the bound a hair on the wrong side of p at k = 0 or k = n
    return Proportion(k, n, p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), level)


@dataclass
class PairedComparison:
    """Two runs on the same ``n`` samples: accuracies, discordant counts, McNemar p and bootstrap CI.

    ``b`` counts samples A got right and B wrong; ``c`` the reverse. ``diff`` is acc(B) - acc(A).
    """

    n: int
    acc_a: float
    acc_b: float
    diff: float
    b: int
    c: int
    mcnemar_p: float
    diff_low: float
    diff_high: float
    level: float
    n_boot: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of ``b`` successes in ``b + c`` at 0.5."""
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def paired_bootstrap(a: Sequence[bool], b: Sequence[bool], n_boot: int = 10000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile interval of mean(b) - mean(a) over ``n_boot`` paired resamples."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    diffs = y[idx].mean(axis=1) - x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha))


def compare_paired(a: Sequence[bool], b: Sequence[bool], n_boot: int = 10000, level: float = 0.95,
                   seed: int = 0) -> PairedComparison:
    """Compare two runs' per-sample correctness on the same samples, in the same order."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired comparison needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
    x, y = np.asarray(a, bool), np.asarray(b, bool)
    nb, nc = int(np.sum(x & ~y)), int(np.sum(~x & y))
    low, high = paired_bootstrap(x, y, n_boot, level, seed)
    return PairedComparison(len(x), float(x.mean()), float(y.mean()), float(y.mean() - x.mean()), nb, nc,
                            mcnemar_exact(nb, nc), low, high, level, n_boot, seed)
