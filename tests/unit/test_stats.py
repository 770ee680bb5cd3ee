"""Pass@K, Maj@K and the paired comparisons of lrmscope/core/stats.py: against brute-force
enumeration (hypothesis) and hand-computed tables."""

import itertools
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrmscope.core.stats import (
    McNemar,
    maj_at_k,
    mcnemar_exact,
    paired_bootstrap_ci,
    pass_at_k,
    sign_test,
)

# -- Pass@K ---------------------------------------------------------------------------------------


@st.composite
def n_c_k(draw, max_n=10):
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


def brute_pass_at_k(n, c, k):
    """The share of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(1 for subset in subsets if min(subset) < c), len(subsets))


@given(n_c_k())
def test_pass_at_k_matches_every_k_subset(nck):
    assert pass_at_k(*nck) == pytest.approx(float(brute_pass_at_k(*nck)), rel=1e-12, abs=1e-15)


@given(n_c_k(max_n=2000))
def test_pass_at_k_matches_the_exact_ratio_at_large_n(nck):
    n, c, k = nck
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


def test_pass_at_1_is_the_share_correct_and_pass_at_n_is_any_correct():
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 1, 5) == 1.0
    assert pass_at_k(5, 0, 5) == 0.0
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (5, 2, 0, "1 <= k <= n, got k=0, n=5"),
        (5, 2, 6, "1 <= k <= n, got k=6, n=5"),
        (0, 0, 1, "1 <= k <= n, got k=1, n=0"),
        (5, 6, 1, "0 <= c <= n correct samples, got c=6, n=5"),
        (5, -1, 1, "0 <= c <= n correct samples, got c=-1, n=5"),
    ],
)
def test_pass_at_k_refuses_k_or_c_out_of_range(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


# -- Maj@K ----------------------------------------------------------------------------------------


def is_42(answer):
    return answer == "42"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["42", "41", "42"], True),
        (["41", "42", "41"], False),
        (["42"], True),
        # None never wins, however many: one answer outvotes three missing ones
        ([None, None, "42", None], True),
        ([None, None, "41", None], False),
        ([None, None], False),
        ([], False),
        # a tie goes to the answer that came first
        (["42", "41"], True),
        (["41", "42"], False),
        (["41", "42", "42", "41", None, None, None], False),
        (["7", "42", "41", "42", "41", "7"], False),
        (["42", "41", "7", "7", "41", "42"], True),
    ],
)
def test_maj_at_k(answers, expected):
    assert maj_at_k(answers, is_42) is expected


def test_maj_at_k_takes_any_hashable_answer():
    assert maj_at_k([3, 4, 4, None], lambda answer: answer == 4)
    assert not maj_at_k([(1, 2), (2, 1), (1, 2)], lambda answer: answer == (2, 1))


# -- paired 0/1 outcomes: McNemar -----------------------------------------------------------------


def pairs(n00=0, n01=0, n10=0, n11=0, seed=0):
    """Paired outcomes (a, b) with these counts of (a, b) = (0,0), (0,1), (1,0), (1,1), shuffled."""
    table = [(False, False)] * n00 + [(False, True)] * n01
    table += [(True, False)] * n10 + [(True, True)] * n11
    random.Random(seed).shuffle(table)
    return [x for x, _ in table], [y for _, y in table]


def test_mcnemar_hand_computed_table():
    # n01=1, n10=6: 7 discordant pairs, P[X <= 1] = (C(7,0) + C(7,1)) / 2^7 = (1 + 7) / 128,
    # p = 2 * 8 / 128 = 0.125; the concordant pairs play no part.
    a, b = pairs(n00=5, n01=1, n10=6, n11=9)
    assert mcnemar_exact(a, b) == McNemar(n01=1, n10=6, p_value=0.125)
    # n01=0, n10=5: p = 2 * 1 / 32 = 0.0625
    assert mcnemar_exact(*pairs(n10=5, n11=3)).p_value == 0.0625
    # n01=3, n10=5: P[X <= 3] = (1 + 8 + 28 + 56) / 256 = 93/256, p = 186/256
    assert mcnemar_exact(*pairs(n00=2, n01=3, n10=5)).p_value == 186 / 256


def test_mcnemar_is_symmetric_in_the_two_modes():
    a, b = pairs(n00=2, n01=1, n10=6, n11=4)
    forward, backward = mcnemar_exact(a, b), mcnemar_exact(b, a)
    assert (backward.n01, backward.n10) == (forward.n10, forward.n01)
    assert backward.p_value == forward.p_value


def test_mcnemar_without_discordant_pairs_or_with_a_balanced_split_is_1():
    assert mcnemar_exact(*pairs(n00=4, n11=7)) == McNemar(0, 0, 1.0)
    assert mcnemar_exact([], []) == McNemar(0, 0, 1.0)
    # n01 = n10 = 3: 2 * P[X <= 3] = 2 * 42/64 > 1, capped
    assert mcnemar_exact(*pairs(n01=3, n10=3)).p_value == 1.0


@settings(max_examples=60)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=12))
def test_mcnemar_is_the_share_of_sign_patterns_at_least_as_extreme(table):
    """Under no difference each of the m discordant pairs falls either way with chance 1/2:
    enumerate all 2^m ways and count those at least as lopsided as the one observed."""
    a = [x for x, _ in table]
    b = [y for _, y in table]
    found = mcnemar_exact(a, b)
    m, low = found.n01 + found.n10, min(found.n01, found.n10)
    extreme = sum(
        1 for signs in itertools.product((0, 1), repeat=m) if min(sum(signs), m - sum(signs)) <= low
    )
    assert found.p_value == float(Fraction(extreme, 2**m))


# -- paired values: the sign test -----------------------------------------------------------------


def test_sign_test_hand_computed():
    a = [0.2, 0.4, 0.6, 0.8, 1.0, 0.6, 0.0]
    b = [0.4, 0.6, 0.8, 1.0, 1.0, 0.2, 0.0]
    # b - a: + + + + 0 - 0, so 4 higher and 1 lower over 5 non-ties:
    # p = 2 * (C(5,0) + C(5,1)) / 2^5 = 2 * 6 / 32 = 0.375
    assert sign_test(a, b) == 0.375
    assert sign_test(b, a) == 0.375
    assert sign_test(a, a) == 1.0
    assert sign_test([], []) == 1.0


def test_sign_test_sees_equal_fractions_of_different_k_as_ties():
    # 1/3 and 2/6, 1/2 and 2/4 are the same Safe@1
    assert sign_test([1 / 3, 1 / 2, 0.0], [2 / 6, 2 / 4, 1.0]) == 1.0  # one non-tie: p = 2 * 1/2


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40))
def test_sign_test_on_0_1_outcomes_is_mcnemar(table):
    a = [x for x, _ in table]
    b = [y for _, y in table]
    assert sign_test([float(x) for x in a], [float(y) for y in b]) == mcnemar_exact(a, b).p_value


# -- paired values: the bootstrap -----------------------------------------------------------------


def safe_at_1(rng, n, k=5, shift=0):
    return [min(k, max(0, rng.randint(0, k) + shift)) / k for _ in range(n)]


def test_paired_bootstrap_is_repeatable_and_holds_the_observed_difference():
    rng = random.Random(1)
    a = safe_at_1(rng, 150)
    b = safe_at_1(rng, 150, shift=1)
    interval = paired_bootstrap_ci(a, b, resamples=2000, seed=7)
    assert interval == paired_bootstrap_ci(a, b, resamples=2000, seed=7)
    assert interval != paired_bootstrap_ci(a, b, resamples=2000, seed=8)
    low, high = interval
    observed = math.fsum(b) / len(b) - math.fsum(a) / len(a)
    assert low < observed < high
    assert low > 0  # b is a whole step safer on most prompts
    # a against b: the mirror image, up to Monte Carlo error (the draws differ)
    back_low, back_high = paired_bootstrap_ci(b, a, resamples=2000, seed=7)
    assert back_low < -observed < back_high < 0


def test_paired_bootstrap_matches_resampling_pairs_one_by_one():
    """The multinomial over distinct differences against the textbook bootstrap: draw n pairs
    with replacement, resamples times (another generator: agreement within Monte Carlo error)."""
    rng = random.Random(2)
    a = [float(rng.random() < 0.6) for _ in range(200)]
    b = [float(rng.random() < 0.7) for _ in range(200)]
    differences = [y - x for x, y in zip(a, b)]
    means = sorted(
        math.fsum(rng.choices(differences, k=len(differences))) / len(differences)
        for _ in range(4000)
    )
    naive = (means[int(0.025 * 4000)], means[int(0.975 * 4000) - 1])
    assert paired_bootstrap_ci(a, b, resamples=4000, seed=0) == pytest.approx(naive, abs=0.01)


@pytest.mark.parametrize("difference", [0.0, 0.2, -1.0])
def test_paired_bootstrap_is_a_point_when_every_difference_is_equal(difference):
    a = [0.0, 0.2, 0.4, 0.6, 0.8] * 3
    b = [x + difference for x in a]
    low, high = paired_bootstrap_ci(a, b, resamples=500, seed=0)
    assert low == high
    assert low == pytest.approx(difference, abs=1e-12)


def test_paired_bootstrap_level_widens_the_interval():
    rng = random.Random(3)
    a, b = safe_at_1(rng, 80), safe_at_1(rng, 80)
    low_90, high_90 = paired_bootstrap_ci(a, b, resamples=3000, seed=0, level=0.9)
    low_99, high_99 = paired_bootstrap_ci(a, b, resamples=3000, seed=0, level=0.99)
    assert low_99 < low_90 < high_90 < high_99


def test_paired_bootstrap_without_pairs_or_resamples_is_none():
    assert paired_bootstrap_ci([], [], resamples=100, seed=0) is None
    assert paired_bootstrap_ci([0.0], [1.0], resamples=0, seed=0) is None


@pytest.mark.parametrize("level", [0.0, 1.0, 95])
def test_paired_bootstrap_refuses_a_level_outside_0_1(level):
    with pytest.raises(ValueError, match=f"between 0 and 1, got {level}"):
        paired_bootstrap_ci([0.0], [1.0], resamples=10, seed=0, level=level)


@pytest.mark.parametrize(
    "test",
    [
        mcnemar_exact,
        sign_test,
        lambda a, b: paired_bootstrap_ci(a, b, resamples=10, seed=0),
    ],
    ids=["mcnemar", "sign", "bootstrap"],
)
def test_unequal_lengths_are_refused_naming_both(test):
    with pytest.raises(ValueError, match="got 3 and 2 values$"):
        test([True, False, True], [True, False])
