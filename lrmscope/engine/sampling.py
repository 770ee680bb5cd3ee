"""Choosing the next token from a sequence's logits, in numpy.

llama.cpp's sampler chain copies the whole vocabulary into a candidate array and softmaxes it in
scalar C for every token: 0.55 ms a token for SmolLM2's 49,152 tokens on the 2-core machine,
against 0.08 ms here, and in a batched eval that time is spent on the scheduler thread while every
sequence waits (BENCHMARKS.md, "Eval throughput"). The definition is the one `SAMPLER_ORDER`
names, as llama.cpp (and vLLM) apply it: repeat penalty over the tokens this sampler chose, the
grammar (llama.cpp's own grammar engine), temperature, top-k, top-p, min-p, then one draw from what
is left. The draw uses the sample's own generator (numpy PCG64 seeded with the sample's seed), so
a sample repeats with its seed whichever path or batch made it.
"""

from __future__ import annotations

import ctypes
from collections import deque

import llama_cpp
import numpy as np

from lrmscope.engine.settings import SamplerSettings

# Repeat-penalty window, as llama.cpp's default; inert while repeat_penalty is 1.
PENALTY_LAST_N = 64
SAMPLER_ORDER = "penalties, grammar, temperature, top_k, top_p, min_p, dist (greedy at T=0)"

# The first probability floor for the top-p candidates, relative to the most likely token; it is
# lowered until the candidates above it hold top_p of the mass, so the nucleus is exact.
_FIRST_FLOOR = 1e-4

_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def nucleus(weights: np.ndarray, top_p: float) -> np.ndarray:
    """The indices of the smallest set of most likely tokens whose mass reaches top_p, most
    likely first (top-p with min_keep 1); `weights` are the probabilities times any positive
    factor. Sorting only the tokens above a floor is exact once those tokens hold top_p of the
    mass: the nucleus is a prefix of the sorted order."""
    mass = top_p * float(weights.sum())
    floor = _FIRST_FLOOR * float(weights.max())
    while True:
        candidates = np.flatnonzero(weights >= floor)
        if floor == 0.0 or weights[candidates].sum() >= mass:
            break
        floor = floor * 1e-6 if floor > 1e-30 else 0.0
    ordered = candidates[np.argsort(-weights[candidates], kind="stable")]
    kept = int(np.searchsorted(np.cumsum(weights[ordered]), mass)) + 1
    return ordered[:kept]


class _Grammar:
    """llama.cpp's grammar sampler over a candidate array this sampler owns."""

    def __init__(self, sampler, n_vocab: int) -> None:
        self.sampler = sampler
        self.data = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self.data["id"] = np.arange(n_vocab, dtype=np.int32)
        self.array = llama_cpp.llama_token_data_array(
            data=self.data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=n_vocab,
            selected=-1,
            sorted=False,
        )

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """The logits with every token the grammar forbids here at -inf."""
        self.data["logit"] = logits
        self.array.size, self.array.selected, self.array.sorted = len(logits), -1, False
        llama_cpp.llama_sampler_apply(self.sampler, ctypes.byref(self.array))
        return self.data["logit"].copy()

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self.sampler, token)

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.sampler)


class Sampler:
    """The sampler of one stream. `grammar` is a llama.cpp grammar sampler, which this sampler
    then owns and frees on close()."""

    def __init__(self, settings: SamplerSettings, seed: int, n_vocab: int, grammar=None) -> None:
        self.settings = settings
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.recent: deque[int] = deque(maxlen=PENALTY_LAST_N)
        self.grammar = _Grammar(grammar, n_vocab) if grammar is not None else None
        self._weights = np.empty(n_vocab, dtype=np.float32)

    def sample(self, logits: np.ndarray) -> int:
        """The next token, given the logits (not modified); the sampler remembers it."""
        token = self._choose(logits)
        self.recent.append(token)
        if self.grammar is not None:
            self.grammar.accept(token)
        return token

    def close(self) -> None:
        if self.grammar is not None:
            self.grammar.close()
            self.grammar = None

    def _penalized(self, logits: np.ndarray) -> np.ndarray:
        penalty = self.settings.repeat_penalty
        if penalty == 1.0 or not self.recent:
            return logits
        logits = logits.copy()
        seen = np.fromiter(set(self.recent), dtype=np.int64)
        values = logits[seen]
        logits[seen] = np.where(values <= 0, values * penalty, values / penalty)
        return logits

    def _choose(self, logits: np.ndarray) -> int:
        settings = self.settings
        logits = self._penalized(logits)
        if self.grammar is not None:
            logits = self.grammar.apply(logits)
        if settings.greedy:
            return int(np.argmax(logits))
        ids = None
        if 0 < settings.top_k < len(logits):
            ids = np.argpartition(logits, -settings.top_k)[-settings.top_k :]
            logits = logits[ids]
        # exp((logit - max) / T) into a buffer of the sampler's own: the probabilities up to
        # their sum, which only the nucleus needs
        weights = np.subtract(logits, logits.max(), out=self._weights[: len(logits)])
        weights *= np.float32(1.0 / settings.temperature)
        np.exp(weights, out=weights)
        kept = nucleus(weights, settings.top_p) if settings.top_p < 1.0 else np.arange(len(logits))
        weights = weights[kept]
        if settings.min_p > 0.0:
            floor = settings.min_p * weights.max()
            kept, weights = kept[weights >= floor], weights[weights >= floor]
        cumulative = np.cumsum(weights)
        draw = self.rng.random() * cumulative[-1]
        chosen = kept[min(int(np.searchsorted(cumulative, draw, side="right")), len(kept) - 1)]
        return int(chosen if ids is None else ids[chosen])
