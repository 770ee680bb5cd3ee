"""Prompt datasets for `lrmscope eval`: StrongREJECT and WildJailbreak files, your own CSV, TSV,
Parquet, JSONL or text file, or the built-in `demo` set.

Neither benchmark can be downloaded on the project's machines, so loaders take local files. A
prompt's key is a hash of its text: the same prompt has the same key in any file and any row order,
which is what lets a resumed eval find its prompts again. Blank prompts are skipped and counted;
a text seen before is dropped and counted. Filters apply in the order data_type, category, then
`limit` keeps the first N distinct prompts.

Every prompt has a kind, `harmful`, `benign` or `unknown` (the safety metrics average over harmful
and unknown prompts only): `prompt_kind` sets it for every row; otherwise a `harmful` or `label`
column says it (KIND_VALUES; a blank cell says nothing), then a WildJailbreak `data_type` ending
`_harmful` or `_benign`, then the format: StrongREJECT rows are harmful, anything else unknown.

A JSONL file whose rows hold `messages` (OpenAI chat format) is a conversation set
(`ConversationRow`, core/conversations.py runs them): a row with assistant turns is a scripted
history (only its last user turn is generated), a row of user turns only a generated history (the
model answers each in turn). Each generated turn is a prompt of its own (`turn_rows`), keyed by
its conversation and turn, so the metrics count every turn as they count any prompt.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lrmscope.core import hub
from lrmscope.engine.backend import Message
from lrmscope.engine.settings import check_choice
from lrmscope.errors import LrmscopeError
from lrmscope.vocab import PROMPT_KINDS, REASONING

PROMPT_COLUMNS = (
    "forbidden_prompt",
    "prompt",
    "instruction",
    "question",
    "problem",
    "adversarial",
    "vanilla",
)
JSONL_FIELDS = ("prompt", "instruction", "question", "problem")
ANSWER_COLUMN = "answer"  # a reference answer: the row is a reasoning task
DEFAULT_DATA_TYPE = "adversarial_harmful"
# The largest dataset file read (it is read whole): the big benchmarks are a few hundred MiB.
MAX_DATASET_BYTES = 1 << 30
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl"}
KIND_COLUMNS = ("harmful", "label")  # the first one present says each row's kind
# The first one present is each row's category: XSTest names its prompt types in `type`.
CATEGORY_COLUMNS = ("category", "type")
# The values a kind column may hold, any case; a blank cell (or a missing field) says nothing.
KIND_VALUES = {
    **dict.fromkeys(("harmful", "unsafe", "1", "true", "yes"), "harmful"),
    **dict.fromkeys(("benign", "safe", "0", "false", "no"), "benign"),
}
ACCEPTED_KINDS = (
    "harmful, unsafe, 1, true, yes (harmful); benign, safe, 0, false, no (benign); blank (unknown)"
)

# The sets shipped with lrmscope, by the name --dataset takes: prompts, and conversations.
DEMOS = {"demo": "demo.csv", "demo-conversations": "conversations.jsonl"}
CONVERSATION_FIELD = "messages"  # a JSONL row holding it is a conversation
ROLES = ("system", "user", "assistant")

# text, category, source as read; kind (None: not said); reference answer as read
_Raw = tuple[Any, Any, Any, str | None, Any]


def prompt_key(text: str) -> str:
    """A stable id for a prompt, in any file and any row order (and for one typed by hand): the
    first 16 hex digits of the sha256 of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class PromptRow:
    key: str  # prompt_key(text)
    text: str
    category: str | None
    source: str | None
    kind: str = "unknown"  # PROMPT_KINDS
    reference: str | None = None  # a reasoning task's reference answer, as the file gives it


