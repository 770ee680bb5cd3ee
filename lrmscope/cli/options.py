"""Argument types and the option groups the commands share, and the settings made from them:
the sampling and thinking options are built from the fields of engine/settings.py, which declare
their own flags."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path

from lrmscope.engine.judges.registry import JudgeOptions
from lrmscope.engine.modes import ModeCatalog
from lrmscope.engine.settings import ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError

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


def add_runs_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--run N [N ...], repeatable: the run ids a reading command keeps (`args.run`)."""
    parser.add_argument("--run", type=count, nargs="+", action="extend", metavar="N", help=help)


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite database (default: lrmscope.sqlite in the user data directory)",
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
    add_judge_options(parser)


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """The judges' settings (engine/judges/registry.py JudgeOptions), in a group of their own."""
    add_settings_options(parser.add_argument_group("judge settings"), JudgeOptions)


def judge_options(args: argparse.Namespace) -> JudgeOptions:
    return settings_from_args(JudgeOptions, args)


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


def existing_db(value: str):
    """An lrmscope database that must already exist (for commands that read saved runs)."""
    from lrmscope.store import Store

    return Store.existing(value)


def check_runs(store, runs: tuple[int, ...]) -> None:
    """One line naming the runs of `--run` that `store` does not hold, and the first it does."""
    from lrmscope.store import reads
    from lrmscope.text import visible

    if runs and (missing := reads.missing_runs(store.conn, runs)):
        known = [str(run_id) for run_id in reads.run_ids(store.conn, 10)]
        raise LrmscopeError(
            f"no run {', '.join(map(str, missing))} in {visible(str(store.path))} (runs there: "
            f"{', '.join(known) or 'none'})"
        )


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
        "--ctx",
        type=positive_int,
        metavar="N",
        help="context size in tokens (default: the model's, at most 16384)",
    )
    group.add_argument(
        "--extra-bufts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="llama.cpp weight repacking (default: on, except on CPUs with AMX, where it crashes)",
    )
    served = parser.add_argument_group(
        "served model (an OpenAI-compatible server: vLLM, llama-server, SGLang, or a hosted API "
        "with --api chat; instead of --model)"
    )
    served.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help="the server's API base, e.g. http://127.0.0.1:8000/v1 (repeatable: requests are "
        "spread over the endpoints)",
    )
    served.add_argument("--served-model", metavar="NAME", help="the model name the server serves")
    served.add_argument(
        "--api",
        choices=("completions", "chat"),
        default="completions",
        help="completions (default): the template is rendered here and every mode works; chat: "
        "POST /chat/completions, the server applies its template and splits the thought "
        "(hosted APIs, vLLM --reasoning-parser, llama-server)",
    )
    served.add_argument(
        "--prefill-style",
        choices=("vllm", "deepseek"),
        help="with --api chat: how the server continues an assistant message, which the modes "
        "other than default need (vllm: continue_final_message; deepseek: prefix)",
    )
    served.add_argument(
        "--reasoning-effort",
        metavar="LEVEL",
        help="with --api chat: reasoning_effort sent with each request (minimal, low, medium, "
        "high), saved with each sample",
    )
    served.add_argument(
        "--reasoning-budget",
        type=positive_int,
        metavar="N",
        help="with --api chat: the server's own cap on thinking tokens (vLLM's "
        "thinking_token_budget, llama-server's thinking_budget_tokens), saved with each sample",
    )
    served.add_argument(
        "--rpm",
        type=number,
        metavar="N",
        help="at most N requests a minute, over every endpoint (a hosted API's rate limit)",
    )
    template = served.add_mutually_exclusive_group()
    template.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="the model's local tokenizer folder: chat template and token counts",
    )
    template.add_argument(
        "--template-from",
        metavar="GGUF",
        help="take the chat template and tokenizer from a "
        "GGUF of the model (its weights are not loaded)",
    )
    template.add_argument(
        "--chat-template",
        metavar="FILE",
        help="a Jinja chat template (tokens are then counted by the server)",
    )
    served.add_argument(
        "--api-key",
        metavar="KEY",
        help="sent as a Bearer token, never saved (default: $LRMSCOPE_API_KEY or $OPENAI_API_KEY)",
    )
    served.add_argument(
        "--request-timeout",
        type=number,
        default=600.0,
        metavar="SECONDS",
        help="the longest wait for the server's answer or the next piece of a stream (default "
        "600; connecting waits at most 10)",
    )
    served.add_argument(
        "--retries",
        type=positive_int,
        default=4,
        metavar="N",
        help="retries of a request that failed before any text arrived (connection errors, "
        "timeouts, 429, 5xx), after the wait the server asks for (Retry-After), else a backoff "
        "from 0.5 s doubling (default 4)",
    )


