"""A backend over an OpenAI-compatible server's completions endpoint (vLLM, llama-server, SGLang).

The decoding modes need the exact prompt text, so the chat template is rendered here, on the
client, and the server gets a raw `prompt` (`POST {endpoint}/completions`, streamed as server-sent
events). Generation calls `stream()` the way it calls the local engine: with `</think>` as the stop
string while the thought is open, and once per MoreThink round with the prompt plus the text so
far. Stop strings are matched here, with the same StopMatcher as the local engine, and not sent to
the server: an OpenAI-compatible finish_reason `stop` cannot tell a stop string from the end of
text, which the controller must tell apart. On a match the response is closed, which aborts the
request on the server.

The HTTP side (retries, Retry-After, the rate limit, the event stream) is engine/openai_http.py's,
shared with the chat-completions backend (engine/remote_chat.py). A stream cut after text arrived
is an error (the sample is saved failed and a resume makes it again). A request the server
refuses as too long for its context ends the stream as the local engine's full context does
(`Piece("", 0, "context")`); vLLM also refuses a `max_tokens` beyond what its context has left,
and then gets a request for what fits, whose `length` end is the context's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import requests

from lrmscope.engine.backend import Message, Piece, StreamEnd, check_fits
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
from lrmscope.engine.prompt import render_chat
from lrmscope.engine.settings import SamplerSettings
from lrmscope.engine.stops import StopMatcher
from lrmscope.errors import LrmscopeError

BACKEND_NAME = "openai-compatible"
# No stop strings go to the server (see the module docstring), so `stop` is the end of text.
_ENDS: dict[str, StreamEnd] = {"stop": "eos", "eos": "eos", "length": "length"}


@dataclass(frozen=True)
class PromptFormat:
    """How the client renders a served model's prompts, and counts their tokens when it has the
    model's tokenizer (`count`; None: the server counts them)."""

    template: str
    source: str  # where the template came from, stored with a run
    bos_token: str = ""
    eos_token: str = ""
    count: Callable[[str], int] | None = None

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(
            self.template,
            messages,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            source=self.source,
        )

    def fingerprint(self, served_model: str) -> str:
        """Identifies the model of a run across servers and restarts: its name and template."""
        digest = hashlib.sha256(
            f"{self.template}\0{self.bos_token}\0{self.eos_token}".encode()
        ).hexdigest()[:32]
        return f"{BACKEND_NAME}:{served_model}:{digest}"


