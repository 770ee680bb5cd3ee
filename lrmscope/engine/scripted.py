"""A scripted backend: deterministic text, no model. For UI tests and pure controller tests only;
the llama.cpp backend is what proves the engine."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Sequence

from lrmscope.engine.backend import Message, Piece, check_fits
from lrmscope.engine.prompt import FALLBACK_TEMPLATE, render_chat
from lrmscope.engine.settings import SamplerSettings
from lrmscope.engine.stops import StopMatcher

_TOKEN = re.compile(r"\s*\S+|\s+")


class ScriptedBackend:
    """Each call continues with `script(prompt)`, split into word-sized tokens, then ends (eos).

    `delay` sleeps before each token, so tests can act while a stream is running.
    """

    name = "scripted"
    model_name = "scripted"
    model_fingerprint = "scripted"
    n_ctx: int | None = None  # no context limit unless a test sets one

    def __init__(self, script: str | Callable[[str], str], *, delay: float = 0.0) -> None:
        self._script = script if callable(script) else (lambda _prompt: script)
        self.delay = delay
        self.calls: list[dict] = []

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(FALLBACK_TEMPLATE, messages)

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def check_prompt(self, prompt: str) -> int:
        return check_fits(self.count_tokens(prompt), self.n_ctx)

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop: Sequence[str],
        sampler: SamplerSettings,
        seed: int,
        grammar: str | None = None,
    ) -> Generator[Piece, None, None]:
        if grammar is not None:
            raise NotImplementedError("the scripted backend does not support grammars")
        self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "stop": list(stop)})
        matcher = StopMatcher(stop)
        tokens = _TOKEN.findall(self._script(prompt))
        for count, token in enumerate(tokens[:max_tokens], start=1):
            if self.delay:
                time.sleep(self.delay)
            text, stopped = matcher.push(token)
            if stopped:
                yield Piece(text, 1, "stop")
                return
            if count == max_tokens:
                yield Piece(text + matcher.rest(), 1, "length" if count < len(tokens) else "eos")
                return
            yield Piece(text, 1)
        yield Piece(matcher.rest(), 0, "eos")

    def info(self) -> dict:
        return {"backend": self.name}

    def model_meta(self) -> dict:
        return {}

    def close(self) -> None:
        """Nothing to free."""
