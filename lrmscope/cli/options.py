"""Argument types, option groups and small helpers shared by the commands of the command line."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from rich.text import Text

from lrmscope import __version__
from lrmscope.errors import LrmscopeError

# Commands that decode several sequences together (eval, compare): the room for the prompt and
# the injected strings in each sequence's context, on top of max_tokens, and the most sequences
# one llama.cpp context holds.
PROMPT_ROOM = 2048
MAX_SEQUENCES = 256
MAX_INT = 2**63 - 1  # the largest whole number SQLite stores (run ids, seeds, counts)


class Given(argparse.Action):
    """Stores an option's value and notes that the user gave it (`args.given`), so a preset
    fills only the options left out. With nargs=0 it is a flag that stores `const`."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = getattr(namespace, "given", frozenset()) | {self.dest}


def apply_preset(args: argparse.Namespace, preset) -> None:
    """Fill the options the user left out from `preset` (an evaluation.Preset); an option given
    against what defines the preset is one line naming both."""
    given = getattr(args, "given", frozenset())
    for dest, value in preset.values.items():
        if dest not in given:
            setattr(args, dest, value)
        elif dest in preset.fixed and getattr(args, dest) != value:
            given_value = getattr(args, dest)
            flag = "--" + dest.replace("_", "-")
            shown = flag if isinstance(given_value, bool) else f"{flag} {given_value}"
            raise LrmscopeError(
                f"--preset {preset.name} conflicts with {shown} (the preset sets {dest} to "
                f"{value!r}): drop one of them; {preset.hint}"
            )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"{value} is too large (at most {MAX_INT})")
    return value


def count(text: str) -> int:
    value = positive_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def seconds(text: str) -> float:
    """A timeout: a finite number of seconds above 0."""
    value = number(text)
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 1e6, got {text}")
    return value


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="PATH", help="SQLite database (default: lrmscope.sqlite in the user data "
        "directory)"
    )


def read_prompt(value: str) -> str:
    """A prompt argument ('-' reads it from standard input); an empty prompt is refused."""
    try:
        text = sys.stdin.read() if value == "-" else value
    except UnicodeDecodeError:
        raise LrmscopeError("the prompt on standard input is not UTF-8; send UTF-8 text") from None
    if not text.strip():
        raise LrmscopeError("the prompt is empty; pass the text to send to the model")
    return utf8(text, "the prompt")


def utf8(text: str, what: str) -> str:
    """`text` from the command line, refused if it holds bytes that are not UTF-8 (Python keeps
    them as lone surrogates, which no database or model can take)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LrmscopeError(f"{what} is not UTF-8 text; pass it as UTF-8") from None
    return text


def text_arg(value: str) -> str:
    """An argparse type: a text option (a system prompt, a title) that must be UTF-8."""
    try:
        return utf8(value, "the text")
    except LrmscopeError:
        raise argparse.ArgumentTypeError("not UTF-8 text; pass it as UTF-8") from None


def parse_modes(value: str):
    """--modes: decoding modes, comma-separated, or `all`; each once, in the study's order."""
    from lrmscope.engine.settings import Mode

    names = [name.strip() for name in value.split(",") if name.strip()]
    if names == ["all"]:
        return tuple(Mode)
    chosen = {Mode.parse(name) for name in names}
    return tuple(mode for mode in Mode if mode in chosen)


def add_live_judge_options(parser: argparse.ArgumentParser, finished: str) -> None:
    """The judges of the live views (chat, compare); `finished` names what a final judge
    judges, e.g. "turn"."""
    parser.add_argument(
        "--judge",
        action="append",
        metavar="NAME[=ARG]",
        help=f"judge each finished {finished}'s thought, answer and full response (repeatable; "
        "default rs-match; see `lrmscope judges`)",
    )
    parser.add_argument(
        "--live-judge",
        action="append",
        metavar="NAME[=ARG]",
        help="flag unsafe sentences while the response streams (repeatable)",
    )
    parser.add_argument("--judge-device", metavar="DEVICE", help="cpu, cuda or cuda:N")


def live_judges(specs: list[str], device: str | None) -> tuple[tuple, list[str]]:
    """Judges for a live view; one that fails to load becomes a notice and the view goes on."""
    from lrmscope.engine.judges import build_judge
    from lrmscope.engine.judges.registry import JudgeOptions

    judges, notices = [], []
    for spec in specs:
        try:
            judges.append(build_judge(spec, JudgeOptions(device=device)))
        except LrmscopeError as exc:
            notices.append(f"judge {spec.partition('=')[0]} failed to load: {exc}")
    return tuple(judges), notices


