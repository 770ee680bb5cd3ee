"""Modes of your own: a TOML modes file read into `CustomMode`s, and the modes a command can run
(the study's four and the file's), resolved by name (README.md "Your own modes").

A table `[modes.NAME]` takes the keys of `KEYS`, each checked for its type and range. A file that
does not parse, an unknown key, a wrong type or a name that shadows a study mode is one line
naming the file, the mode and the key, before any model loads.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_config_dir

from lrmscope.engine.judges.registry import JUDGES
from lrmscope.engine.settings import (
    GUARD_ACTIONS,
    GUARD_PARTS,
    THINK_OPENERS,
    AnyMode,
    CustomMode,
    Guard,
    Mode,
)
from lrmscope.errors import LrmscopeError

# The modes file read when --modes-file is not given, if it is there.
USER_MODES_FILE = "modes.toml"
# A name is what --modes splits on commas and what every table shows: short, lower case.
NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_FILE = 1 << 20  # a modes file is a few hundred bytes; a bigger one is the wrong file


def user_modes_path() -> Path:
    return Path(user_config_dir("lrmscope")) / USER_MODES_FILE


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a non-empty list of non-empty strings")
    return tuple(value)


def _whole(low: int, high: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        # a bool is an int to Python, not to a modes file
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"must be a whole number between {low} and {high}")
        return value

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return str(value)

    return check


def _judge_spec(value: object) -> str:
    """A live judge as --live-judge names it; its model loads only when the command runs."""
    name, _, argument = _text(value).strip().partition("=")
    info = JUDGES.get(name)
    if info is None:
        raise ValueError(f"must name a judge ({', '.join(JUDGES)})")
    if info.needs_argument and not argument:
        raise ValueError(f"must give judge {name} its model: {name}{info.argument}")
    return str(value).strip()


def _table(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError("must be a table of keys")
    return value


def _opener(value: object) -> str:
    if value not in THINK_OPENERS:
        raise ValueError(f"must be one of {', '.join(THINK_OPENERS)}")
    return str(value)


# Each key of a mode's table: the CustomMode field it fills and its check (same ranges as the
# command's options of the same name).
KEYS: dict[str, tuple[str, Callable[[object], object]]] = {
    "prefill": ("prefill", _text),
    "rethink": ("rethink_strings", _texts),
    "think_budget": ("think_budget", _whole(1, 10_000_000)),
    "enforce_num": ("enforce_num", _whole(0, 100_000)),
    "max_think": ("max_think", _whole(0, 10_000_000)),
    "opener": ("think_opener", _opener),
    "guard": ("guard", _table),  # its keys are GUARD_KEYS, checked by _guard
}
# Each key of a mode's [modes.NAME.guard] table: the Guard field it fills and its check.
GUARD_KEYS: dict[str, tuple[str, Callable[[object], object]]] = {
    "judge": ("judge", _judge_spec),
    "action": ("action", _one_of(GUARD_ACTIONS)),
    "text": ("text", _text),
    "prefill": ("prefill", _text),
    "max_interventions": ("max_interventions", _whole(1, 1000)),
    "part": ("part", _one_of(GUARD_PARTS)),
}


def read_modes_file(path: Path) -> tuple[CustomMode, ...]:
    """The modes of a modes file, in the file's order, every key checked."""
    shown = str(path)
    try:
        if path.is_dir():
            raise LrmscopeError(f"modes file {shown} is a directory; pass a TOML file")
        if path.stat().st_size > MAX_FILE:
            raise LrmscopeError(f"modes file {shown} is too large (at most 1 MiB)")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LrmscopeError(f"modes file {shown} does not exist; check --modes-file") from None
    except UnicodeDecodeError:
        raise LrmscopeError(f"modes file {shown} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise LrmscopeError(f"modes file {shown} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise LrmscopeError(f"cannot read modes file {shown}: {exc.strerror}") from None
    unknown = sorted(set(data) - {"modes"})
    if unknown:
        raise LrmscopeError(
            f"modes file {shown}: unknown key {unknown[0]!r}: the file holds [modes.NAME] tables"
        )
    tables = data.get("modes", {})
    if not isinstance(tables, dict):
        raise LrmscopeError(f"modes file {shown}: 'modes' must be tables [modes.NAME]")
    return tuple(_mode(shown, name, table) for name, table in tables.items())


def _mode(shown: str, name: str, table: object) -> CustomMode:
    where = f"modes file {shown}: mode {name!r}"
    study = ", ".join(m.value for m in Mode)
    if name.lower() in {m.value for m in Mode} | {"all"}:
        raise LrmscopeError(f"{where} shadows a built-in mode ({study}, all): rename it")
    if not NAME.fullmatch(name):
        raise LrmscopeError(
            f"{where}: a name is a lower-case letter, then up to 31 lower-case letters, digits, "
            "'-' or '_'"
        )
    if not isinstance(table, dict):
        raise LrmscopeError(f"{where} must be a table [modes.{name}] of keys")
    values = _checked(where, "key", table, KEYS)
    if "guard" in values:
        values["guard"] = _guard(where, values["guard"])
    return CustomMode(name, source=shown, **values)


def _checked(
    where: str, what: str, table: dict, keys: dict[str, tuple[str, Callable[[object], object]]]
) -> dict:
    """The table's values by field, each key known and checked."""
    values = {}
    for key, value in table.items():
        if key not in keys:
            raise LrmscopeError(f"{where}: unknown {what} {key!r}: choose among {', '.join(keys)}")
        field, check = keys[key]
        try:
            values[field] = check(value)
        except ValueError as exc:
            shown_value = repr(value)
            if len(shown_value) > 60:
                shown_value = shown_value[:57] + "..."
            raise LrmscopeError(f"{where}: {what} {key!r} {exc}, got {shown_value}") from None
    return values


def _guard(where: str, table: dict) -> Guard:
    """[modes.NAME.guard]: a judge, an action and what the action needs."""
    values = _checked(where, "guard key", table, GUARD_KEYS)
    needs = {
        "judge": 'a live judge spec, e.g. judge = "rs-match"',
        "action": "inject, close or restart",
    }
    for key, hint in needs.items():
        if key not in values:
            raise LrmscopeError(f"{where}: guard key {key!r} is missing: give {hint}")
    action = values["action"]
    if action == "inject" and "text" not in values:
        raise LrmscopeError(f"{where}: guard key 'text' is missing: action inject injects it")
    if action == "restart" and "prefill" not in values:
        raise LrmscopeError(
            f"{where}: guard key 'prefill' is missing: action restart answers from the prompt "
            "with it"
        )
    if action == "close" and values.get("part") == "both":
        raise LrmscopeError(
            f"{where}: guard key 'part' is 'both' but action close closes the thought only: "
            'use part = "think"'
        )
    return Guard(**values)


def mode_name(value: str) -> str:
    """A mode as a filter names it (metrics, export): one of the study's four, or a name a modes
    file may give; whether a database holds samples of it is for the filter to find."""
    wanted = value.strip().lower()
    if wanted in {m.value for m in Mode} or NAME.fullmatch(wanted):
        return wanted
    study = ", ".join(m.value for m in Mode)
    raise LrmscopeError(f"unknown mode {value!r}: choose one of {study}, or a mode of your own")


@dataclass(frozen=True)
class ModeCatalog:
    """The modes a command can run: the study's four, then the modes file's (`custom`, from
    `source`), each found by its name."""

    custom: tuple[CustomMode, ...] = ()
    source: str | None = None

    @classmethod
    def load(cls, path: str | None) -> ModeCatalog:
        """The modes of `path` (--modes-file), else of the user's modes file when there is one,
        else the study's four alone."""
        file = Path(path).expanduser() if path else user_modes_path()
        if path is None and not file.is_file():
            return cls()
        return cls(read_modes_file(file), str(file))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.value for m in Mode) + tuple(m.value for m in self.custom)

    def parse(self, value: AnyMode | str) -> AnyMode:
        """The mode named `value`, in any case (names in a modes file are lower case)."""
        if isinstance(value, (Mode, CustomMode)):
            return value
        wanted = value.strip().lower()
        for mode in self.custom:
            if mode.value == wanted:
                return mode
        if wanted in {m.value for m in Mode}:
            return Mode.parse(wanted)
        where = (
            f" (modes file {self.source})" if self.source else ", or one of your own (--modes-file)"
        )
        raise LrmscopeError(f"unknown mode {value!r}: choose one of {', '.join(self.names)}{where}")

    def parse_list(self, value: str) -> tuple[AnyMode, ...]:
        """--modes: names, comma-separated, or `all` (the study's four); each once, the study's
        modes in the study's order, then the file's in the file's order."""
        names = [name.strip() for name in value.split(",") if name.strip()]
        if names == ["all"]:
            return tuple(Mode)
        chosen = {self.parse(name) for name in names}
        ordered: Sequence[AnyMode] = (*Mode, *self.custom)
        return tuple(mode for mode in ordered if mode in chosen)
