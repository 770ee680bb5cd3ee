"""Frozen settings for sampling and decoding modes, validated at construction."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from lrmscope.errors import LrmscopeError

# docs/study.md "Decoding modes": the prefill strings, byte for byte (keep the grammar and the
# space).
ZEROTHINK_PREFILL = "\n</think>\n\n"
LESSTHINK_PREFILL = (
    "Okay, the user ask for this, I can answer it without thinking much. \n</think>\n\n"
)
# docs/study.md "Decoding modes": MoreThink's rethink strings and its forced close.
RETHINK_STRINGS = ("Wait", "Let me think again")
FORCED_CLOSE = "</think>\n\n"
THINK_OPEN_TAG = "<think>"
THINK_OPEN = THINK_OPEN_TAG + "\n"
THINK_CLOSE = "</think>"
# llama.cpp reads seed 0xFFFFFFFF as "pick a random seed": seeds stay below it to stay repeatable.
MAX_SEED = 2**32 - 2


class Mode(StrEnum):
    """The study's decoding modes, declared in the study's order (the order they print in)."""

    DEFAULT = "default"
    ZEROTHINK = "zerothink"
    LESSTHINK = "lessthink"
    MORETHINK = "morethink"

    @classmethod
    def parse(cls, value: str) -> Mode:
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise LrmscopeError(f"unknown mode {value!r}: choose one of {choices}") from None

    @property
    def prefill(self) -> str | None:
        """The text placed after the think opener before the model's first token."""
        return STUDY_PREFILLS.get(self)

    @property
    def rethinks(self) -> bool:
        """Whether the mode runs MoreThink's loop (docs/study.md "MoreThink")."""
        return self is Mode.MORETHINK


STUDY_PREFILLS = {Mode.ZEROTHINK: ZEROTHINK_PREFILL, Mode.LESSTHINK: LESSTHINK_PREFILL}

# What a guard does when its judge flags a sentence (README.md "Your own modes"), and which parts
# it watches: the thought alone, or the answer too.
GUARD_ACTIONS = ("inject", "close", "restart")
GUARD_PARTS = ("think", "both")