@dataclass(frozen=True)
class ConversationRow:
    """One conversation of a conversation set: its messages as the file gives them, and a mode
    per generated turn where the row names them (`modes`; else the run's --modes apply)."""

    key: str  # prompt_key of its messages (as canonical JSON)
    name: str | None  # the row's `id`
    messages: tuple[Message, ...]
    category: str | None
    source: str | None
    kind: str
    modes: tuple[str, ...] | None
    line: int  # where it is in its file

    @property
    def users(self) -> tuple[int, ...]:
        """The index in `messages` of each user turn; turn t (from 1) is users[t - 1]."""
        return tuple(i for i, m in enumerate(self.messages) if m.role == "user")

    @property
    def scripted(self) -> bool:
        """A scripted history: the file gives the earlier assistant turns."""
        return any(m.role == "assistant" for m in self.messages)

    @property
    def generated(self) -> tuple[int, ...]:
        """The turns (from 1) the model answers: the last of a scripted history, else each."""
        turns = len(self.users)
        return (turns,) if self.scripted else tuple(range(1, turns + 1))

    def turn_key(self, turn: int) -> str:
        """The prompt key of a generated turn."""
        return f"{self.key}.{turn}"

    def user_text(self, turn: int) -> str:
        return self.messages[self.users[turn - 1]].content


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str | None
    sha256: str | None  # of the file's bytes (hf: the library's fingerprint): resumes see the same
    format: str
    column: str  # where the prompts came from ("adversarial+vanilla" for mixed WildJailbreak)
    rows: tuple[PromptRow, ...]
    duplicates: int  # rows dropped (before the limit) because the same text appeared earlier
    blanks: int  # rows skipped because their prompt was empty or only whitespace
    conversations: tuple[ConversationRow, ...] = ()  # a conversation set's; `rows` its turns


def load_dataset(
    spec: str,
    *,
    limit: int | None = None,
    category: str | None = None,
    column: str | None = None,
    data_type: str | None = None,
    prompt_kind: str | None = None,
) -> Dataset:
    """The prompts of a dataset file (by extension), of a Hugging Face dataset (`hf:`, core/hub.py)
    or of `demo`, filtered and deduplicated; `prompt_kind` (PROMPT_KINDS) sets the kind of every
    row, whatever the file says."""
    if prompt_kind is not None:
        check_choice("prompt kind", prompt_kind, PROMPT_KINDS)
    data = b""
    if hub.is_hub(spec):
        found = hub.read(spec)
        where, name, path, kind, digest = spec, found.name, spec, "hf", found.fingerprint
    elif spec in DEMOS:
        data = resources.files("lrmscope").joinpath(f"data/{DEMOS[spec]}").read_bytes()
        kind = _SUFFIXES[Path(DEMOS[spec]).suffix]
        where, name, path, digest = spec, spec, None, None
    else:
        file = Path(spec).expanduser()
        kind = _SUFFIXES.get(file.suffix.lower(), "text")
        data, where, name, path = _read(file, kind), str(file), file.stem, str(file.resolve())
        if not data.strip():
            raise LrmscopeError(f"dataset {where} is empty")
        digest = hashlib.sha256(data).hexdigest()
    if kind in ("jsonl", "text") and data_type is not None:
        raise LrmscopeError(f"--data-type needs a table with a data_type column; {where} is {kind}")
    if kind == "hf":
        fmt, used, raws = _tabular(
            found.columns, found.rows, "hf", where, column, data_type, prompt_kind is None
        )
    elif kind == "parquet":
        fmt, used, raws = _tabular(
            *_parquet(data, where), "parquet", where, column, data_type, prompt_kind is None
        )
    elif kind in ("csv", "tsv"):
        table = _delimited(_decode(data, where), "\t" if kind == "tsv" else ",", where)
        fmt, used, raws = _tabular(*table, kind, where, column, data_type, prompt_kind is None)
    elif kind == "jsonl":
        text = _decode(data, where)
        if _is_conversations(text, where):
            if column is not None:
                raise LrmscopeError(
                    f"--column does not apply to {where}: its rows are conversations"
                )
            talks = _conversations(text, where, prompt_kind)
            return _conversation_set(talks, where, name, path, digest, category, limit)
        fmt, used, raws = "jsonl", *_jsonl(text, where, column, prompt_kind is None)
    else:
        if column is not None:
            raise LrmscopeError(f"--column applies to CSV, TSV, Parquet and JSONL; {where} is text")
        fmt, used = "text", "line"
        lines = (line.strip() for line in _decode(data, where).split("\n"))
        raws = [(line, None, None, None, None) for line in lines if line]
    default = "harmful" if fmt == "strongreject-csv" else "unknown"
    prompts = [
        (str(t), _opt(c), _opt(s), prompt_kind or (REASONING if _opt(r) else k or default), _opt(r))
        for t, c, s, k, r in raws
        if t is not None and str(t).strip()
    ]
    if not prompts:
        raise LrmscopeError(f"dataset {where} has no prompts (looked in {used!r})")
    missing = sum(1 for *_, kind, reference in prompts if kind == REASONING and reference is None)
    if missing:
        raise LrmscopeError(
            f"dataset {where}: {missing} of its {len(prompts)} prompts have no reference answer; "
            f"reasoning prompts need an {ANSWER_COLUMN!r} column (or field)"
        )
    if category is not None:
        present = sorted({c for _, c, *_ in prompts if c is not None})
        if category not in present:
            listed = f"its categories are: {_names(present)}" if present else "it has none"
            raise LrmscopeError(f"dataset {where} has no category {category!r}; {listed}")
        prompts = [prompt for prompt in prompts if prompt[1] == category]
    rows: dict[str, PromptRow] = {}
    for text, cat, source, kind, reference in prompts:
        key = prompt_key(text)
        rows.setdefault(key, PromptRow(key, text, cat, source, kind, reference))
    return Dataset(
        name=name,
        path=path,
        sha256=digest,
        format="demo" if path is None else fmt,
        column=used,
        rows=tuple(rows.values())[:limit],
        duplicates=len(prompts) - len(rows),
        blanks=len(raws) - len(prompts),
    )


