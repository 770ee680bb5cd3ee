"""Talking to an OpenAI-compatible server, whichever endpoint: the settings of a served model, one
request with its failures sorted into retried and final ones, retries with backoff that honour a
server's `Retry-After`, a requests-per-minute limit shared by every backend of a command, and the
server-sent event stream. The completions backend (engine/remote.py) and the chat-completions
backend (engine/remote_chat.py) both talk through `OpenAIClient`.

The API key is sent as a Bearer header and nowhere else: not in `info()`, not in errors.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import requests

from lrmscope.engine.backend import Piece
from lrmscope.engine.settings import check_choice, check_range
from lrmscope.errors import LrmscopeError

API_KEY_ENVS = ("LRMSCOPE_API_KEY", "OPENAI_API_KEY")
APIS = ("completions", "chat")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 3600.0  # the longest Retry-After waited for (a longer one is cut to it)
# How a server refuses a request too long for its context (HTTP 400): llama-cpp-python's server and
# vLLM ("This model's maximum context length is N tokens, ..."), SGLang ("... longer than the
# model's context length (N tokens)"), llama-server ("the request exceeds the available context
# size, ..."); and where the message gives it, the context's size.
_CONTEXT_REFUSAL = re.compile(r"context (?:length|size|window)", re.IGNORECASE)
_CONTEXT_SIZE = re.compile(r"context length (?:is |of |\()?(\d+) tokens", re.IGNORECASE)
# How a server names a request field it does not take, when its error body has no `param`
# (OpenAI: "Unrecognized request argument supplied: top_k"; others "unsupported parameter: x" or
# the field in quotes).
_PARAM_REFUSAL = re.compile(
    r"(?:unrecognized|unsupported|unknown|extra|not supported|not permitted)\W[^'\"`]*?"
    r"(?:['\"`](\w+)['\"`]|:\s*(\w+))",
    re.IGNORECASE,
)


class Transient(Exception):
    """A failure worth retrying while nothing has been streamed yet; `retry_after` is the wait
    the server asked for, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmptyStream(Transient):
    """A stream that ended before its first event."""


class ContextFull(LrmscopeError):
    """The server refused a request as too long for its context of `n_ctx` tokens (None: the
    message does not say)."""

    def __init__(self, message: str, n_ctx: int | None) -> None:
        super().__init__(message)
        self.n_ctx = n_ctx


@dataclass(frozen=True)
class Clock:
    """The time the client waits by: the real one, or a test's fake one."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # for a Retry-After given as a date


REAL_CLOCK = Clock()


def retry_after(value: str | None, clock: Clock = REAL_CLOCK) -> float | None:
    """A `Retry-After` header's wait in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - clock.wall()
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


class RateLimit:
    """At most `rpm` requests a minute, spaced evenly, across every thread that shares it."""

    def __init__(self, rpm: float, clock: Clock = REAL_CLOCK) -> None:
        check_range("--rpm", rpm, 0.001, 1_000_000)
        self.interval = 60.0 / rpm
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self.clock.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.clock.sleep(start - now)


@dataclass(frozen=True)
class RemoteSettings:
    """Where the model is served, which endpoint speaks to it, and how patiently."""

    endpoints: tuple[str, ...]
    served_model: str
    api_key: str | None = field(default=None, repr=False)
    api: Literal["completions", "chat"] = "completions"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0  # the longest wait for an answer or the next piece of a stream
    retries: int = 4  # of a request that failed before any text arrived
    backoff_s: float = 0.5  # doubled after each retry, unless the server says how long
    rpm: float | None = None  # requests a minute, over every endpoint

    def __post_init__(self) -> None:
        check_choice("API", self.api, APIS)
        check_range("the request timeout (seconds)", self.read_timeout_s, 0.1, 86_400)
        check_range("retries", self.retries, 0, 100)
        if self.rpm is not None:
            check_range("--rpm (requests a minute)", self.rpm, 0.001, 1_000_000)
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
            "api": self.api,
            "endpoints": list(self.endpoints),
            "served_model": self.served_model,
            "authenticated": self.api_key is not None,
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "retries": self.retries,
            "backoff_s": self.backoff_s,
            "rpm": self.rpm,
        }


def server_message(response: requests.Response) -> tuple[str, str | None]:
    """The error message of an OpenAI-style (or FastAPI-style) error body, else its first line;
    and the request field it names (`param`), if it names one."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text.splitlines()[0][:200] if text else ""), None
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        param = None
        if isinstance(error, dict):
            param = error.get("param")
            error = error.get("message", error)
        if isinstance(error, list):  # FastAPI's validation errors: [{loc, msg, type}, ...]
            first = error[0] if error and isinstance(error[0], dict) else {}
            loc = first.get("loc") or []
            if loc and first.get("type") == "extra_forbidden":  # a field it does not take
                param = str(loc[-1])
            error = first.get("msg", error)
        if error:
            return str(error)[:300], param if isinstance(param, str) and param else None
    return json.dumps(body)[:200], None


def refused_param(message: str, param: str | None) -> str | None:
    """The request field a 400 refuses, from the error's `param` or its message."""
    if param:
        return param
    found = _PARAM_REFUSAL.search(message)
    return (found.group(1) or found.group(2)) if found else None


# The request fields lrmscope sends on an option's say: a refusal of one names the option.
PARAM_OPTIONS = {
    "reasoning_effort": "--reasoning-effort",
    "thinking_token_budget": "--reasoning-budget",
    "thinking_budget_tokens": "--reasoning-budget",
    "continue_final_message": "--prefill-style vllm",
    "add_generation_prompt": "--prefill-style vllm",
    "prefix": "--prefill-style deepseek",
    "grammar": "--think-grammar",
}


