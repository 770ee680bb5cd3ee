"""What a command sets up from its options before it works: the model (a local GGUF in llama.cpp,
or a served one) and the slots that decode with it, the judges, and the row of a new run."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from lrmscope import __version__
from lrmscope.cli.options import judge_options, read_text_file
from lrmscope.engine.backend import Backend
from lrmscope.engine.judges import Judge, JudgeOptions, build_judge
from lrmscope.engine.settings import AnyMode, Mode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError
from lrmscope.vocab import DEFAULT_JUDGE

if TYPE_CHECKING:
    from lrmscope.engine.batch import BatchDecoder

# Commands that decode several sequences together (eval, compare): the room for the prompt and
# the injected strings in each sequence's context, on top of max_tokens, and the most sequences
# one llama.cpp context holds.
PROMPT_ROOM = 2048
MAX_SEQUENCES = 256


def llama_settings(args: argparse.Namespace, **more):
    """LlamaSettings from the model options, plus `more` (n_seq, default_ctx)."""
    from lrmscope.engine.llama import LlamaSettings

    return LlamaSettings(
        gpu_layers=args.gpu_layers,
        cpu=args.cpu,
        threads=args.threads,
        n_ctx=args.ctx,
        extra_bufts=args.extra_bufts,
        verbose=args.debug,
        **more,
    )


# The options of each served API that the other does not take.
_CHAT_ONLY = ("prefill_style", "reasoning_effort", "reasoning_budget")
_COMPLETIONS_ONLY = ("tokenizer", "template_from", "chat_template")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_api_options(args: argparse.Namespace) -> None:
    if args.api == "chat":
        given = [dest for dest in _COMPLETIONS_ONLY if getattr(args, dest)]
        if given:
            raise LrmscopeError(
                f"{_flag(given[0])} is for --api completions: with --api chat the server applies "
                "the model's own template"
            )
    else:
        given = [dest for dest in _CHAT_ONLY if getattr(args, dest) is not None]
        if given:
            raise LrmscopeError(f"{_flag(given[0])} is for a served chat model: add --api chat")


def prompt_format(args: argparse.Namespace):
    """How a served model's prompts are rendered here (--api completions), from the options."""
    from lrmscope.engine.models import check_gguf
    from lrmscope.engine.remote import PromptFormat, format_from_gguf, format_from_tokenizer

    if args.tokenizer:
        return format_from_tokenizer(args.tokenizer)
    if args.template_from:
        return format_from_gguf(check_gguf(args.template_from, "the --template-from path"))
    if args.chat_template:
        template = read_text_file(args.chat_template, "chat template", "--chat-template")
        return PromptFormat(template, f"file:{Path(args.chat_template).expanduser()}")
    raise LrmscopeError(
        "--endpoint needs the model's chat template, rendered here: --tokenizer DIR, "
        "--template-from MODEL.gguf or --chat-template FILE (or --api chat, where the server "
        "renders it)"
    )


def remote_backends(
    args: argparse.Namespace, count: int, modes: Sequence[AnyMode], mode: ModeSettings
) -> list:
    """`count` backends over the --endpoint servers, round-robin, sharing one --rpm limit; the
    modes checked against what the API can do, then each endpoint checked once."""
    from lrmscope.engine.openai_http import API_KEY_ENVS, RateLimit, RemoteSettings

    if args.model:
        raise LrmscopeError(
            "--model loads a local model and --endpoint uses a server: pass one (for the "
            "server's template from a GGUF: --template-from MODEL.gguf)"
        )
    _check_api_options(args)
    api_key = args.api_key or next(
        (os.environ[name] for name in API_KEY_ENVS if os.environ.get(name)), None
    )
    settings = RemoteSettings(
        tuple(args.endpoint),
        args.served_model or "",
        api_key=api_key,
        api=args.api,
        read_timeout_s=args.request_timeout,
        retries=args.retries,
        rpm=args.rpm,
    )
    limit = RateLimit(args.rpm) if args.rpm is not None else None
    endpoints = [settings.endpoints[i % len(settings.endpoints)] for i in range(count)]
    endpoints += settings.endpoints[count:]  # each endpoint is checked, used or not
    if args.api == "chat":
        from lrmscope.engine.remote_chat import ChatBackend, ChatSettings

        chat = ChatSettings(args.prefill_style, args.reasoning_effort, args.reasoning_budget)
        chat.check_modes(modes, mode)
        if mode.injections and not args.prefill_style:
            raise LrmscopeError(
                "--inject over --api chat needs --prefill-style: the server must continue the "
                "thought after the injected text"
            )
        backends: list = [ChatBackend(settings, e, chat, limit=limit) for e in endpoints]
    else:
        from lrmscope.engine.remote import RemoteBackend

        chat_format = prompt_format(args)
        backends = [RemoteBackend(settings, e, chat_format, limit=limit) for e in endpoints]
    for backend in backends[: len(settings.endpoints)]:
        backend.check()
    for unused in backends[count:]:
        unused.close()
    return backends[:count]


