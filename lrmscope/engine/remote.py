"""A backend over an OpenAI-compatible server's completions endpoint (vLLM, llama-server, SGLang).

The decoding modes need the exact prompt text, so the chat template is rendered here, on the
client, and the server gets a raw `prompt` (`POST {endpoint}/completions`, streamed as server-sent
events). Generation calls `stream()` the way it calls the local engine: with `</think>` as the stop
string while the thought is open, and once per MoreThink round with the prompt plus the text so
far. Stop strings are matched here, with the same StopMatcher as the local engine, and not sent to
the server: an OpenAI-compatible finish_reason `stop` cannot tell a stop string from the end of
text, which the controller must tell apart. On a match the response is closed, which aborts the
request on the server.

Failures before the first piece (connection errors, timeouts, 429, 5xx) are retried with
exponential backoff; a stream cut after text arrived is an error (the sample is saved failed and
a resume makes it again). A request the server refuses as too long for its context ends the
stream as the local engine's full context does (`Piece("", 0, "context")`); vLLM also refuses a
`max_tokens` beyond what its context has left, and then gets a request for what fits, whose
`length` end is the context's. The API key is sent as a Bearer header and nowhere else: not in
`info()`, not in errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests

from lrmscope.engine.backend import Message, Piece, StreamEnd, check_fits
from lrmscope.engine.prompt import render_chat
from lrmscope.engine.settings import SamplerSettings, check_range
from lrmscope.engine.stops import StopMatcher
from lrmscope.errors import LrmscopeError

BACKEND_NAME = "openai-compatible"
API_KEY_ENVS = ("LRMSCOPE_API_KEY", "OPENAI_API_KEY")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# No stop strings go to the server (see the module docstring), so `stop` is the end of text.
_ENDS: dict[str, StreamEnd] = {"stop": "eos", "eos": "eos", "length": "length"}
# How a server refuses a request too long for its context (HTTP 400): llama-cpp-python's server and
# vLLM ("This model's maximum context length is N tokens, ..."), SGLang ("... longer than the
# model's context length (N tokens)"), llama-server ("the request exceeds the available context
# size, ..."); and where the message gives it, the context's size.
_CONTEXT_REFUSAL = re.compile(r"context (?:length|size|window)", re.IGNORECASE)
_CONTEXT_SIZE = re.compile(r"context length (?:is |of |\()?(\d+) tokens", re.IGNORECASE)


class _Transient(Exception):
    """A failure worth retrying while nothing has been streamed yet."""


class _EmptyStream(_Transient):
    """A stream that ended before its first event."""


class _ContextFull(LrmscopeError):
    """The server refused a request as too long for its context of `n_ctx` tokens (None: the
    message does not say)."""

    def __init__(self, message: str, n_ctx: int | None) -> None:
        super().__init__(message)
        self.n_ctx = n_ctx


@dataclass(frozen=True)
class RemoteSettings:
    """Where the model is served and how patiently to talk to it."""

    endpoints: tuple[str, ...]
    served_model: str
    api_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0  # the longest wait for an answer or the next piece of a stream
    retries: int = 4  # of a request that failed before any text arrived
    backoff_s: float = 0.5  # doubled after each retry

    def __post_init__(self) -> None:
        check_range("the request timeout (seconds)", self.read_timeout_s, 0.1, 86_400)
        check_range("retries", self.retries, 0, 100)
        endpoints = tuple(e.rstrip("/") for e in self.endpoints)
        for endpoint in endpoints:
            if not endpoint.startswith(("http://", "https://")):
                raise LrmscopeError(
                    f"endpoint {endpoint!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1"
                )
        if not endpoints:
            raise LrmscopeError("no endpoint given: --endpoint http://HOST:PORT/v1")
        if not self.served_model:
            raise LrmscopeError(
                "--endpoint needs --served-model NAME: the model name the server serves"
            )
        object.__setattr__(self, "endpoints", endpoints)

    def info(self) -> dict:
        """What a run stores: no key."""
        return {
            "backend": BACKEND_NAME,
            "endpoints": list(self.endpoints),
            "served_model": self.served_model,
            "authenticated": self.api_key is not None,
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "retries": self.retries,
            "backoff_s": self.backoff_s,
        }


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


def _server_message(response: requests.Response) -> str:
    """The error message of an OpenAI-style (or FastAPI-style) error body, else its first line."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return str(error)[:300]
    return json.dumps(body)[:200]