# The largest grammar or chat template read: real ones are a few KiB; a bigger file is the wrong
# one.
MAX_TEXT_FILE = 16 << 20


def read_text_file(path: str, what: str, option: str) -> str:
    """A small UTF-8 text file given to `option` (a grammar, a chat template), checked before it
    is read: not a directory, not empty, not huge."""
    file = Path(path).expanduser()
    try:
        if file.is_dir():
            raise LrmscopeError(f"{what} file {path} is a directory; pass a file to {option}")
        size = file.stat().st_size
        if size > MAX_TEXT_FILE:
            raise LrmscopeError(
                f"{what} file {path} is too large ({size / 2**20:.0f} MiB; at most "
                f"{MAX_TEXT_FILE >> 20} MiB): pass the right file to {option}"
            )
        text = file.read_text(encoding="utf-8")
        if not text.strip():
            raise LrmscopeError(f"{what} file {path} is empty; pass a {what} to {option}")
        return text
    except FileNotFoundError:
        raise LrmscopeError(f"{what} file {path} does not exist; check the {option} path") from None
    except UnicodeDecodeError:
        raise LrmscopeError(f"{what} file {path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise LrmscopeError(f"cannot read {what} file {path}: {exc.strerror}") from None


def checked_db_path(value: str | None) -> Path:
    """The database path, checked (version, kind, writable) without creating anything."""
    from lrmscope.store import Store, default_db_path

    if value is None:
        path = default_db_path()
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(value).expanduser()
    return Store.preflight(path)


def say(console, message: str) -> None:
    """A status line: never parsed as markup (it may hold paths), never wrapped."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def existing_db(value: str):
    """An lrmscope database that must already exist (for commands that read saved runs)."""
    from lrmscope.store import Store

    return Store.existing(value)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model", metavar="PATH", help="GGUF model file (default: the embedded SmolLM2-135M)"
    )
    group.add_argument(
        "--gpu-layers",
        type=int,
        metavar="N",
        help="layers to offload to the GPU (default: all when llama.cpp was built with GPU "
        "support; -1 = all, 0 = none)",
    )
    group.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU build")
    group.add_argument(
        "--threads", type=positive_int, metavar="N", help="CPU threads (default: cores, max 8)"
    )
    group.add_argument(
        "--ctx", type=positive_int, metavar="N", help="context size in tokens (default: the "
        "model's, at most 16384)"
    )
    group.add_argument(
        "--extra-bufts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="llama.cpp weight repacking (default: on, except on CPUs with AMX, where it crashes)",
    )
    served = parser.add_argument_group(
        "served model (an OpenAI-compatible server: vLLM, llama-server, SGLang; instead of --model)"
    )
    served.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help="the server's API base, e.g. http://127.0.0.1:8000/v1 (repeatable: requests are "
        "spread over the endpoints)",
    )
    served.add_argument("--served-model", metavar="NAME", help="the model name the server serves")
    template = served.add_mutually_exclusive_group()
    template.add_argument(
        "--tokenizer", metavar="DIR", help="the model's local tokenizer folder: chat template "
        "and token counts"
    )
    template.add_argument(
        "--template-from", metavar="GGUF", help="take the chat template and tokenizer from a "
        "GGUF of the model (its weights are not loaded)"
    )
    template.add_argument(
        "--chat-template", metavar="FILE", help="a Jinja chat template (tokens are then counted "
        "by the server)"
    )
    served.add_argument(
        "--api-key", metavar="KEY", help="sent as a Bearer token, never saved (default: "
        "$LRMSCOPE_API_KEY or $OPENAI_API_KEY)"
    )
    served.add_argument(
        "--request-timeout", type=number, default=600.0, metavar="SECONDS",
        help="the longest wait for the server's answer or the next piece of a stream (default "
        "600; connecting waits at most 10)",
    )
    served.add_argument(
        "--retries", type=positive_int, default=4, metavar="N",
        help="retries of a request that failed before any text arrived (connection errors, "
        "timeouts, 429, 5xx), with a backoff from 0.5 s doubling (default 4)",
    )


def add_generation_options(parser: argparse.ArgumentParser, *, mode: bool = True) -> None:
    """Sampling and thinking options; `mode` adds --mode (a command with several modes sets
    the `mode` default itself)."""
    if mode:
        parser.add_argument(
            "--mode",
            default="default",
            help="default, zerothink, lessthink or morethink (default: default)",
        )
    sampling = parser.add_argument_group("sampling (every value is stored with the sample)")
    given = {"action": Given}
    sampling.add_argument("--temperature", type=number, default=0.6, help="(default 0.6)", **given)
    sampling.add_argument("--top-p", type=number, default=0.95, help="(default 0.95)", **given)
    sampling.add_argument("--top-k", type=positive_int, default=0, help="0 = off (default)", **given)
    sampling.add_argument("--min-p", type=number, default=0.0, help="(default 0)", **given)
    sampling.add_argument(
        "--repeat-penalty", type=number, default=1.0, help="(default 1)", **given
    )
    sampling.add_argument(
        "--max-tokens", type=positive_int, default=16000, help="(default 16000)", **given
    )
    sampling.add_argument("--seed", type=positive_int, default=0, help="(default 0)")
    sampling.add_argument(
        "--greedy", nargs=0, const=True, default=False,
        help="temperature 0, the study's greedy setting", **given,
    )
    thinking = parser.add_argument_group("thinking")
    thinking.add_argument(
        "--think-budget", type=positive_int, default=10000,
        help="MoreThink budget (default 10000)", **given,
    )
    thinking.add_argument(
        "--enforce-num", type=positive_int, default=10, help="MoreThink rounds (default 10)",
        **given,
    )
    thinking.add_argument(
        "--rethink",
        action="append",
        type=text_arg,
        metavar="TEXT",
        help="a MoreThink rethink string, repeatable (default: 'Wait' and 'Let me think again')",
    )
    thinking.add_argument(
        "--max-think",
        type=positive_int,
        metavar="N",
        help="s1-style cap: force the thought closed after N tokens, in any mode",
    )
    thinking.add_argument(
        "--answer-budget",
        **given,
        default="study",
        metavar="study|rest",
        help="MoreThink's answer: study = max-tokens minus think-budget, stopping at </think>, as "
        "the study's code (default); rest = what max-tokens leaves",
    )
    thinking.add_argument(
        "--think-opener",
        **given,
        default="always",
        metavar="always|template",
        help="add <think>\\n to the prompt: always when the template did not (default, "
        "DeepSeek's advice), or template = only for zerothink and lessthink, as the study's code",
    )
    thinking.add_argument(
        "--think-grammar",
        metavar="FILE",
        help="a GBNF grammar constraining the model while its thought is open (with "
        "--endpoint: llama-server and llama-cpp-python's server read it)",
    )


def generation_settings(args: argparse.Namespace):
    from lrmscope.engine.settings import (
        RETHINK_STRINGS,
        Mode,
        ModeSettings,
        SamplerSettings,
    )

    mode = ModeSettings(
        Mode.parse(args.mode),
        think_budget=args.think_budget,
        enforce_num=args.enforce_num,
        rethink_strings=tuple(args.rethink or RETHINK_STRINGS),
        max_think=args.max_think,
        think_grammar=(
            read_text_file(args.think_grammar, "grammar", "--think-grammar")
            if args.think_grammar
            else None
        ),
        answer_budget=args.answer_budget,
        think_opener=args.think_opener,
    )
    sampler = SamplerSettings(
        temperature=0.0 if args.greedy else args.temperature,
        top_p=1.0 if args.greedy else args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    return mode, sampler


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


def versions() -> dict:
    found = {"python": platform.python_version(), "lrmscope": __version__}
    for dist in ("llama-cpp-python", "sqlite-utils", "textual"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


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
        tuple(args.endpoint), args.served_model or "", api_key=api_key,
        read_timeout_s=args.request_timeout, retries=args.retries,
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


def load_backend(args: argparse.Namespace, mode, console, **more):
    """The model of --model (or the embedded one) in llama.cpp, with its grammar checked; with
    --endpoint, the served model instead."""
    from lrmscope.engine.llama import LlamaBackend
    from lrmscope.engine.models import check_gguf, embedded_model_path

    if args.endpoint:
        return remote_backends(args, 1)[0]
    served_only = [
        option for option, value in (
            ("--served-model", args.served_model), ("--tokenizer", args.tokenizer),
            ("--template-from", args.template_from), ("--chat-template", args.chat_template),
            ("--api-key", args.api_key),
        ) if value
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


def start_run(store, kind: str, backend, sampler, mode_settings, **fields) -> int:
    """A run row with everything needed to repeat it: model, backend, every setting, versions;
    `fields` adds columns or overrides these."""
    row = {
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
    return store.start_run(kind, **{**row, **fields})


def progress_columns():
    """The progress bar of long commands: what, bar, done/total, rate, elapsed, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