def load_backend(
    args: argparse.Namespace,
    mode: ModeSettings,
    console,
    modes: Sequence[AnyMode] | None = None,
    **more,
) -> Backend:
    """The model of --model (or the embedded one) in llama.cpp, with its grammar checked; with
    --endpoint, the served model instead, able to run `modes` (default: --mode's)."""
    from lrmscope.engine.llama import LlamaBackend
    from lrmscope.engine.models import check_gguf, embedded_model_path

    if args.endpoint:
        return remote_backends(args, 1, modes or (mode.mode,), mode)[0]
    served_only = [
        option
        for option, value in (
            ("--served-model", args.served_model),
            ("--tokenizer", args.tokenizer),
            ("--template-from", args.template_from),
            ("--chat-template", args.chat_template),
            ("--api-key", args.api_key),
            ("--api chat", args.api == "chat"),
            ("--prefill-style", args.prefill_style),
            ("--reasoning-effort", args.reasoning_effort),
            ("--reasoning-budget", args.reasoning_budget is not None),
            ("--rpm", args.rpm is not None),
        )
        if value
    ]
    if served_only:
        raise LrmscopeError(
            f"{served_only[0]} is for a served model: add --endpoint URL, or leave it out to run "
            "the model locally"
        )
    settings = llama_settings(args, **more)
    model_path = check_gguf(args.model) if args.model else embedded_model_path()
    with console.status(Text(f"loading {model_path.name}…")):
        backend = LlamaBackend(model_path, settings)
    if mode.think_grammar is not None:
        backend.check_grammar(mode.think_grammar)
    return backend


def runnable_modes(backend: Backend) -> tuple[Mode, ...]:
    """The modes `backend` can run: all, but for a served chat model without a prefill style."""
    from lrmscope.engine.remote_chat import ChatBackend

    return backend.chat.supported_modes() if isinstance(backend, ChatBackend) else tuple(Mode)


@dataclass
class BackendSlots:
    """One model decoding several sequences at once: `backend` renders the prompts and names the
    model; `open()` gives the slots that decode, the sequences of one llama.cpp batch (for one
    sequence, the backend itself) or, with --endpoint, one served-model backend per request in
    flight; `close()` frees them all."""

    backend: Backend
    remote: tuple[Backend, ...] = ()
    decoder: BatchDecoder | None = field(default=None, init=False)

    def open(self) -> list:
        if self.remote:
            return list(self.remote)
        if self.backend.settings.n_seq == 1:
            # One sequence decodes in its generation's own thread: no scheduler thread to hand
            # each token through (about 5 % of a short sample's time, BENCHMARKS.md
            # "2026-12-01, later: less Python around the decodes, a fairer ceiling")
            return [self.backend]
        from lrmscope.engine.batch import BatchDecoder

        decoder = self.decoder = BatchDecoder(self.backend)
        return [decoder.sequence(i) for i in range(decoder.n_seq)]

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
        for backend in self.remote:
            backend.close()


def backend_slots(
    args: argparse.Namespace,
    mode: ModeSettings,
    sampler: SamplerSettings,
    console,
    count: int,
    modes: Sequence[AnyMode],
    served: int | None = None,
) -> BackendSlots:
    """`count` slots of the local model (each sequence's context holds the prompt and
    max_tokens), or with --endpoint `served` (default: `count`) requests in flight, able to run
    `modes`."""
    if args.endpoint:
        remote = tuple(remote_backends(args, served or count, modes, mode))
        return BackendSlots(remote[0], remote)
    backend = load_backend(
        args, mode, console, n_seq=count, default_ctx=sampler.max_tokens + PROMPT_ROOM
    )
    return BackendSlots(backend)


def load_judges(
    specs: Sequence[str], options: JudgeOptions, notices: list[str] | None = None
) -> tuple[Judge, ...]:
    """The judges that `specs` name (`lrmscope judges`). A judge that fails to load stops the
    command, or, given `notices` (a live view, which goes on without it), is said there."""
    judges = []
    for spec in specs:
        try:
            judges.append(build_judge(spec, options))
        except LrmscopeError as exc:
            if notices is None:
                raise
            notices.append(f"judge {spec.partition('=')[0]} failed to load: {exc}")
    return tuple(judges)


def live_view_judges(
    args: argparse.Namespace,
) -> tuple[tuple[Judge, ...], tuple[Judge, ...], tuple[str, ...]]:
    """A live view's judges (options.add_live_judge_options): the final ones (default
    rs-match), the live ones, and a notice for each that failed to load."""
    options, notices = judge_options(args), []
    final = load_judges(args.judge or [DEFAULT_JUDGE], options, notices)
    live = load_judges(args.live_judge or [], options, notices)
    return final, live, tuple(notices)


def versions() -> dict:
    found = {"python": platform.python_version(), "lrmscope": __version__}
    for dist in ("llama-cpp-python", "sqlite-utils", "textual"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def run_row(backend: Backend, sampler: SamplerSettings, mode_settings: ModeSettings) -> dict:
    """What a run row holds to repeat the run: model, backend, every setting, versions."""
    return {
        "model_path": str(backend.path),
        "model_fingerprint": backend.model_fingerprint,
        "model_meta": backend.model_meta(),
        "backend": backend.name,
        "backend_info": backend.info(),
        "sampler": sampler.as_dict(),
        "mode": mode_settings.mode.value,
        "mode_params": mode_settings.as_dict(),
        "seed": sampler.seed,
        "versions": versions(),
    }


def start_run(
    store,
    kind: str,
    backend: Backend,
    sampler: SamplerSettings,
    mode_settings: ModeSettings,
    **fields,
) -> int:
    """A new run of `kind` with its `run_row`; `fields` adds columns or overrides these."""
    return store.start_run(kind, **{**run_row(backend, sampler, mode_settings), **fields})
