"""A backend over an OpenAI-compatible server's chat-completions endpoint: hosted reasoning models
(DeepSeek's API, OpenRouter) and servers that apply the model's template themselves (vLLM with a
reasoning parser, llama-server), `--api chat`.

The server renders the prompt, so `render` gives the messages themselves (as JSON), and the text
after them in a prompt P (the think opener, a prefill, the trace so far) is what the assistant
message must continue. The deltas become raw trace text (engine/deltas.py), so `Generation` runs
over this backend as over any other: `</think>` is its stop string while the thought is open, and
the stop is matched here (engine/stops.py). A chat response cannot be restarted after the thought
the way a completion can, so on that stop the response is held, and the next `stream()` of the
same generation, whose prompt is the one before plus the text and the close, reads on from it:
the default mode is one request. Anything else the controller writes into the trace (a prefill,
a MoreThink rethink string, a forced close) needs a request that continues an assistant message,
which only some servers offer (`--prefill-style`, docs/study.md "Hosted models"); without one, a
mode that needs it is refused before anything runs (`check_modes`).

The HTTP side is engine/openai_http.py's. Token counts per piece are the server's running usage
where it sends one, else one per chunk; the usage it reports at the end is saved as it is.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import requests

from lrmscope.engine.backend import ApiReport, Message, Piece, StreamEnd
from lrmscope.engine.deltas import DeltaJoiner, Segment, Start, reasoning_delta
from lrmscope.engine.openai_http import (
    REAL_CLOCK,
    Clock,
    ContextFull,
    EmptyStream,
    OpenAIClient,
    RateLimit,
    RemoteSettings,
    Transient,
)
from lrmscope.engine.remote import chunk_tokens, sampler_fields
from lrmscope.engine.settings import (
    THINK_CLOSE,
    THINK_OPEN,
    Mode,
    ModeSettings,
    SamplerSettings,
    check_choice,
    check_range,
)
from lrmscope.engine.stops import StopMatcher
from lrmscope.errors import LrmscopeError

BACKEND_NAME = "openai-chat"
PATH = "/chat/completions"
# docs/study.md "Hosted models": vLLM continues the last assistant message with
# continue_final_message (and no generation prompt); DeepSeek's API with `prefix: true` on it.
PREFILL_STYLES = ("vllm", "deepseek")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
_ENDS: dict[str, StreamEnd] = {
    "stop": "eos",
    "eos": "eos",
    "length": "length",
    "content_filter": "content_filter",
}


@dataclass(frozen=True)
class ChatSettings:
    """How assistant messages are continued, and the reasoning controls each request carries
    (saved with the run and with each sample)."""

    prefill_style: str | None = None
    reasoning_effort: str | None = None
    reasoning_budget: int | None = None  # thinking tokens, where the server caps them

    def __post_init__(self) -> None:
        if self.prefill_style is not None:
            check_choice("prefill style", self.prefill_style, PREFILL_STYLES)
        if self.reasoning_effort is not None:
            check_choice("reasoning effort", self.reasoning_effort, REASONING_EFFORTS)
        if self.reasoning_budget is not None:
            check_range("--reasoning-budget", self.reasoning_budget, 0, 10_000_000)

    def controls(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    def fields(self) -> dict:
        """The request fields of the controls: `reasoning_effort` as OpenAI-style APIs and vLLM
        read it; a budget as vLLM (`thinking_token_budget`) and llama-server
        (`thinking_budget_tokens`) read it, each ignoring the other's."""
        fields: dict = {}
        if self.reasoning_effort is not None:
            fields["reasoning_effort"] = self.reasoning_effort
        if self.reasoning_budget is not None:
            fields["thinking_token_budget"] = self.reasoning_budget
            fields["thinking_budget_tokens"] = self.reasoning_budget
        return fields

    def supported_modes(self) -> tuple[Mode, ...]:
        return tuple(Mode) if self.prefill_style else (Mode.DEFAULT,)

    def check_modes(self, modes: Sequence[Mode], mode: ModeSettings) -> None:
        """Refuse, before anything runs, what this endpoint cannot do without continuing an
        assistant message."""
        if self.prefill_style:
            return
        wanted = [m.value for m in modes if m not in self.supported_modes()]
        if mode.max_think is not None:
            wanted.append("--max-think")
        if wanted:
            raise LrmscopeError(
                f"--api chat without --prefill-style supports --mode default only, not "
                f"{', '.join(wanted)}: it needs a server that continues an assistant message "
                "(--prefill-style vllm for vLLM, deepseek for DeepSeek's API)"
            )