def _read(file: Path, kind: str) -> bytes:
    """The file's bytes, after the checks that need only its size and first bytes (so a huge
    file, or a file that is not the Parquet its name says, is refused without reading it)."""
    if file.is_dir():
        raise LrmscopeError(f"dataset {file} is a directory; give a dataset file")
    try:
        size = file.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise LrmscopeError(
                f"dataset {file} is too large ({size >> 20} MiB; at most "
                f"{MAX_DATASET_BYTES >> 20} MiB): split it into smaller files"
            )
        with file.open("rb") as handle:
            head = handle.read(4)
        if kind == "parquet" and head and head[:4] != b"PAR1":
            raise LrmscopeError(
                f"dataset {file} is not a Parquet file (no PAR1 header); check the file, or "
                "rename it to the suffix of its format"
            )
        return file.read_bytes()
    except FileNotFoundError:
        raise LrmscopeError(
            f"dataset {file} does not exist; give a CSV, TSV, Parquet, JSONL or text file, or demo"
        ) from None
    except OSError as exc:
        raise LrmscopeError(f"cannot read dataset {file}: {exc.strerror}") from None


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LrmscopeError(
            f"dataset {where} is not UTF-8 (line {line}, byte offset {exc.start}); save it as UTF-8"
        ) from None


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _names(names) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def _kind(value: Any, where: str, column: str, row: str) -> str | None:
    """The kind a kind column's cell says (None when blank), or an error naming the row."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = "" if value is None else str(value).strip().lower()
    if not text:
        return None
    if text not in KIND_VALUES:
        shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "…"
        raise LrmscopeError(
            f"dataset {where}: column {column!r} has {shown!r} in {row}, its first bad row; "
            f"accepted values (any case): {ACCEPTED_KINDS}"
        )
    return KIND_VALUES[text]


def _type_kind(data_type: str) -> str | None:
    """A WildJailbreak data_type's kind: adversarial_harmful is harmful, vanilla_benign benign."""
    if data_type.endswith("_harmful"):
        return "harmful"
    return "benign" if data_type.endswith("_benign") else None


def _delimited(text: str, delimiter: str, where: str) -> tuple[list[str], Iterator[dict]]:
    """The header and the rows (parsed as they are read) of a CSV or TSV text."""
    # A field can be as long as the file, never longer: the limit stays finite and never refuses
    # a well-formed file.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)

    def records() -> Iterator[list[str]]:
        try:
            yield from reader
        except csv.Error as exc:
            raise LrmscopeError(
                f"dataset {where}: bad quoting on line {reader.line_num} ({exc}); fields holding "
                'the delimiter, quotes or newlines must be quoted with "'
            ) from None

    rest = records()
    header = [name.strip() for name in next((row for row in rest if "".join(row).strip()), [])]

    def rows() -> Iterator[dict]:
        for cells in rest:
            if len(cells) != len(header):
                if not "".join(cells).strip():
                    continue  # a blank line, not a row with a blank prompt
                raise LrmscopeError(
                    f"dataset {where}: the row ending on line {reader.line_num} has {len(cells)} "
                    f"fields but the header has {len(header)}; check the quoting and the delimiter"
                )
            yield dict(zip(header, cells))

    return header, rows()


