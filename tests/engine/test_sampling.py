"""The numpy sampler against the definition it implements (docs/study.md "Sampling": temperature,
then top-k, top-p and min-p, then a draw), computed here the slow way with a full sort."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lrmscope.engine.sampling import Sampler, nucleus
from lrmscope.engine.settings import SamplerSettings


def reference_support(logits: np.ndarray, s: SamplerSettings) -> dict[int, float]:
    """token -> probability of being drawn, by the definition, with a full sort."""
    order = np.argsort(-logits, kind="stable")
    if s.top_k:
        order = order[: s.top_k]
    scaled = logits[order].astype(np.float64) / s.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if s.top_p < 1.0:
        kept = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
        order, probs = order[:kept], probs[:kept]
    if s.min_p > 0.0:
        keep = probs >= s.min_p * probs.max()
        order, probs = order[keep], probs[keep]
    return dict(zip(order.tolist(), (probs / probs.sum()).tolist(), strict=True))


# Logits on a grid of 1/64 between -30 and 30: distinct values stay distinct after the softmax
# (logits 1e-30 apart give equal probabilities, and then the order of a tie is arbitrary).
distinct_logits = arrays(
    np.float32,
    st.integers(2, 300),
    elements=st.integers(-30 * 64, 30 * 64).map(lambda i: i / 64),
    unique=True,
)


@settings(max_examples=300, deadline=None)
@given(distinct_logits, st.floats(0.01, 0.999))
def test_nucleus_is_the_smallest_most_likely_set_reaching_top_p(logits, top_p):
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    expected = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1]
    assert nucleus(probs, top_p).tolist() == expected.tolist()


@settings(max_examples=200, deadline=None)
@given(
    distinct_logits,
    st.floats(0.1, 2.0),
    st.floats(0.05, 1.0),
    st.integers(0, 20),
    st.sampled_from([0.0, 0.05, 0.3]),
    st.integers(0, 2**32 - 2),
)
def test_every_drawn_token_is_in_the_support_of_the_definition(
    logits, temperature, top_p, top_k, min_p, seed
):
    s = SamplerSettings(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p)
    support = reference_support(logits, s)
    sampler = Sampler(s, seed, len(logits))
    for _ in range(20):
        assert sampler.sample(logits) in support


@pytest.mark.parametrize(
    "s",
    [
        SamplerSettings(temperature=0.6, top_p=0.95),
        SamplerSettings(temperature=1.0, top_p=1.0),
        SamplerSettings(temperature=1.3, top_p=0.8, top_k=5, min_p=0.05),
    ],
    ids=["study", "plain", "all-truncations"],
)
def test_draws_follow_the_distribution_of_the_definition(s):
    logits = np.random.default_rng(7).normal(0, 2, 64).astype(np.float32)
    support = reference_support(logits, s)
    sampler = Sampler(s, 123, len(logits))
    draws = 20_000
    counts = np.bincount([sampler.sample(logits) for _ in range(draws)], minlength=len(logits))
    assert set(np.flatnonzero(counts)) <= set(support)
    for token, p in support.items():
        sigma = np.sqrt(draws * p * (1 - p))
        assert abs(counts[token] - draws * p) <= 5 * sigma + 1, (token, p, counts[token])


def test_a_seed_repeats_its_draws_and_the_logits_are_left_alone():
    logits = np.random.default_rng(3).normal(0, 3, 1000).astype(np.float32)
    logits.flags.writeable = False  # the sampler gets llama.cpp's buffer read-only
    s = SamplerSettings(temperature=1.0, top_p=0.99, repeat_penalty=1.3)

    def draws(seed: int) -> list[int]:
        sampler = Sampler(s, seed, len(logits))
        return [sampler.sample(logits) for _ in range(50)]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)


def test_greedy_takes_the_first_largest_logit():
    logits = np.array([0.5, 2.0, 2.0, -1.0], dtype=np.float32)
    sampler = Sampler(SamplerSettings(temperature=0.0, top_p=1.0), 0, 4)
    assert [sampler.sample(logits) for _ in range(3)] == [1, 1, 1]


def test_the_repeat_penalty_weighs_on_the_tokens_this_sampler_chose():
    # llama.cpp's rule: a positive logit is divided by the penalty, a negative one multiplied.
    logits = np.array([3.0, 2.9, -0.5, -0.6], dtype=np.float32)
    sampler = Sampler(SamplerSettings(temperature=0.0, top_p=1.0, repeat_penalty=1.1), 0, 4)
    assert [sampler.sample(logits) for _ in range(3)] == [0, 1, 0]
    negative = np.array([-3.0, -3.1, -5.0], dtype=np.float32)
    sampler = Sampler(SamplerSettings(temperature=0.0, top_p=1.0, repeat_penalty=1.1), 0, 3)
    assert [sampler.sample(negative) for _ in range(2)] == [0, 1]