def messages_prompt(messages: Sequence[Message]) -> str:
    """The messages as the start of a prompt P (JSON; the rest of P is the assistant's)."""
    return json.dumps(
        [{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False
    )


def split_prompt(prompt: str) -> tuple[list[dict], str]:
    """A prompt P: the messages, and the text the assistant message continues."""
    try:
        messages, end = json.JSONDecoder().raw_decode(prompt)
    except ValueError:
        messages, end = None, 0
    if not isinstance(messages, list):
        raise LrmscopeError("a chat-completions prompt must start with its messages as JSON")
    return messages, prompt[end:]


class _Response:
    """One streamed chat response, read as raw text segments; held between two `stream()`
    calls when the thought's close stopped the first."""

    def __init__(
        self, http: OpenAIClient, response: requests.Response, joiner: DeltaJoiner, max_tokens: int
    ):
        self.http = http
        self.response = response
        self.joiner = joiner
        self.max_tokens = max_tokens  # the request's; it may still generate `room` tokens
        self.handed = 0  # tokens handed out in pieces
        self.pending: deque[Segment] = deque()
        self.end: StreamEnd | None = None
        self.finish: str | None = None
        self.usage: dict | None = None
        self.field: str | None = None  # the reasoning field the server used
        self.expect = ""  # the prompt a `stream()` reading on from here has
        self._segments = self._read()

    def take(self) -> Iterator[Segment]:
        while True:
            while self.pending:
                yield self.pending.popleft()
            segment = next(self._segments, None)
            if segment is None:
                return
            yield segment

    def _read(self) -> Iterator[Segment]:
        counted = events = 0
        for event in self.http.events(self.response):
            events += 1
            if isinstance(event.get("usage"), dict):
                self.usage = event["usage"]
            choices = event.get("choices") or []
            if not choices:  # the usage-only chunk after the last one
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            reasoning, field = reasoning_delta(delta)
            content = delta.get("content")
            content = content if isinstance(content, str) else ""
            tokens = chunk_tokens(event, counted, reasoning + content)
            counted += tokens
            self.field = field or self.field
            out = self.joiner.push(reasoning, field, content, tokens)
            yield from out or [("", 0)]  # a beat while text is held, so a stop is seen
            finish = choice.get("finish_reason")
            if finish is not None:
                if finish not in _ENDS:
                    raise LrmscopeError(f"{self.response.url} ended the stream with {finish!r}")
                self.finish, self.end = finish, _ENDS[finish]
        if not events:
            raise EmptyStream(f"the stream from {self.response.url} ended before its first event")
        if self.end is None:
            raise Transient(f"the stream from {self.response.url} ended without a finish reason")
        yield from self.joiner.end()

    @property
    def room(self) -> int:
        return self.max_tokens - self.handed

    def report(self, controls: dict, *, ended: bool) -> ApiReport:
        """What the server said so far; its usage and finish reason once the response ended
        (a running usage sent on the way would be counted twice)."""
        if not ended:
            return ApiReport(self.joiner.source, controls=controls)
        return ApiReport(self.joiner.source, self.usage, self.finish, controls)

    def close(self) -> None:
        self.response.close()


class ChatBackend:
    """One endpoint of a served chat model. Not thread-safe (one HTTP session): one per thread."""

    name = BACKEND_NAME

    def __init__(
        self,
        settings: RemoteSettings,
        endpoint: str,
        chat: ChatSettings,
        *,
        limit: RateLimit | None = None,
        clock: Clock = REAL_CLOCK,
    ):
        self.settings = settings
        self.chat = chat
        self.http = OpenAIClient(settings, endpoint, limit=limit, clock=clock)
        self.endpoint = self.http.endpoint
        self.path = settings.served_model  # what a run records as its model
        self._held: _Response | None = None
        self._field: str | None = None  # the reasoning field this server was seen to use

    @property
    def model_name(self) -> str:
        return self.settings.served_model

    @property
    def model_fingerprint(self) -> str:
        """The served name (the server's template is its own) and the reasoning controls, which
        change what the model writes: an eval resumed with other controls is another run."""
        controls = {k: v for k, v in self.chat.controls().items() if k != "prefill_style"}
        shown = f":{json.dumps(controls, sort_keys=True)}" if controls else ""
        return f"{BACKEND_NAME}:{self.settings.served_model}{shown}"

    def model_meta(self) -> dict:
        return {"chat_template": None, "source": "the server's own template"}

    def info(self) -> dict:
        return {
            "backend": BACKEND_NAME,
            **self.settings.info(),
            **self.chat.controls(),
            "device": f"{BACKEND_NAME} {', '.join(self.settings.endpoints)}",
            "raw": "rebuilt from the reasoning and content fields",
        }

    def check(self) -> None:
        self.http.check()

    def close(self) -> None:
        self._drop_held()
        self.http.close()

    def _drop_held(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    # -- prompts -------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        return messages_prompt(messages)

    def count_tokens(self, text: str) -> int:
        """Unknown here (the server renders and counts): 0, until the server's usage says."""
        return 0

    def check_prompt(self, prompt: str) -> int:
        """The server knows its context; it refuses a prompt that does not fit."""
        split_prompt(prompt)
        return 0

    # -- generation ----------------------------------------------------------------------------

    def _body(
        self, prompt: str, max_tokens: int, sampler: SamplerSettings, seed: int
    ) -> tuple[dict, Callable[[], DeltaJoiner]]:
        """The request, and how its deltas read (a joiner for each attempt)."""
        messages, continued = split_prompt(prompt)
        body: dict = {
            "model": self.settings.served_model,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampler_fields(sampler, seed),
            **self.chat.fields(),
        }
        if continued in ("", THINK_OPEN):
            body["messages"] = messages
            return body, partial(DeltaJoiner, "fresh", opener=continued == THINK_OPEN)
        style = self.chat.prefill_style
        if style is None:
            raise LrmscopeError(
                "this needs the server to continue an assistant message (a prefill, a rethink "
                "string or a forced close), and --api chat was given no --prefill-style"
            )
        prefix: dict = {"role": "assistant", "content": continued}
        if style == "deepseek":
            prefix["prefix"] = True
        else:
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        body["messages"] = [*messages, prefix]
        in_think = THINK_CLOSE not in continued
        start: Start = "think" if in_think else "answer"
        return body, partial(DeltaJoiner, start, known_field=self._field)

    def _pieces(self, response: _Response, prompt: str, stop: Sequence[str]) -> Iterator[Piece]:
        matcher = StopMatcher(stop)
        controls = self.chat.controls()
        emitted: list[str] = []
        for text, tokens in response.take():
            response.handed += tokens
            out, stopped = matcher.push(text)
            self._field = response.field or self._field
            if stopped:
                if matcher.after:
                    response.pending.appendleft((matcher.after, 0))
                response.expect = prompt + "".join(emitted) + out + matcher.matched
                self._held = response
                yield Piece(out, tokens, "stop", response.report(controls, ended=False))
                return
            emitted.append(out)
            yield Piece(out, tokens)
        assert response.end is not None  # _read raises unless the server finished
        yield Piece(matcher.rest(), 0, response.end, response.report(controls, ended=True))

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
        held, self._held = self._held, None
        # Read on where the held response can give what is asked: a request capped for the
        # thought (--max-think) cannot give the answer its tokens, and a new one continues.
        if held is not None and held.expect == prompt and held.room >= max_tokens:
            yield from self._read_on(held, prompt, stop)
            return
        if held is not None:
            held.close()
        body, joiner = self._body(prompt, max_tokens, sampler, seed)
        if grammar is not None:  # GBNF, as llama-server and llama-cpp-python's server read it
            body["grammar"] = grammar
        try:
            yield from self.http.streamed(
                PATH,
                body,
                lambda http_response: self._pieces(
                    _Response(self.http, http_response, joiner(), max_tokens), prompt, stop
                ),
                keep=lambda: self._held is not None,
            )
        except ContextFull:
            yield Piece("", 0, "context")

    def _read_on(self, held: _Response, prompt: str, stop: Sequence[str]) -> Iterator[Piece]:
        """The held response after its thought's close; it is closed unless held again."""
        try:
            yield from self._pieces(held, prompt, stop)
        except (Transient, requests.RequestException) as exc:
            raise self.http.cut_off(exc) from None
        finally:
            if self._held is not held:
                held.close()
