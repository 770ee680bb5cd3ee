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
from lrmscope.cli.options import read_text_file
from lrmscope.engine.backend import Backend
from lrmscope.engine.judges import Judge, JudgeOptions, build_judge
from lrmscope.engine.settings import ModeSettings, SamplerSettings
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


def remote_backends(args: argparse.Namespace, count: int) -> list:
    """`count` backends over the --endpoint servers, round-robin, each endpoint checked once."""
    from lrmscope.engine.models import check_gguf
    from lrmscope.engine.remote import (
        API_KEY_ENVS,
        PromptFormat,
        RemoteBackend,
        RemoteSettings,
        format_from_gguf,
        format_from_tokenizer,
    )

    if args.model:
        raise LrmscopeError(
            "--model loads a local model and --endpoint uses a server: pass one (for the "
            "server's template from a GGUF: --template-from MODEL.gguf)"
        )
    api_key = args.api_key or next(
        (os.environ[name] for name in API_KEY_ENVS if os.environ.get(name)), None
    )
    settings = RemoteSettings(
        tuple(args.endpoint),
        args.served_model or "",
        api_key=api_key,
        read_timeout_s=args.request_timeout,
        retries=args.retries,
    )
    if args.tokenizer:
        prompt_format = format_from_tokenizer(args.tokenizer)
    elif args.template_from:
        path = check_gguf(args.template_from, "the --template-from path")
        prompt_format = format_from_gguf(path)
    elif args.chat_template:
        template = read_text_file(args.chat_template, "chat template", "--chat-template")
        prompt_format = PromptFormat(template, f"file:{Path(args.chat_template).expanduser()}")
    else:
        raise LrmscopeError(
            "--endpoint needs the model's chat template, rendered here: --tokenizer DIR, "
            "--template-from MODEL.gguf or --chat-template FILE"
        )
    backends = [
        RemoteBackend(settings, settings.endpoints[i % len(settings.endpoints)], prompt_format)
        for i in range(max(count, len(settings.endpoints)))
    ]
    for backend in backends[: len(settings.endpoints)]:
        backend.check()
    for unused in backends[count:]:
        unused.close()
    return backends[:count]


def load_backend(args: argparse.Namespace, mode: ModeSettings, console, **more) -> Backend:
    """The model of --model (or the embedded one) in llama.cpp, with its grammar checked; with
    --endpoint, the served model instead."""
    from lrmscope.engine.llama import LlamaBackend
    from lrmscope.engine.models import check_gguf, embedded_model_path

    if args.endpoint:
        return remote_backends(args, 1)[0]
    served_only = [
        option
        for option, value in (
            ("--served-model", args.served_model),
            ("--tokenizer", args.tokenizer),
            ("--template-from", args.template_from),
            ("--chat-template", args.chat_template),
            ("--api-key", args.api_key),
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


@dataclass
class BackendSlots:
    """One model decoding several sequences at once: `backend` renders the prompts and names the
    model; `open()` gives the slots that decode, the sequences of one llama.cpp batch or, with
    --endpoint, one served-model backend per request in flight; `close()` frees them all."""

    backend: Backend
    remote: tuple[Backend, ...] = ()
    decoder: BatchDecoder | None = field(default=None, init=False)

    def open(self) -> list:
        if self.remote:
            return list(self.remote)
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
    served: int | None = None,
) -> BackendSlots:
    """`count` slots of the local model (each sequence's context holds the prompt and
    max_tokens), or with --endpoint `served` (default: `count`) requests in flight."""
    if args.endpoint:
        remote = tuple(remote_backends(args, served or count))
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
    options, notices = JudgeOptions(device=args.judge_device), []
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