def _parquet(data: bytes, where: str) -> tuple[list[str], Iterator[dict]]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise LrmscopeError("reading Parquet files needs pyarrow: pip install pyarrow") from None
    try:
        file = pyarrow.parquet.ParquetFile(io.BytesIO(data))
    except (pyarrow.ArrowException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LrmscopeError(f"dataset {where} is not a Parquet file ({reason})") from None

    def rows() -> Iterator[dict]:
        for batch in file.iter_batches():
            yield from batch.to_pylist()

    return file.schema_arrow.names, rows()


def _tabular(
    found: list[str],
    rows: Iterator[dict],
    fmt: str,
    where: str,
    column: str | None,
    data_type: str | None,
    kinds: bool = True,
) -> tuple[str, str, list[_Raw]]:
    """Format name, column used and raw rows of a table. With a data_type column (WildJailbreak),
    rows are filtered to one data_type (or all), which becomes their category, and each takes its
    prompt from `adversarial` or `vanilla` by its type; otherwise from one prompt column. With
    `kinds`, each row's kind comes from a kind column (every row checked, kept or not) or its
    data_type."""
    typed = "data_type" in found
    if column is not None and column not in found:
        raise LrmscopeError(
            f"dataset {where} has no column {column!r}; its columns: {_names(found)}"
        )
    if data_type is not None and not typed:
        raise LrmscopeError(f"--data-type needs a data_type column; {where} has none")
    data_type = data_type or DEFAULT_DATA_TYPE
    if not typed and column is None:
        column = next((name for name in PROMPT_COLUMNS if name in found), None)
        if column is None:
            raise LrmscopeError(
                f"dataset {where} has no prompt column: found {_names(found)}, accepted "
                f"{_names(PROMPT_COLUMNS)}; name the column with --column"
            )
    if typed or column in ("adversarial", "vanilla"):
        fmt = "wildjailbreak"
    elif fmt == "csv" and "forbidden_prompt" in found:
        fmt = "strongreject-csv"
    present: set[str] = set()
    used: set[str] = set()
    raws: list[_Raw] = []
    said = next((name for name in KIND_COLUMNS if name in found), None) if kinds else None
    grouped = next((name for name in CATEGORY_COLUMNS if name in found), None)
    for number, row in enumerate(rows, 1):
        kind = str(row.get("data_type") or "")
        told = _kind(row.get(said), where, said, f"row {number}") if said else None
        present.add(kind)
        if typed and data_type not in ("all", kind):
            continue
        field = column or ("vanilla" if kind.startswith("vanilla") else "adversarial")
        if field not in row:
            raise LrmscopeError(
                f"dataset {where}: {kind} rows take their prompt from {field!r}, which is not a "
                f"column (columns: {_names(found)}); name the prompt column with --column"
            )
        used.add(field)
        raws.append(
            (
                row[field],
                kind if typed else row.get(grouped) if grouped else None,
                row.get("source"),
                told or (_type_kind(kind) if typed else None),
                row.get(ANSWER_COLUMN),
            )
        )
    if typed and data_type not in present | {"all"}:
        raise LrmscopeError(
            f"dataset {where} has no rows of data_type {data_type!r}; values present: "
            f"{', '.join(sorted(present - {''}))} (or --data-type all)"
        )
    return fmt, column or "+".join(sorted(used)) or "adversarial", raws


def _jsonl(text: str, where: str, column: str | None, kinds: bool = True) -> tuple[str, list[_Raw]]:
    """The field used and the raw rows of a JSONL file; the first object fixes the field. With
    `kinds`, each line's kind comes from its `harmful` or `label` field."""
    field = column
    raws: list[_Raw] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LrmscopeError(f"dataset {where}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise LrmscopeError(f"dataset {where}: line {number} is not a JSON object")
        field = field or next((name for name in JSONL_FIELDS if name in item), None)
        if field is None or field not in item:
            raise LrmscopeError(
                f"dataset {where}: line {number} has no prompt field: found {_names(item)}, "
                f"accepted {_names([field] if field else JSONL_FIELDS)}; name one with --column"
            )
        said = next((name for name in KIND_COLUMNS if name in item), None) if kinds else None
        told = _kind(item.get(said), where, said, f"line {number}") if said else None
        raws.append(
            (
                item[field],
                next((item[name] for name in CATEGORY_COLUMNS if name in item), None),
                item.get("source"),
                told,
                item.get(ANSWER_COLUMN),
            )
        )
    return field or "prompt", raws


def _is_conversations(text: str, where: str) -> bool:
    """Whether a JSONL file's first row holds `messages`."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        item = json.loads(first)
    except json.JSONDecodeError as exc:
        raise LrmscopeError(f"dataset {where}: line 1 is not JSON ({exc.msg})") from None
    return isinstance(item, dict) and CONVERSATION_FIELD in item


def _conversations(text: str, where: str, prompt_kind: str | None) -> list[ConversationRow]:
    """Every row of a conversation set, each checked: roles in order (an optional system message
    first, then user and assistant turns taking turns, or user turns only), every content a
    non-empty string, the last message the user's, and `modes` (when given) one name per
    generated turn."""
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        at = f"dataset {where}: row on line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LrmscopeError(f"{at} is not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get(CONVERSATION_FIELD), list):
            raise LrmscopeError(
                f"{at} has no {CONVERSATION_FIELD!r} list: every row of a conversation set holds "
                "its messages"
            )
        messages = tuple(_message(m, i, at) for i, m in enumerate(item[CONVERSATION_FIELD], 1))
        _check_order(messages, at)
        said = next((name for name in ("kind", *KIND_COLUMNS) if name in item), None)
        told = _kind(item.get(said), where, said, f"line {number}") if said else None
        row = ConversationRow(
            key=prompt_key(json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)),
            name=_opt(item.get("id")),
            messages=messages,
            category=_opt(next((item[n] for n in CATEGORY_COLUMNS if n in item), None)),
            source=_opt(item.get("source")),
            kind=prompt_kind or told or "unknown",
            modes=_modes(item.get("modes"), at),
            line=number,
        )
        if row.modes is not None and len(row.modes) != len(row.generated):
            raise LrmscopeError(
                f"{at} names {len(row.modes)} modes for its {len(row.generated)} generated "
                "turns: give one mode per generated turn (a scripted history generates only its "
                "last turn)"
            )
        rows.append(row)
    return rows


def _message(value: Any, index: int, at: str) -> Message:
    if not isinstance(value, dict) or value.get("role") not in ROLES:
        raise LrmscopeError(
            f"{at}: message {index} is not a {{'role', 'content'}} object with a role of "
            f"{_names(ROLES)}"
        )
    content = value.get("content")
    if not isinstance(content, str) or not content.strip():
        raise LrmscopeError(f"{at}: message {index} ({value['role']}) has an empty content")
    return Message(value["role"], content)


def _check_order(messages: tuple[Message, ...], at: str) -> None:
    roles = [m.role for m in messages]
    turns = roles[1:] if roles[:1] == ["system"] else roles
    if not turns or turns[-1] != "user":
        raise LrmscopeError(
            f"{at}: its messages end with {roles[-1] if roles else 'nothing'!r}, not a user "
            "turn: the last message is the one the model answers"
        )
    expected = ["user", "assistant"] * len(turns) if "assistant" in turns else ["user"] * len(turns)
    for index, (role, wanted) in enumerate(zip(turns, expected), len(roles) - len(turns) + 1):
        if role != wanted:
            raise LrmscopeError(
                f"{at}: message {index} is {role!r} where {wanted!r} was due: roles go (system,) "
                "user, assistant, user, ... or are all user turns (the model answers each)"
            )


def _modes(value: Any, at: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise LrmscopeError(f"{at}: 'modes' is not a list of mode names")
    return tuple(value)


def _conversation_set(
    found: list[ConversationRow],
    where: str,
    name: str,
    path: str | None,
    digest: str | None,
    category: str | None,
    limit: int | None,
) -> Dataset:
    """A conversation set, filtered and deduplicated as prompts are; its rows are the prompts of
    its generated turns."""
    if category is not None:
        present = sorted({c.category for c in found if c.category is not None})
        if category not in present:
            listed = f"its categories are: {_names(present)}" if present else "it has none"
            raise LrmscopeError(f"dataset {where} has no category {category!r}; {listed}")
        found = [c for c in found if c.category == category]
    kept: dict[str, ConversationRow] = {}
    for conversation in found:
        kept.setdefault(conversation.key, conversation)
    conversations = tuple(kept.values())[:limit]
    return Dataset(
        name=name,
        path=path,
        sha256=digest,
        format="conversations",
        column=CONVERSATION_FIELD,
        rows=tuple(turn for c in conversations for turn in turn_rows(c)),
        duplicates=len(found) - len(kept),
        blanks=0,
        conversations=conversations,
    )


def turn_rows(conversation: ConversationRow) -> tuple[PromptRow, ...]:
    """The prompt of each generated turn: its user text, keyed by conversation and turn."""
    return tuple(
        PromptRow(
            conversation.turn_key(turn),
            conversation.user_text(turn),
            conversation.category,
            conversation.source,
            conversation.kind,
        )
        for turn in conversation.generated
    )