def _token_content(value) -> str:
    """A tokenizer_config.json special token: a string or an AddedToken dict."""
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def format_from_tokenizer(folder: str | Path) -> PromptFormat:
    """A local Hugging Face tokenizer folder: tokenizer_config.json's chat template (or
    chat_template.jinja) and special tokens, and tokenizer.json to count tokens."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise LrmscopeError(f"tokenizer folder {folder} {what}; pass the model's tokenizer folder")
    config_path = folder / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LrmscopeError(
            f"tokenizer folder {folder} has no tokenizer_config.json; pass the model's folder"
        ) from None
    except UnicodeDecodeError:
        raise LrmscopeError(f"{config_path} is not UTF-8 text; save it as UTF-8") from None
    except ValueError as exc:
        raise LrmscopeError(
            f"{config_path} is not valid JSON ({exc}); download the tokenizer folder again"
        ) from None
    except OSError as exc:
        raise LrmscopeError(f"cannot read {config_path}: {exc.strerror}") from None
    if not isinstance(config, dict):
        raise LrmscopeError(f"{config_path} is not a JSON object; download the folder again")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    jinja = folder / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if not isinstance(template, str) or not template:
        raise LrmscopeError(
            f"tokenizer folder {folder} has no chat template; pass --chat-template FILE"
        )
    tokenizer_file = folder / "tokenizer.json"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise LrmscopeError(
            "counting tokens with --tokenizer needs the tokenizers package: pip install tokenizers"
        ) from None
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises bare Exceptions
        raise LrmscopeError(f"cannot load {tokenizer_file}: {exc}") from None
    return PromptFormat(
        template,
        f"tokenizer:{folder}",
        _token_content(config.get("bos_token")),
        _token_content(config.get("eos_token")),
        # The rendered prompt carries its own special tokens (BOS included): add none.
        lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids),
    )


def format_from_gguf(path: str | Path) -> PromptFormat:
    """The chat template, special tokens and tokenizer of a GGUF, read without its weights."""
    from lrmscope.engine.llama import GgufVocab

    vocab = GgufVocab(path)
    return PromptFormat(
        vocab.chat_template,
        f"gguf:{vocab.path}",
        vocab.bos_text,
        vocab.eos_text,
        vocab.count_tokens,
    )


class RemoteBackend:
    """One endpoint of a served model. Not thread-safe (one HTTP session): one per thread."""

    name = BACKEND_NAME

    def __init__(
        self,
        settings: RemoteSettings,
        endpoint: str,
        prompt_format: PromptFormat,
        *,
        limit: RateLimit | None = None,
        clock: Clock = REAL_CLOCK,
    ):
        self.settings = settings
        self.http = OpenAIClient(settings, endpoint, limit=limit, clock=clock)
        self.endpoint = self.http.endpoint
        self.prompt_format = prompt_format
        self.path = settings.served_model  # what a run records as its model
        self._counts: dict[str, int] = {}

    @property
    def model_name(self) -> str:
        return self.settings.served_model

    @property
    def model_fingerprint(self) -> str:
        return self.prompt_format.fingerprint(self.settings.served_model)

    def model_meta(self) -> dict:
        return {"chat_template": self.prompt_format.template, "source": self.prompt_format.source}

    def info(self) -> dict:
        return {
            "backend": BACKEND_NAME,
            **self.settings.info(),
            "device": f"{BACKEND_NAME} {', '.join(self.settings.endpoints)}",
            "prompt_format": self.prompt_format.source,
        }

    def close(self) -> None:
        self.http.close()

    def check(self) -> None:
        self.http.check()

    # -- prompts -------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        return self.prompt_format.render(messages)

    def count_tokens(self, text: str) -> int:
        """With the model's tokenizer when given; else the server's usage count of a one-token
        completion of the text (remembered, so a prompt is counted once)."""
        if self.prompt_format.count is not None:
            return self.prompt_format.count(text)
        if text not in self._counts:
            body = {
                "model": self.settings.served_model,
                "prompt": text,
                "max_tokens": 1,
                "temperature": 0.0,
            }
            http = self.http
            answer = http.retrying(lambda: http.json(http.request("POST", "/completions", body)))
            usage = answer.get("usage") or {}
            if not isinstance(usage.get("prompt_tokens"), int):
                raise LrmscopeError(
                    f"{self.endpoint} gives no token counts (usage); pass --tokenizer DIR or "
                    "--template-from MODEL.gguf"
                )
            self._counts = {text: usage["prompt_tokens"]}  # the latest only: memory stays flat
        return self._counts[text]

    def check_prompt(self, prompt: str) -> int:
        """The server knows its context; it refuses a prompt that does not fit."""
        return check_fits(self.count_tokens(prompt), None)

    # -- generation ----------------------------------------------------------------------------

    def _body(self, prompt: str, max_tokens: int, sampler: SamplerSettings, seed: int) -> dict:
        return {
            "model": self.settings.served_model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            **sampler_fields(sampler, seed),
        }

    def _pieces(self, response: requests.Response, stop: Sequence[str]) -> Iterator[Piece]:
        matcher = StopMatcher(stop)
        counted = 0  # tokens of this stream handed out
        events = 0
        for event in self.http.events(response):
            events += 1
            choices = event.get("choices") or []
            if not choices:  # the usage-only chunk after the last one
                continue
            choice = choices[0]
            text = choice.get("text") or ""
            tokens = chunk_tokens(event, counted, text)
            counted += tokens
            out, stopped = matcher.push(text)
            if stopped:
                yield Piece(out, tokens, "stop")
                return
            finish = choice.get("finish_reason")
            if finish is not None:
                if finish not in _ENDS:
                    raise LrmscopeError(f"{response.url} ended the stream with {finish!r}")
                yield Piece(out + matcher.rest(), tokens, _ENDS[finish])
                return
            if out or tokens:
                yield Piece(out, tokens)
        if not events:
            raise EmptyStream(f"the stream from {response.url} ended before its first event")
        raise Transient(f"the stream from {response.url} ended without a finish reason")

    def _room(self, prompt: str, n_ctx: int | None) -> int:
        """The tokens a context of `n_ctx` has left after `prompt` (0 when unknown)."""
        if n_ctx is None:
            return 0
        try:
            return max(0, n_ctx - self.count_tokens(prompt))
        except ContextFull:  # the server counts, and refuses the prompt itself
            return 0

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
        body = self._body(prompt, max_tokens, sampler, seed)
        if grammar is not None:  # GBNF, as llama-server and llama-cpp-python's server read it
            body["grammar"] = grammar
        try:
            yield from self._stream(body, stop)
            return
        except ContextFull as exc:
            room = self._room(prompt, exc.n_ctx)
        if not 0 < room < max_tokens:
            yield Piece("", 0, "context")
            return
        try:  # what the context has left: it, not max_tokens, ends this request
            for piece in self._stream({**body, "max_tokens": room}, stop):
                yield replace(piece, end="context") if piece.end == "length" else piece
        except ContextFull:
            yield Piece("", 0, "context")

    def _stream(self, body: dict, stop: Sequence[str]) -> Iterator[Piece]:
        """One completion request's pieces, retried while nothing has streamed."""
        return self.http.streamed("/completions", body, lambda r: self._pieces(r, stop))


def sampler_fields(sampler: SamplerSettings, seed: int) -> dict:
    """Every sampler setting explicitly (docs/study.md "Sampling"), under the names vLLM and
    llama.cpp's servers read (each ignores the other's)."""
    return {
        "temperature": sampler.temperature,
        "top_p": sampler.top_p,
        "top_k": sampler.top_k,  # 0 = off for vLLM (0.8 on), llama-server and llama-cpp-python
        "min_p": sampler.min_p,
        "repeat_penalty": sampler.repeat_penalty,
        "repetition_penalty": sampler.repeat_penalty,
        "seed": seed,
    }


def chunk_tokens(event: dict, counted: int, text: str) -> int:
    """The tokens a stream chunk brought: from the running usage where the server sends one
    (vLLM's continuous usage stats), else one per chunk with text (llama.cpp's servers send a
    chunk per token)."""
    usage = event.get("usage") or {}
    if isinstance(usage.get("completion_tokens"), int):
        return max(0, usage["completion_tokens"] - counted)
    return 1 if text else 0
