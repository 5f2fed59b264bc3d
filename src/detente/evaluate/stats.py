"""Confidence intervals for means of per-game statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t).

    ``half = t_{0.975, n-1} · s / √n`` with ``s`` the sample standard deviation (ddof 1);
    a single value has an infinite half-width, and identical values a zero one.
    """
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.inf
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, float(stats.t.ppf(0.975, n - 1)) * math.sqrt(variance / n)