class OpenAIClient:
    """One endpoint's HTTP session. Not thread-safe: one per thread."""

    def __init__(
        self,
        settings: RemoteSettings,
        endpoint: str,
        *,
        limit: RateLimit | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint.rstrip("/")
        self.limit = limit
        self.clock = clock
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        if settings.api_key:
            self.session.headers["Authorization"] = f"Bearer {settings.api_key}"

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, body: dict | None = None, *, stream: bool = False):
        """One request; transient failures raise Transient, the others LrmscopeError."""
        url = f"{self.endpoint}{path}"
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        if self.limit is not None:
            self.limit.wait()
        try:
            response = self.session.request(method, url, json=body, stream=stream, timeout=timeout)
        except requests.Timeout:
            raise Transient(f"{url} did not answer in time") from None
        except requests.ConnectionError:
            raise Transient(f"cannot reach {url} (connection refused or dropped)") from None
        if response.status_code == 200:
            return response
        message, param = server_message(response)
        response.close()
        status = response.status_code
        if status in RETRY_STATUS:
            wait = retry_after(response.headers.get("Retry-After"), self.clock)
            raise Transient(f"{url} answered {status} {message}".rstrip(), wait)
        if status == 400 and _CONTEXT_REFUSAL.search(message):
            size = _CONTEXT_SIZE.search(message)
            n_ctx = int(size.group(1)) if size else None
            raise ContextFull(f"{url} answered 400: {message}", n_ctx)
        if status in (400, 422) and (name := refused_param(message, param)):
            option = PARAM_OPTIONS.get(name)
            fix = f"leave out {option}" if option else "this server does not take it"
            raise LrmscopeError(
                f"{url} does not take the request field {name!r} ({status}: {message}); {fix}"
            )
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

    def back_off(self, attempt: int, failure: Transient) -> None:
        """After failed attempt number `attempt` (from 0): wait what the server asked for, else
        a backoff doubling from `backoff_s`; or give up."""
        if attempt == self.settings.retries:
            attempts = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
            raise LrmscopeError(f"{failure}; gave up after {attempts}")
        wait = failure.retry_after
        self.clock.sleep(self.settings.backoff_s * 2**attempt if wait is None else wait)

    def retrying(self, attempt: Callable[[], dict]) -> dict:
        """`attempt()` until it does not fail transiently."""
        n = 0
        while True:
            try:
                return attempt()
            except Transient as exc:
                self.back_off(n, exc)
                n += 1

    def json(self, response: requests.Response) -> dict:
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
            models = self.json(self.request("GET", "/models"))
        except Transient as exc:
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

    def events(self, response: requests.Response) -> Iterator[dict]:
        """The JSON data of a server-sent event stream, up to `[DONE]`."""
        for line in stream_lines(response):
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

    def why_empty(self, path: str, body: dict) -> None:
        """After a stream that ended before its first event: llama-cpp-python's server answers
        200 to a prompt too long for its context and then fails it, so the same request, for one
        token and not streamed, says whether that is why (raising ContextFull). That server
        also drops the connection the stream came on: the probe starts a fresh one."""
        self.session.close()  # its pooled connections; the session itself stays usable
        probe = {key: value for key, value in body.items() if key != "stream_options"}
        try:
            self.request("POST", path, {**probe, "stream": False, "max_tokens": 1}).close()
        except Transient:
            pass  # nor does it say: the stream is retried as any transient failure

    def cut_off(self, exc: Exception) -> LrmscopeError:
        """A stream that failed after text arrived: not retried, the sample fails."""
        reason = str(exc) if isinstance(exc, Transient) else type(exc).__name__
        return LrmscopeError(
            f"the stream from {self.endpoint} was cut after text arrived ({reason}); "
            "the sample is saved as failed and made again on resume"
        )

    def streamed(
        self,
        path: str,
        body: dict,
        pieces: Callable[[requests.Response], Iterator[Piece]],
        *,
        keep: Callable[[], bool] = lambda: False,
    ) -> Iterator[Piece]:
        """One streamed request's `pieces`, retried while nothing has streamed. The response
        is closed at the end, unless `keep()` says the caller holds on to it."""
        for n in range(self.settings.retries + 1):
            streamed = False
            response = None
            try:
                response = self.request("POST", path, body, stream=True)
                for piece in pieces(response):
                    streamed = streamed or bool(piece.text or piece.tokens)
                    yield piece
                return
            except (Transient, requests.RequestException) as exc:
                if isinstance(exc, EmptyStream):
                    self.why_empty(path, body)
                if streamed:
                    raise self.cut_off(exc) from None
                self.back_off(
                    n, exc if isinstance(exc, Transient) else Transient(type(exc).__name__)
                )
            finally:
                if response is not None and not keep():
                    response.close()


def stream_lines(response: requests.Response) -> Iterator[bytes]:
    """The lines of a streamed body, each as soon as it has arrived. A chunked body comes a chunk
    at a time; a body that runs to the connection's close (HTTP/1.0, no length) is read with
    `read1`, which hands over what the socket holds, where requests would wait for the end."""
    if response.raw.chunked:
        pieces = response.iter_content(chunk_size=None)
    else:
        pieces = iter(lambda: response.raw.read1(65536, decode_content=True), b"")
    pending = b""
    for piece in pieces:
        lines = (pending + piece).splitlines()
        pending = b"" if piece.endswith((b"\n", b"\r")) else lines.pop()
        yield from lines
    if pending:
        yield pending