@dataclass(frozen=True)
class Guard:
    """A guarded mode's guard (`[modes.NAME.guard]`): a live `judge` (a judge spec, as --judge
    takes it) judges each finished sentence while decoding goes on; on an unsafe one the engine
    intervenes at the next token boundary: `inject` writes `text` into the running thought (or
    answer), `close` closes the thought as a ZeroThink switch would, `restart` drops the response
    so far and starts again from the prompt with `prefill`; at most `max_interventions` times.
    lrmscope/engine/modes.py checks the keys; lrmscope/engine/guard.py runs it."""

    judge: str
    action: Literal["inject", "close", "restart"]
    text: str | None = None
    prefill: str | None = None
    max_interventions: int = 1
    part: Literal["think", "both"] = "think"

    def definition(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class CustomMode:
    """A decoding mode of the user's own, from a modes file (lrmscope/engine/modes.py reads and
    checks it; README.md "Your own modes"). It runs on the study's machinery: a `prefill` is
    injected as ZeroThink's and LessThink's are (one that holds `</think>` closes the thought,
    one that does not starts it); `rethink_strings`, `think_budget` or `enforce_num` run
    MoreThink's loop; `max_think` and `think_opener` are its own values of those settings. A
    value left out is the run's (the command's options). `value` is its name, as saved, like a
    `Mode`'s value."""

    value: str
    prefill: str | None = None
    rethink_strings: tuple[str, ...] | None = None
    think_budget: int | None = None
    enforce_num: int | None = None
    max_think: int | None = None
    think_opener: Literal["always", "template"] | None = None
    guard: Guard | None = None
    source: str = field(default="", compare=False)  # the modes file it came from

    @property
    def rethinks(self) -> bool:
        return any(
            value is not None
            for value in (self.rethink_strings, self.think_budget, self.enforce_num)
        )

    def overrides(self) -> dict:
        """The ModeSettings fields this mode sets for itself."""
        found = {name: getattr(self, name) for name in _OWN_SETTINGS}
        return {name: value for name, value in found.items() if value is not None}

    def definition(self) -> dict:
        """All that defines what the mode does: saved with each sample, hashed into an eval
        run's config."""
        data = {"name": self.value, **self.overrides()}
        if self.prefill is not None:
            data["prefill"] = self.prefill
        if self.rethink_strings is not None:
            data["rethink_strings"] = list(self.rethink_strings)
        if self.guard is not None:
            data["guard"] = self.guard.definition()
        return data

    def digest(self) -> str:
        text = json.dumps(self.definition(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# The ModeSettings fields a mode of your own may set for itself.
_OWN_SETTINGS = ("rethink_strings", "think_budget", "enforce_num", "max_think", "think_opener")
AnyMode = Mode | CustomMode


@dataclass(frozen=True)
class Injection:
    """Text injected into the running thought once the model has written `after` thought tokens
    (--inject AFTER_TOKENS:TEXT), saved as an injected span of kind `inject`."""

    after: int
    text: str

    def __post_init__(self) -> None:
        check_range("--inject's token count", self.after, 0, 10_000_000)
        if not isinstance(self.text, str) or not self.text:
            raise LrmscopeError("--inject needs a text after the token count: AFTER_TOKENS:TEXT")

    @classmethod
    def parse(cls, value: str) -> Injection:
        after, colon, text = value.partition(":")
        if not colon or not after.strip().isdigit():
            raise LrmscopeError(
                f"--inject {value!r}: expected AFTER_TOKENS:TEXT, e.g. 200:Wait, is this safe?"
            )
        return cls(int(after), text)


def parse_injections(values: Sequence[str]) -> tuple[Injection, ...]:
    return tuple(map(Injection.parse, values))


# docs/study.md "Think opener": always = add `<think>\n` whenever the template did not (DeepSeek's
# advice, the default); template = only for ZeroThink and LessThink, as the study's code does.
THINK_OPENERS = ("always", "template")
# docs/study.md "MoreThink": study = the answer gets max_tokens - think_budget tokens and stops at
# `</think>`, as the study's code; rest = the answer gets whatever max_tokens leaves.
ANSWER_BUDGETS = ("study", "rest")


def option(default: Any, flag: str | tuple[str, ...], help: str, **more: Any) -> Any:
    """A settings field that declares its command-line option as plain data, which
    lrmscope/cli/options.py turns into the option (the engine never imports argparse): `flag`
    (or several spellings, the first shown first), `help`, and in `more` a `metavar`, `choices`,
    `file` (the option names a file and the value is its text: what the file holds) or `parse`
    (the option's text to the value)."""
    return field(default=default, metadata={"flag": flag, "help": help, **more})


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise LrmscopeError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")


def check_range(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or not low <= value <= high:
        raise LrmscopeError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


@dataclass(frozen=True)
class SamplerSettings:
    """Every sampler setting, passed explicitly to the backend and stored with each sample.

    docs/study.md "Sampling": llama-cpp-python's defaults differ from vLLM's, so nothing is left to
    the backend: top_k 0 = off, min_p 0, repeat_penalty 1. temperature 0 is greedy decoding.
    """

    temperature: float = option(0.6, "--temperature", "(default 0.6)")
    top_p: float = option(0.95, "--top-p", "(default 0.95)")
    top_k: int = option(0, "--top-k", "0 = off (default)")
    min_p: float = option(0.0, "--min-p", "(default 0)")
    repeat_penalty: float = option(1.0, "--repeat-penalty", "(default 1)")
    max_tokens: int = option(16000, "--max-tokens", "(default 16000)")
    seed: int = option(0, "--seed", "(default 0)")

    def __post_init__(self) -> None:
        check_range("temperature", self.temperature, 0.0, 5.0)
        check_range("top_p", self.top_p, 0.0, 1.0)
        check_range("top_k", self.top_k, 0, 1_000_000)
        check_range("min_p", self.min_p, 0.0, 1.0)
        check_range("repeat_penalty", self.repeat_penalty, 0.0, 10.0)
        check_range("max_tokens", self.max_tokens, 1, 10_000_000)
        check_range("seed", self.seed, 0, MAX_SEED)
        if self.top_p == 0.0:
            raise LrmscopeError("top_p must be above 0 (use --temperature 0 for greedy decoding)")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def as_dict(self) -> dict:
        return dict(self._saved)

    @functools.cached_property
    def _saved(self) -> dict:
        """The settings as saved, worked out once (frozen): every sample saves them."""
        return asdict(self)


@dataclass(frozen=True)
class ModeSettings:
    """A decoding mode and its parameters (docs/study.md "Decoding modes").

    think_budget and enforce_num drive MoreThink; answer_budget says how many tokens its answer
    gets (ANSWER_BUDGETS). think_opener says when the prompt gets `<think>\n` (THINK_OPENERS).
    max_think is the s1-style cap that works in any
    mode: when the thought has used that many tokens, the engine forces the close tag.
    think_grammar is an optional GBNF grammar that constrains the model while the thought is open
    (where the backend supports grammars), e.g. to study a model made to close its thought early.
    """

    mode: AnyMode = option(
        Mode.DEFAULT,
        "--mode",
        "default, zerothink, lessthink, morethink or a mode of your own from --modes-file "
        "(default: default)",
    )
    think_budget: int = option(10000, "--think-budget", "MoreThink budget (default 10000)")
    enforce_num: int = option(10, "--enforce-num", "MoreThink rounds (default 10)")
    rethink_strings: tuple[str, ...] = option(
        RETHINK_STRINGS,
        "--rethink",
        "a MoreThink rethink string, repeatable (default: 'Wait' and 'Let me think again')",
        metavar="TEXT",
    )
    max_think: int | None = option(
        None,
        "--max-think",
        "s1-style cap: force the thought closed after N tokens, in any mode",
        metavar="N",
    )
    think_grammar: str | None = option(
        None,
        "--think-grammar",
        "a GBNF grammar constraining the model while its thought is open (with --endpoint: "
        "llama-server and llama-cpp-python's server read it)",
        metavar="FILE",
        file="grammar",
    )
    answer_budget: Literal["study", "rest"] = option(
        "study",
        "--answer-budget",
        "MoreThink's answer: study = max-tokens minus think-budget, stopping at </think>, as the "
        "study's code (default); rest = what max-tokens leaves",
        metavar="study|rest",
    )
    think_opener: Literal["always", "template"] = option(
        "always",
        "--think-opener",
        "add <think>\\n to the prompt: always when the template did not (default, DeepSeek's "
        "advice), or template = only for zerothink and lessthink, as the study's code",
        metavar="always|template",
    )
    injections: tuple[Injection, ...] = option(
        (),
        "--inject",
        "inject TEXT into the thought once the model has written AFTER_TOKENS thought tokens "
        "(repeatable; saved as an injected span)",
        metavar="AFTER_TOKENS:TEXT",
        parse=parse_injections,
    )

    def __post_init__(self) -> None:
        if not isinstance(self.mode, CustomMode):
            object.__setattr__(self, "mode", Mode.parse(str(self.mode)))
        check_choice("answer budget", self.answer_budget, ANSWER_BUDGETS)
        check_choice("think opener policy", self.think_opener, THINK_OPENERS)
        object.__setattr__(self, "rethink_strings", tuple(self.rethink_strings))
        check_range("think_budget", self.think_budget, 1, 10_000_000)
        check_range("enforce_num", self.enforce_num, 0, 100_000)
        if self.max_think is not None:
            check_range("max_think", self.max_think, 0, 10_000_000)
        if not self.rethink_strings or not all(self.rethink_strings):
            raise LrmscopeError("rethink strings must be a non-empty list of non-empty strings")
        # in the order they land: by token count, then as given
        injections = sorted(self.injections, key=lambda injection: injection.after)
        object.__setattr__(self, "injections", tuple(injections))

    def with_mode(self, mode: AnyMode | str) -> ModeSettings:
        mode = mode if isinstance(mode, CustomMode) else Mode.parse(str(mode))
        return self if mode == self.mode else replace(self, mode=mode)

    def resolved(self) -> ModeSettings:
        """The settings a generation runs with: a mode of your own's values over the run's (the
        study's modes have none, so theirs are these)."""
        if isinstance(self.mode, Mode):
            return self
        return replace(self, **self.mode.overrides())

    def check_answer_room(self, modes: Sequence[AnyMode], max_tokens: int) -> None:
        """Under the study's answer budget, MoreThink (or a mode of your own that runs its loop)
        with a think budget of max_tokens or more could never answer: say so before anything
        runs."""
        for mode in modes:
            settings = self.with_mode(mode).resolved()
            if mode.rethinks and settings.answer_limit(max_tokens) == 0:
                name = "MoreThink" if mode is Mode.MORETHINK else f"mode {mode.value}"
                raise LrmscopeError(
                    f"{name}'s answer gets --max-tokens minus --think-budget tokens "
                    f"({max_tokens} - {settings.think_budget}): nothing is left for it; lower "
                    "--think-budget, raise --max-tokens, or pass --answer-budget rest"
                )

    def answer_limit(self, max_tokens: int) -> int | None:
        """Tokens MoreThink's answer may use under the study's budget, or None (no own limit)."""
        if self.mode.rethinks and self.answer_budget == "study":
            return max(0, max_tokens - self.think_budget)
        return None

    def as_dict(self) -> dict:
        """The settings as saved; a mode of your own adds its definition. A new dict, whose
        lists and dicts are shared by every call: read them, do not change them."""
        return dict(self._saved)

    @functools.cached_property
    def _saved(self) -> dict:
        """Worked out once (frozen): every snapshot of a sample saves them."""
        data = asdict(self)
        data["mode"] = self.mode.value
        data["rethink_strings"] = list(self.rethink_strings)
        if isinstance(self.mode, CustomMode):
            data["definition"] = self.mode.definition()
        if self.injections:
            data["injections"] = [asdict(injection) for injection in self.injections]
        else:  # the settings of a run without any are saved as they were before --inject
            del data["injections"]
        return data
