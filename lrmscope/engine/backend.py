"""The backend protocol: what a decoding-mode controller needs from a text generator."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from lrmscope.engine.settings import SamplerSettings
from lrmscope.errors import LrmscopeError

# content_filter: a provider stopped the response with its content filter (a served model).
StreamEnd = Literal["stop", "eos", "length", "context", "content_filter"]


@dataclass(frozen=True)
class ApiReport:
    """What a served chat model's server said of a response beside its text (engine/
    remote_chat.py): where the thought came from (`reasoning_content`, `reasoning`, `inline`
    think tags, or `none`: the server gave no thought), the token usage it reported, its own
    finish reason, and the reasoning controls the request carried."""

    thought_source: str | None = None
    usage: dict | None = None
    finish: str | None = None
    controls: dict | None = None


@dataclass(frozen=True)
class Piece:
    """Text decoded from `tokens` new tokens. The last piece of a stream carries `end`:
    stop (a stop string matched; it is not in the text), eos, length (max_tokens reached),
    context (the context window is full) or content_filter; a served chat model's pieces may
    carry what its server reported so far (`report`)."""

    text: str
    tokens: int
    end: StreamEnd | None = None
    report: ApiReport | None = None


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


def check_fits(count: int, n_ctx: int | None) -> int:
    """`count` prompt tokens against a context of `n_ctx` (None: no known limit)."""
    if n_ctx is not None and count >= n_ctx:
        raise LrmscopeError(
            f"the prompt has {count} tokens but the context holds {n_ctx}: shorten it by "
            f"{count - n_ctx + 1} tokens or more, or raise --ctx"
        )
    return count


class Backend(Protocol):
    """A text generator. Closing the iterator returned by `stream` stops the generation."""

    name: str

    @property
    def model_name(self) -> str:
        """The model as runs and the views name it."""
        ...

    @property
    def model_fingerprint(self) -> str:
        """What identifies the model (and its chat template): a resumed run must match it."""
        ...

    def model_meta(self) -> dict:
        """What to store about the model with a run (JSON-serialisable)."""
        ...

    def close(self) -> None:
        """Free what the backend holds (model, context, connections); it is unusable after."""
        ...

    def render(self, messages: Sequence[Message]) -> str:
        """The chat prompt, rendered with the model's own template, ready for generation."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def check_prompt(self, prompt: str) -> int:
        """The prompt's token count; LrmscopeError saying how much fits if it leaves no room
        to generate (see `check_fits`)."""
        ...

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
        """Generate from `prompt`; closing the stream ends it early. A backend without grammar
        support rejects a grammar."""
        ...

    def info(self) -> dict:
        """What to store about the backend and model with a run (JSON-serialisable)."""
        ...