class RemoteBackend:
    """One endpoint of a served model. Not thread-safe (one HTTP session): one per thread."""

    name = BACKEND_NAME

    def __init__(self, settings: RemoteSettings, endpoint: str, prompt_format: PromptFormat):
        self.settings = settings
        self.endpoint = endpoint.rstrip("/")
        self.prompt_format = prompt_format
        self.path = settings.served_model  # what a run records as its model
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if settings.api_key:
            self._session.headers["Authorization"] = f"Bearer {settings.api_key}"
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
            **self.settings.info(),
            "device": f"{BACKEND_NAME} {', '.join(self.settings.endpoints)}",
            "prompt_format": self.prompt_format.source,
        }

    def close(self) -> None:
        self._session.close()

    # -- HTTP ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None, *, stream: bool = False):
        """One request; transient failures raise _Transient, the others LrmscopeError."""
        url = f"{self.endpoint}{path}"
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        try:
            response = self._session.request(method, url, json=body, stream=stream, timeout=timeout)
        except requests.Timeout:
            raise _Transient(f"{url} did not answer in time") from None
        except requests.ConnectionError:
            raise _Transient(f"cannot reach {url} (connection refused or dropped)") from None
        if response.status_code == 200:
            return response
        message = _server_message(response)
        response.close()
        status = response.status_code
        if status in _RETRY_STATUS:
            raise _Transient(f"{url} answered {status} {message}".rstrip())
        if status == 400 and _CONTEXT_REFUSAL.search(message):
            size = _CONTEXT_SIZE.search(message)
            n_ctx = int(size.group(1)) if size else None
            raise _ContextFull(f"{url} answered 400: {message}", n_ctx)
        if status in (401, 403):
            raise LrmscopeError(
                f"{url} refused the request ({status} {message}); check --api-key or "
                f"${API_KEY_ENVS[0]}"
            )
        if status == 404 and "model" not in message.lower():
            raise LrmscopeError(
                f"{url} does not exist (404): the server has no OpenAI-compatible {path} "
                "endpoint; check the URL (it usually ends in /v1)"
            )
        raise LrmscopeError(f"{url} answered {status}: {message}")

    def _back_off(self, attempt: int, reason: str) -> None:
        """After failed attempt number `attempt` (from 0): wait, doubling, or give up."""
        if attempt == self.settings.retries:
            attempts = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
            raise LrmscopeError(f"{reason}; gave up after {attempts}")
        time.sleep(self.settings.backoff_s * 2**attempt)

    def _retrying(self, attempt: Callable[[], dict]) -> dict:
        """`attempt()` until it does not fail transiently."""
        n = 0
        while True:
            try:
                return attempt()
            except _Transient as exc:
                self._back_off(n, str(exc))
                n += 1

    def _json(self, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LrmscopeError(
                f"{response.url} answered something that is not OpenAI-compatible JSON; "
                "check the URL"
            )
        return body

    def check(self) -> None:
        """Fail with one line unless the endpoint answers and serves the model (one attempt: a
        server that is down at the start is worth saying at once)."""
        try:
            models = self._json(self._request("GET", "/models"))
        except _Transient as exc:
            raise LrmscopeError(f"{exc}; is the server running?") from None
        if not isinstance(models.get("data"), list):
            raise LrmscopeError(
                f"{self.endpoint}/models answered JSON without a model list; is this an "
                "OpenAI-compatible server?"
            )
        names = [m.get("id") for m in models["data"] if isinstance(m, dict)]
        if self.settings.served_model not in names:
            raise LrmscopeError(
                f"{self.endpoint} does not serve {self.settings.served_model!r}; it serves: "
                f"{', '.join(map(str, names)) or 'nothing'} (pass one as --served-model)"
            )

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
            answer = self._retrying(lambda: self._json(self._request("POST", "/completions", body)))
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
        """Every sampler setting explicitly (docs/study.md "Sampling"), under the names vLLM and
        llama.cpp's servers read (each ignores the other's)."""
        return {
            "model": self.settings.served_model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "temperature": sampler.temperature,
            "top_p": sampler.top_p,
            "top_k": sampler.top_k,  # 0 = off for vLLM (0.8 on), llama-server and llama-cpp-python
            "min_p": sampler.min_p,
            "repeat_penalty": sampler.repeat_penalty,
            "repetition_penalty": sampler.repeat_penalty,
            "seed": seed,
        }

    def _events(self, response: requests.Response) -> Iterator[dict]:
        """The JSON data of a server-sent event stream, up to `[DONE]`."""
        # chunk_size None: each line as soon as it arrives (requests' types allow only an int).
        for line in response.iter_lines(chunk_size=None):  # type: ignore[call-overload]
            if not line or line.startswith(b":"):
                continue
            field_name, _, value = line.partition(b":")
            if field_name in (b"event", b"id", b"retry"):
                continue
            if field_name != b"data":
                raise LrmscopeError(
                    f"{response.url} answered something that is not a server-sent event stream"
                )
            value = value.strip()
            if value == b"[DONE]":
                return
            try:
                event = json.loads(value)
            except ValueError:
                raise LrmscopeError(
                    f"{response.url} sent an event that is not JSON: {value[:80]!r}"
                ) from None
            if not isinstance(event, dict):
                raise LrmscopeError(f"{response.url} sent an event that is not a JSON object")
            if "error" in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise LrmscopeError(f"{response.url} reported an error mid-stream: {message}")
            yield event

    def _pieces(self, response: requests.Response, stop: Sequence[str]) -> Iterator[Piece]:
        matcher = StopMatcher(stop)
        counted = 0  # tokens of this stream handed out
        events = 0
        for event in self._events(response):
            events += 1
            choices = event.get("choices") or []
            if not choices:  # the usage-only chunk after the last one
                continue
            choice = choices[0]
            text = choice.get("text") or ""
            usage = event.get("usage") or {}
            if isinstance(usage.get("completion_tokens"), int):
                tokens = max(0, usage["completion_tokens"] - counted)
            else:  # llama-cpp-python's server: one chunk per token, no running usage
                tokens = 1 if text else 0
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
            raise _EmptyStream(f"the stream from {response.url} ended before its first event")
        raise _Transient(f"the stream from {response.url} ended without a finish reason")

    def _why_empty(self, body: dict) -> None:
        """After a stream that ended before its first event: llama-cpp-python's server answers
        200 to a prompt too long for its context and then fails it, so the same request, for one
        token and not streamed, says whether that is why (raising _ContextFull). That server
        also drops the connection the stream came on: the probe starts a fresh one."""
        self._session.close()  # its pooled connections; the session itself stays usable
        probe = {key: value for key, value in body.items() if key != "stream_options"}
        try:
            self._request(
                "POST", "/completions", {**probe, "stream": False, "max_tokens": 1}
            ).close()
        except _Transient:
            pass  # nor does it say: the stream is retried as any transient failure

    def _room(self, prompt: str, n_ctx: int | None) -> int:
        """The tokens a context of `n_ctx` has left after `prompt` (0 when unknown)."""
        if n_ctx is None:
            return 0
        try:
            return max(0, n_ctx - self.count_tokens(prompt))
        except _ContextFull:  # the server counts, and refuses the prompt itself
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
        except _ContextFull as exc:
            room = self._room(prompt, exc.n_ctx)
        if not 0 < room < max_tokens:
            yield Piece("", 0, "context")
            return
        try:  # what the context has left: it, not max_tokens, ends this request
            for piece in self._stream({**body, "max_tokens": room}, stop):
                yield replace(piece, end="context") if piece.end == "length" else piece
        except _ContextFull:
            yield Piece("", 0, "context")

    def _stream(self, body: dict, stop: Sequence[str]) -> Iterator[Piece]:
        """One completion request's pieces, retried while nothing has streamed."""
        for n in range(self.settings.retries + 1):
            streamed = False
            response = None
            try:
                response = self._request("POST", "/completions", body, stream=True)
                for piece in self._pieces(response, stop):
                    streamed = True
                    yield piece
                return
            except (_Transient, requests.RequestException) as exc:
                reason = str(exc) if isinstance(exc, _Transient) else type(exc).__name__
                if isinstance(exc, _EmptyStream):
                    self._why_empty(body)
                if streamed:
                    raise LrmscopeError(
                        f"the stream from {self.endpoint} was cut after text arrived ({reason}); "
                        "the sample is saved as failed and made again on resume"
                    ) from None
                self._back_off(n, reason)
            finally:
                if response is not None:
                    response.close()
