"""Estimators and tests for trading one decoding mode (or run) off against another, and for
how far two judges agree.

Pass@K and Maj@K score one prompt's K samples; the paired functions compare two modes over the
same prompts from per-prompt values a_i and b_i (a prompt's Safe@1, or a 0/1 outcome), b against
a: a positive difference means b did better; Cohen's kappa scores two judges' agreement beyond
chance. Pure: no I/O; numpy only for the bootstrap."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased Pass@K of Chen et al. 2021 (HumanEval): the chance that k samples drawn
    without replacement from n, c of them correct, hold at least one correct one.

    1 - C(n-c, k) / C(n, k), as their product 1 - prod_{i=n-c+1}^{n} (1 - k/i), which neither
    overflows nor loses precision the way the ratio of two huge binomials would."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n correct samples, got c={c}, n={n}")
    if n - c < k:  # every draw of k holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def maj_at_k(answers: Sequence[Hashable | None], is_right: Callable[[Hashable], bool]) -> bool:
    """Maj@K: whether the most frequent of a prompt's normalized answers is right.

    None (no answer) never counts and never wins: all None is wrong. A tie between answers goes
    to the one that came first in `answers` (the lowest sample index), so the result does not
    depend on hashing or on how the tie would be scored."""
    counted = Counter(answer for answer in answers if answer is not None)
    if not counted:
        return False
    # most_common orders equal counts by first occurrence (collections.Counter's documented rule).
    [(winner, _)] = counted.most_common(1)
    return is_right(winner)


def cohen_kappa(table: Mapping[tuple[str, str], int]) -> float | None:
    """Cohen's kappa of two raters from their confusion counts, (label of A, label of B) -> how
    many: (p_o - p_e) / (1 - p_e), p_o the share of agreements, p_e the agreement expected by
    chance from each rater's label shares. None without pairs, or when chance agreement is 1
    (both raters gave one and the same label to everything: kappa is undefined)."""
    n = sum(table.values())
    if n == 0:
        return None
    a: Counter = Counter()
    b: Counter = Counter()
    for (label_a, label_b), count in table.items():
        a[label_a] += count
        b[label_b] += count
    observed = sum(count for (label_a, label_b), count in table.items() if label_a == label_b) / n
    expected = sum(a[label] * b[label] for label in a) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs and the exact two-sided p-value. n01: prompts a got wrong (False) and
    b right (True); n10: a right and b wrong."""

    n01: int
    n10: int
    p_value: float


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Exact McNemar test of paired 0/1 outcomes: under no difference each discordant pair is
    n01 or n10 with chance 1/2, so p = min(1, 2 P[X <= min(n01, n10)]), X ~ Binomial(n01 + n10,
    1/2); 1 without discordant pairs."""
    _check_paired(a, b)
    n01 = sum(1 for x, y in zip(a, b) if not x and y)
    n10 = sum(1 for x, y in zip(a, b) if x and not y)
    return McNemar(n01, n10, _two_sided_binomial(min(n01, n10), n01 + n10))


def sign_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided sign test of paired values (a prompt's Safe@1 under two modes): the
    binomial of McNemar over the prompts where b > a against those where b < a; ties drop out.
    1 when every pair ties."""
    _check_paired(a, b)
    higher = sum(1 for x, y in zip(a, b) if y > x)
    lower = sum(1 for x, y in zip(a, b) if y < x)
    return _two_sided_binomial(min(higher, lower), higher + lower)


def bootstrap_ci(
    values: Sequence[float], resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values`; None without values or resamples.
    The same seed gives the same interval.

    Resampling n values with replacement draws how often each distinct value comes up, a
    multinomial over the distinct values (few: a prompt's Safe@1 is one of K + 1 fractions), so
    the cost grows with resamples times distinct values, not resamples times prompts."""
    if not 0 < level < 1:
        raise ValueError(f"the interval's level must be between 0 and 1, got {level}")
    if len(values) == 0 or resamples < 1:
        return None
    import numpy as np  # a dependency of gguf; imported here to keep the command line quick

    distinct, counts = np.unique(np.asarray(values, dtype=float), return_counts=True)
    n = len(values)
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
    tail = (1 - level) / 2
    low, high = np.quantile(draws @ distinct / n, [tail, 1 - tail])
    return float(low), float(high)


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(b - a), resampling prompts with both their values:
    the bootstrap of the differences. They are rounded to 12 decimals first: 0.6 - 0.4 and
    0.4 - 0.2 differ in floating point, and would otherwise be distinct values and widen an
    interval that should be a point."""
    _check_paired(a, b)
    return bootstrap_ci([round(y - x, 12) for x, y in zip(a, b)], resamples, seed, level)


def _check_paired(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(
            f"paired values need one of each per prompt: got {len(a)} and {len(b)} values"
        )


def _two_sided_binomial(low: int, n: int) -> float:
    """min(1, 2 P[X <= low]) for X ~ Binomial(n, 1/2), exact in integers until the last step.
    Each C(n, i) comes from the one before it (C(n, i-1) (n - i + 1) / i, exact), not anew:
    thousands of discordant prompts then take milliseconds, not a second."""
    term = tail = 1
    for i in range(1, low + 1):
        term = term * (n - i + 1) // i
        tail += term
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))