def add_generation_options(
    parser: argparse.ArgumentParser, *, mode: bool = True, inject: bool = True
) -> None:
    """Sampling and thinking options; `mode` adds --mode (a command with several modes sets
    the `mode` default itself), `inject` adds --inject (the chat has none: it runs turns)."""
    if mode:
        add_settings_options(parser, ModeSettings, {"mode"})
    sampling = parser.add_argument_group("sampling (every value is stored with the sample)")
    add_settings_options(sampling, SamplerSettings)
    sampling.add_argument(
        "--greedy",
        action=Given,
        nargs=0,
        const=True,
        default=False,
        help="temperature 0, the study's greedy setting",
    )
    thinking_group = parser.add_argument_group("thinking")
    thinking = {item.name for item in fields(ModeSettings)} - {"mode"}
    if not inject:
        thinking.discard("injections")
    add_settings_options(thinking_group, ModeSettings, thinking)
    thinking_group.add_argument(
        "--modes-file",
        metavar="PATH",
        help="a TOML file of modes of your own, [modes.NAME] tables (default: modes.toml in the "
        'user config folder when it is there; README.md "Your own modes")',
    )


# What --greedy sets, over the sampling options.
GREEDY = {"temperature": 0.0, "top_p": 1.0}


def mode_catalog(args: argparse.Namespace) -> ModeCatalog:
    """The modes a command can run: the study's four and those of --modes-file (or of the user's
    modes file)."""
    return ModeCatalog.load(args.modes_file)


def generation_settings(
    args: argparse.Namespace, catalog: ModeCatalog
) -> tuple[ModeSettings, SamplerSettings]:
    """The thinking and sampling settings; --mode found in `catalog`."""
    mode = settings_from_args(ModeSettings, args, mode=catalog.parse(args.mode))
    sampler = settings_from_args(SamplerSettings, args, **(GREEDY if args.greedy else {}))
    return mode, sampler


# The argparse type of a settings field's option, by the field's type (other fields take the
# text as given, and the settings check it).
OPTION_TYPES: dict[object, typing.Callable[[str], object]] = {float: number, int: positive_int}


def _value_type(hint: object) -> object:
    """A field's type without `| None` and without its parameters: float, int, tuple, Literal."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


def add_settings_options(parser, settings: type, names: set[str] | None = None) -> None:
    """An option for each field of the dataclass `settings` (or of its fields in `names`) that
    declares one (engine/settings.py `option`: a flag or several spellings, help, metavar,
    choices), in field order, stored under the field's name: a tuple field's option is
    repeatable, a bool field's a switch, any other notes that the user gave it (`Given`)."""
    hints = typing.get_type_hints(settings)
    for item in fields(settings):
        meta = item.metadata
        if "flag" not in meta or (names is not None and item.name not in names):
            continue
        flags = (meta["flag"],) if isinstance(meta["flag"], str) else meta["flag"]
        declared = {"dest": item.name, "help": meta["help"]}
        declared |= {key: meta[key] for key in ("metavar", "choices") if key in meta}
        kind = _value_type(hints[item.name])
        if kind is tuple:
            parser.add_argument(*flags, action="append", type=text_arg, **declared)
        elif kind is bool:
            parser.add_argument(*flags, action="store_true", **declared)
        else:
            parser.add_argument(
                *flags,
                action=Given,
                type=OPTION_TYPES.get(kind),
                default=item.default,
                **declared,
            )


Settings = typing.TypeVar("Settings")


def settings_from_args(
    settings: type[Settings], args: argparse.Namespace, **values: object
) -> Settings:
    """`settings` from the options `add_settings_options` made, read in field order, with
    `values` over them. An option left out keeps the field's default; a `file` option's value is
    the text of its file."""
    chosen = {}
    for item in fields(settings):
        meta = item.metadata
        if "flag" not in meta or item.name in values or not hasattr(args, item.name):
            continue
        value = getattr(args, item.name)
        if "file" in meta:
            value = read_text_file(value, meta["file"], meta["flag"]) if value else None
        if value is None:
            continue
        chosen[item.name] = meta["parse"](value) if "parse" in meta else value
    return settings(**chosen, **values)
