"""The bad-input table: every command, every argument that takes a path or a value, and every file
format lrmscope reads, tried with missing, empty, truncated, wrong-type, huge and non-UTF-8 inputs.

Each answer must be exit code 2 and exactly one line on stderr, `lrmscope: error: ...` naming the
problem (or argparse's one-line usage error), without a traceback. The cases run the real command
line in-process (`lrmscope.cli.main`) on real files written here; all but the few marked
`loads_model` fail before a model is loaded.

docs/bad-inputs.md is generated from this table (`python -m tests.cli.test_bad_inputs`), and a test
checks that the committed file is up to date.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lrmscope.cli.main import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"
DEMO_DB = Path(__file__).resolve().parents[2] / "sample_runs" / "demo-eval.sqlite"
HUGE = 2 << 30  # bytes of a sparse file: never written, only its size is set
# An endpoint nothing listens on: the options checked before any request (a tokenizer folder, a
# chat template) fail first, and none of these cases ever reaches the network.
NOWHERE = ["--endpoint", "http://127.0.0.1:9/v1", "--served-model", "m"]


class Inputs:
    """The files of the table, written once into `root`."""

    def __init__(self, root: Path) -> None:
        from lrmscope.engine.models import embedded_model_path
        from lrmscope.store import Store

        self.root = root
        self.model = embedded_model_path()
        self.dir = self._mkdir("folder")
        self.missing = root / "missing"
        self.text = self._write("notes.txt", b"just some notes\n")
        self.binary = self._write("binary.bin", b"\xff\xfe\x00\x01 not utf-8 \xc3\x28\n")
        self.gguf_truncated = self._write("truncated.gguf", self.model.read_bytes()[:1000])
        self.db = root / "runs.sqlite"
        store = Store(self.db)
        store.close()
        self.demo = self._write("demo.sqlite", DEMO_DB.read_bytes())  # judged eval samples
        self.db_truncated = self._write("truncated.sqlite", self.db.read_bytes()[:1000])
        self.huge = root / "huge.bin"
        with self.huge.open("wb") as handle:
            handle.truncate(HUGE)
        self.tokenizer_empty = self._mkdir("tokenizer-empty")
        self.tokenizer_binary = self._mkdir("tokenizer-binary")
        (self.tokenizer_binary / "tokenizer_config.json").write_bytes(
            b'{"chat_template": "\xff\xfe'
        )
        self.tokenizer_truncated = self._mkdir("tokenizer-truncated")
        config = json.dumps({"chat_template": "{{ messages }}", "eos_token": "</s>"})
        (self.tokenizer_truncated / "tokenizer_config.json").write_text(config[:20])
        self.models_bad = self._mkdir("models-bad")
        (self.models_bad / "truncated.gguf").write_bytes(self.gguf_truncated.read_bytes())
        # A transformers model folder of another architecture than a guard's: its config alone.
        self.llama_folder = self._mkdir("llama-model")
        config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
        (self.llama_folder / "config.json").write_text(json.dumps(config))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def _mkdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path

    def file(self, name: str, data: bytes = b"") -> str:
        """A file of the given name and bytes (written on first use)."""
        path = self.root / name
        if not path.exists():
            path.write_bytes(data)
        return str(path)

    def sparse(self, name: str) -> str:
        """A sparse HUGE-byte file of the given name (its suffix picks the format)."""
        path = self.root / name
        if not path.exists():
            with path.open("wb") as handle:
                handle.truncate(HUGE)
        return str(path)


Argv = Callable[[Inputs], list[str]]


@dataclass(frozen=True)
class Case:
    command: str
    argument: str
    kind: str  # missing, empty, truncated, wrong type, huge, non-UTF-8, out of range, unknown
    input: str  # what is passed, in words
    argv: Argv
    expect: str  # a substring of the one-line message
    loads_model: bool = False  # the error can only be known once the model is loaded

    @property
    def id(self) -> str:
        return f"{self.command} {self.argument} {self.kind}: {self.input}"


def gen(*args) -> Argv:
    """generate with a fresh database; each argument is a string or a function of the inputs."""
    return lambda f: ["generate", "hi", "--db", str(f.root / "new.sqlite"), *_args(f, args)]


def cmd(command: str, *args) -> Argv:
    return lambda f: [command, *_args(f, args)]


def _args(f: Inputs, args) -> list[str]:
    return [arg(f) if callable(arg) else arg for arg in args]


def at(name: str) -> Callable[[Inputs], str]:
    """The path of one of the inputs, by attribute name."""
    return lambda f: str(getattr(f, name))


def data(name: str, content: bytes = b"") -> Callable[[Inputs], str]:
    return lambda f: f.file(name, content)


def sparse(name: str) -> Callable[[Inputs], str]:
    return lambda f: f.sparse(name)


def judge(f: Inputs, *args: str) -> list[str]:
    return ["judge", str(f.demo), *args]


def db(f: Inputs) -> str:
    return str(f.demo)


USER = {"role": "user", "content": "a"}
ASSISTANT = {"role": "assistant", "content": "b"}
NO_SYSTEM_TEMPLATE = (
    b"{% for m in messages %}{% if m['role'] == 'system' %}"
    b"{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}"
)


def _talk(*after: dict) -> bytes:
    """A conversation set of one row: a user turn, then `after`."""
    return json.dumps({"messages": [USER, *after]}).encode() + b"\n"


def _talk_with_system() -> bytes:
    return json.dumps({"messages": [{"role": "system", "content": "s"}, USER]}).encode() + b"\n"


BIG = str(10**12)
NON_UTF8 = b"prompt\n\xff\xfe caf\xe9\n"
C = Case
CASES: list[Case] = [
    # -- a GGUF model: --model of generate, chat, compare, eval ---------------------------------
    C(
        "generate",
        "--model",
        "missing",
        "no such file",
        gen("--model", at("missing")),
        "does not exist",
    ),
    C(
        "generate",
        "--model",
        "empty",
        "0-byte .gguf",
        gen("--model", data("empty.gguf")),
        "not a GGUF file",
    ),
    C(
        "generate",
        "--model",
        "truncated",
        "first 1000 bytes of a GGUF",
        gen("--model", at("gguf_truncated")),
        "could not load",
        loads_model=True,
    ),
    C("generate", "--model", "wrong type", "a directory", gen("--model", at("dir")), "directory"),
    C(
        "generate",
        "--model",
        "wrong type",
        "a text file",
        gen("--model", at("text")),
        "not a GGUF file",
    ),
    C(
        "generate",
        "--model",
        "wrong type",
        "an SQLite database",
        gen("--model", db),
        "not a GGUF file",
    ),
    C(
        "generate",
        "--model",
        "huge",
        "sparse 2 GiB file",
        gen("--model", at("huge")),
        "not a GGUF file",
    ),
    C(
        "generate",
        "--model",
        "non-UTF-8",
        "bytes \\xff\\xfe",
        gen("--model", at("binary")),
        "not a GGUF file",
    ),
    C(
        "chat",
        "--model",
        "missing",
        "no such file",
        cmd("chat", "--model", at("missing")),
        "does not exist",
    ),
    C(
        "compare",
        "--model",
        "wrong type",
        "a directory",
        cmd("compare", "hi", "--model", at("dir")),
        "directory",
    ),
    C(
        "eval",
        "--model",
        "wrong type",
        "a text file",
        cmd("eval", "--dataset", "demo", "--db", data("e.sqlite"), "--model", at("text")),
        "not a GGUF file",
    ),
    # -- a database written by generate, chat, compare, eval: --db -----------------------------
    C(
        "generate",
        "--db",
        "missing",
        "a file in a missing folder",
        lambda f: ["generate", "hi", "--db", str(f.missing / "x.sqlite")],
        "does not exist",
    ),
    C(
        "generate",
        "--db",
        "truncated",
        "first 1000 bytes of a database",
        lambda f: ["generate", "hi", "--db", str(f.db_truncated)],
        "not an lrmscope database",
    ),
    C(
        "generate",
        "--db",
        "wrong type",
        "a directory",
        cmd("generate", "hi", "--db", at("dir")),
        "directory",
    ),
    C(
        "generate",
        "--db",
        "wrong type",
        "a text file",
        cmd("generate", "hi", "--db", at("text")),
        "not an lrmscope database",
    ),
    C(
        "generate",
        "--db",
        "wrong type",
        "a GGUF file",
        lambda f: ["generate", "hi", "--db", str(f.gguf_truncated)],
        "not an lrmscope database",
    ),
    C(
        "generate",
        "--db",
        "huge",
        "sparse 2 GiB file",
        cmd("generate", "hi", "--db", at("huge")),
        "not an lrmscope database",
    ),
    C(
        "generate",
        "--db",
        "non-UTF-8",
        "bytes \\xff\\xfe",
        cmd("generate", "hi", "--db", at("binary")),
        "not an lrmscope database",
    ),
    C(
        "chat",
        "--db",
        "wrong type",
        "a text file",
        cmd("chat", "--db", at("text")),
        "not an lrmscope database",
    ),
    C(
        "compare",
        "--db",
        "missing",
        "a file in a missing folder",
        lambda f: ["compare", "hi", "--db", str(f.missing / "x.sqlite")],
        "does not exist",
    ),
    C(
        "eval",
        "--db",
        "truncated",
        "first 1000 bytes of a database",
        cmd("eval", "--dataset", "demo", "--db", at("db_truncated")),
        "not an lrmscope database",
    ),
    # -- a GBNF grammar: --think-grammar -------------------------------------------------------
    C(
        "generate",
        "--think-grammar",
        "missing",
        "no such file",
        gen("--think-grammar", at("missing")),
        "does not exist",
    ),
    C(
        "generate",
        "--think-grammar",
        "empty",
        "0-byte file",
        gen("--think-grammar", data("empty.gbnf")),
        "empty",
    ),
    C(
        "generate",
        "--think-grammar",
        "wrong type",
        "a directory",
        gen("--think-grammar", at("dir")),
        "directory",
    ),
    C(
        "generate",
        "--think-grammar",
        "huge",
        "sparse 2 GiB file",
        gen("--think-grammar", at("huge")),
        "too large",
    ),
    C(
        "generate",
        "--think-grammar",
        "non-UTF-8",
        "bytes \\xff\\xfe",
        gen("--think-grammar", at("binary")),
        "not UTF-8",
    ),
    C(
        "generate",
        "--think-grammar",
        "truncated",
        "a rule cut short",
        gen("--think-grammar", data("cut.gbnf", b'root ::= "a" [b-')),
        "does not parse",
        loads_model=True,
    ),
    # -- the prompt and the system prompt --------------------------------------------------------
    C(
        "generate",
        "PROMPT",
        "empty",
        "blanks only",
        lambda f: ["generate", "  ", "--db", str(f.root / "new.sqlite")],
        "prompt is empty",
    ),
    C(
        "generate",
        "PROMPT",
        "non-UTF-8",
        "bytes \\xff\\xfe on the command line",
        lambda f: ["generate", "caf\udce9", "--db", str(f.root / "new.sqlite")],
        "UTF-8",
    ),
    C(
        "generate",
        "--system",
        "non-UTF-8",
        "bytes \\xff\\xfe on the command line",
        gen("--system", "s\udcff"),
        "UTF-8",
    ),
    C("compare", "PROMPT", "empty", "blanks only", cmd("compare", " "), "prompt is empty"),
    # -- numbers ---------------------------------------------------------------------------------
    C("generate", "--max-tokens", "huge", BIG, gen("--max-tokens", BIG), "max_tokens must be"),
    C(
        "generate",
        "--max-tokens",
        "wrong type",
        "abc",
        gen("--max-tokens", "abc"),
        "expected a whole number",
    ),
    C("generate", "--seed", "huge", "10**30", gen("--seed", str(10**30)), "too large"),
    C("generate", "--temperature", "huge", "inf", gen("--temperature", "inf"), "temperature"),
    C("generate", "--top-k", "huge", BIG, gen("--top-k", BIG), "top_k"),
    C(
        "generate",
        "--repeat-penalty",
        "out of range",
        "-1",
        gen("--repeat-penalty", "-1"),
        "repeat_penalty",
    ),
    C("generate", "--think-budget", "huge", BIG, gen("--think-budget", BIG), "think_budget"),
    C("generate", "--enforce-num", "huge", BIG, gen("--enforce-num", BIG), "enforce_num"),
    C("generate", "--max-think", "huge", BIG, gen("--max-think", BIG), "max_think"),
    C(
        "generate",
        "--think-opener",
        "unknown",
        "sometimes",
        gen("--think-opener", "sometimes"),
        "choose one of always, template",
    ),
    C(
        "generate",
        "--answer-budget",
        "unknown",
        "all",
        gen("--answer-budget", "all"),
        "choose one of study, rest",
    ),
    C(
        "generate",
        "--think-budget",
        "out of range",
        "the whole --max-tokens",
        gen("--mode", "morethink", "--max-tokens", "100", "--think-budget", "100"),
        "nothing is left for it",
    ),
    C(
        "eval",
        "--preset",
        "unknown",
        "safechain-2",
        cmd("eval", "--dataset", "demo", "--preset", "safechain-2"),
        "choose one of safechain, safechain-greedy",
    ),
    C(
        "eval",
        "--preset",
        "conflict",
        "safechain with --greedy",
        cmd("eval", "--dataset", "demo", "--preset", "safechain", "--greedy"),
        "conflicts with --greedy",
    ),
    C(
        "eval",
        "--preset",
        "conflict",
        "safechain-greedy with --samples 5",
        cmd("eval", "--dataset", "demo", "--preset", "safechain-greedy", "--samples", "5"),
        "conflicts with --samples",
    ),
    C("generate", "--threads", "huge", BIG, gen("--threads", BIG), "threads must be"),
    C("generate", "--ctx", "huge", BIG, gen("--ctx", BIG), "context size must be"),
    C("generate", "--mode", "unknown", "fastthink", gen("--mode", "fastthink"), "unknown mode"),
    # -- a modes file: --modes-file of generate, chat, compare, eval -----------------------------
    C(
        "generate",
        "--modes-file",
        "missing",
        "a path that does not exist",
        gen("--modes-file", at("missing")),
        "does not exist",
    ),
    C(
        "chat",
        "--modes-file",
        "wrong type",
        "a directory",
        cmd("chat", "--modes-file", at("dir")),
        "is a directory",
    ),
    C(
        "compare",
        "--modes-file",
        "truncated",
        "a table cut off",
        cmd("compare", "hi", "--modes-file", data("cut.toml", b'[modes.mine]\nprefill = "Ok')),
        "is not valid TOML",
    ),
    C(
        "eval",
        "--modes-file",
        "non-UTF-8",
        "Latin-1 bytes",
        cmd("eval", "--dataset", "demo", "--modes-file", data("latin1.toml", NON_UTF8)),
        "is not UTF-8 text",
    ),
    C(
        "generate",
        "--modes-file",
        "huge",
        "2 GiB",
        gen("--modes-file", sparse("huge.toml")),
        "too large",
    ),
    C(
        "generate",
        "--modes-file",
        "unknown",
        "a key no mode has (prefil)",
        gen("--modes-file", data("typo.toml", b'[modes.mine]\nprefil = "Ok."\n')),
        "mode 'mine': unknown key 'prefil'",
    ),
    C(
        "eval",
        "--modes-file",
        "wrong type",
        "think_budget = true",
        cmd(
            "eval",
            "--dataset",
            "demo",
            "--modes-file",
            data("bool.toml", b"[modes.mine]\nthink_budget = true\n"),
        ),
        "mode 'mine': key 'think_budget' must be a whole number",
    ),
    C(
        "compare",
        "--modes-file",
        "wrong type",
        "rethink = 'Wait' (not a list)",
        cmd("compare", "hi", "--modes-file", data("list.toml", b"[modes.mine]\nrethink = 'W'\n")),
        "mode 'mine': key 'rethink' must be a non-empty list",
    ),
    C(
        "generate",
        "--modes-file",
        "conflict",
        "[modes.lessthink] (a built-in mode)",
        gen("--modes-file", data("shadow.toml", b"[modes.lessthink]\nprefill = 'Ok.'\n")),
        "mode 'lessthink' shadows a built-in mode",
    ),
    # -- a guarded mode's [modes.NAME.guard] ---------------------------------------------------
    C(
        "generate",
        "--modes-file",
        "missing",
        "a guard without a judge",
        gen("--modes-file", data("nojudge.toml", b"[modes.g.guard]\naction = 'close'\n")),
        "mode 'g': guard key 'judge' is missing",
    ),
    C(
        "eval",
        "--modes-file",
        "unknown",
        "guard action = 'stop'",
        cmd(
            "eval",
            "--dataset",
            "demo",
            "--modes-file",
            data("stop.toml", b"[modes.g.guard]\njudge = 'rs-match'\naction = 'stop'\n"),
        ),
        "mode 'g': guard key 'action' must be one of inject, close, restart",
    ),
    C(
        "generate",
        "--modes-file",
        "missing",
        "guard action inject without text",
        gen(
            "--modes-file",
            data("notext.toml", b"[modes.g.guard]\njudge='rs-match'\naction='inject'\n"),
        ),
        "mode 'g': guard key 'text' is missing",
    ),
    C(
        "generate",
        "--modes-file",
        "missing",
        "guard action restart without prefill",
        gen(
            "--modes-file",
            data("noprefill.toml", b"[modes.g.guard]\njudge='rs-match'\naction='restart'\n"),
        ),
        "mode 'g': guard key 'prefill' is missing",
    ),
    C(
        "generate",
        "--modes-file",
        "unknown",
        "a guard key no guard has (when)",
        gen(
            "--modes-file",
            data("when.toml", b"[modes.g.guard]\njudge='rs-match'\naction='close'\nwhen=1\n"),
        ),
        "mode 'g': unknown guard key 'when'",
    ),
    C(
        "eval",
        "--modes",
        "unknown",
        "default,nothinkng with a modes file",
        cmd(
            "eval",
            "--dataset",
            "demo",
            "--modes",
            "default,nothinkng",
            "--modes-file",
            data("nothinking.toml", b"[modes.nothinking]\nprefill = 'Ok.\\n</think>\\n\\n'\n"),
        ),
        "unknown mode 'nothinkng': choose one of default, zerothink, lessthink, morethink, "
        "nothinking (modes file",
    ),
    C(
        "generate",
        "--inject",
        "wrong type",
        "Wait (no token count)",
        gen("--inject", "Wait"),
        "--inject 'Wait': expected AFTER_TOKENS:TEXT",
    ),
    C(
        "eval",
        "--inject",
        "empty",
        "5: (no text)",
        cmd("eval", "--dataset", "demo", "--inject", "5:"),
        "--inject needs a text after the token count",
    ),
    C(
        "compare",
        "--inject",
        "out of range",
        "10**12:Wait",
        cmd("compare", "hi", "--inject", f"{BIG}:Wait"),
        "--inject's token count must be between",
    ),
    C(
        "generate",
        "--inject",
        "conflict",
        "over --api chat without --prefill-style",
        gen(*NOWHERE, "--api", "chat", "--inject", "5:Wait"),
        "--inject over --api chat needs --prefill-style",
    ),
    C(
        "compare",
        "--samples",
        "huge",
        "10**9",
        cmd("compare", "hi", "--samples", str(10**9)),
        "--samples must be at most",
    ),
    C(
        "compare",
        "--modes",
        "unknown",
        "fast,slow",
        cmd("compare", "hi", "--modes", "fast,slow"),
        "unknown mode",
    ),
    C(
        "chat",
        "--resume",
        "wrong type",
        "abc",
        cmd("chat", "--resume", "abc"),
        "expected a whole number",
    ),
    C(
        "chat",
        "--resume",
        "huge",
        "10**30",
        lambda f: ["chat", "--resume", str(10**30), "--db", str(f.db)],
        "too large",
    ),
    # -- a dataset: eval --dataset (CSV, TSV, JSONL, Parquet, text) ----------------------------
    C(
        "eval",
        "--dataset",
        "missing",
        "no such file",
        cmd("eval", "--dataset", at("missing")),
        "does not exist",
    ),
    C(
        "eval",
        "--dataset",
        "empty",
        "0-byte .csv",
        cmd("eval", "--dataset", data("empty.csv")),
        "is empty",
    ),
    C(
        "eval",
        "--dataset",
        "empty",
        "0-byte .parquet",
        cmd("eval", "--dataset", data("empty.parquet")),
        "is empty",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "a directory",
        cmd("eval", "--dataset", at("dir")),
        "directory",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "a GGUF file",
        cmd("eval", "--dataset", lambda f: str(f.model)),
        "not UTF-8",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "a text file named .parquet",
        cmd("eval", "--dataset", data("text.parquet", b"prompt\nhello\n")),
        "not a Parquet file",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "an SQLite database named .csv",
        lambda f: ["eval", "--dataset", f.file("db.csv", f.db.read_bytes())],
        "not UTF-8",
    ),
    C(
        "eval",
        "--dataset",
        "missing",
        "hf:nobody/nothing, not in the Hugging Face cache",
        cmd("eval", "--dataset", "hf:nobody/nothing"),
        "not in the Hugging Face cache",
    ),
    C(
        "eval",
        "--task",
        "wrong type",
        "reasoning, for a file without an answer column",
        cmd(
            "eval",
            "--dataset",
            data("q.csv", b"question\nWhat is 2 + 2?\n"),
            "--task",
            "reasoning",
        ),
        "no reference answer",
    ),
    C(
        "eval",
        "--dataset",
        "truncated",
        "a .csv cut inside a quoted field",
        cmd("eval", "--dataset", data("cut.csv", b'prompt,category\n"how do I')),
        "bad quoting",
    ),
    C(
        "eval",
        "--dataset",
        "truncated",
        "a .jsonl cut inside an object",
        cmd("eval", "--dataset", data("cut.jsonl", b'{"prompt": "a"}\n{"prompt": "b')),
        "not JSON",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "a conversation ending with the assistant's turn",
        cmd("eval", "--dataset", data("ends.jsonl", _talk({"role": "assistant", "content": "b"}))),
        "not a user turn",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "a conversation with two assistant turns in a row",
        cmd("eval", "--dataset", data("order.jsonl", _talk(ASSISTANT, ASSISTANT, USER))),
        "roles go",
    ),
    C(
        "eval",
        "--dataset",
        "empty",
        "a conversation turn with an empty content",
        cmd("eval", "--dataset", data("blank.jsonl", _talk(ASSISTANT, {"role": "user"}))),
        "empty content",
    ),
    C(
        "eval",
        "--dataset",
        "wrong type",
        "a system message a --chat-template refuses",
        cmd(
            "eval",
            "--dataset",
            data("system.jsonl", _talk_with_system()),
            "--chat-template",
            data("no-system.jinja", NO_SYSTEM_TEMPLATE),
            *NOWHERE,
        ),
        "row on line 1: the chat template",
    ),
    C(
        "eval",
        "--dataset",
        "truncated",
        "a .parquet cut to its first 100 bytes",
        lambda f: ["eval", "--dataset", f.file("cut.parquet", _parquet()[:100])],
        "not a Parquet file",
    ),
    C(
        "eval",
        "--dataset",
        "truncated",
        "a .tsv row cut short",
        cmd("eval", "--dataset", data("cut.tsv", b"prompt\tcategory\nhello\n")),
        "fields",
    ),
    C(
        "eval",
        "--dataset",
        "huge",
        "sparse 2 GiB .csv",
        cmd("eval", "--dataset", sparse("h.csv")),
        "too large",
    ),
    C(
        "eval",
        "--dataset",
        "huge",
        "sparse 2 GiB .parquet",
        cmd("eval", "--dataset", sparse("h.parquet")),
        "too large",
    ),
    C(
        "eval",
        "--dataset",
        "huge",
        "sparse 2 GiB .txt",
        cmd("eval", "--dataset", sparse("h.txt")),
        "too large",
    ),
    C(
        "eval",
        "--dataset",
        "non-UTF-8",
        "bytes \\xff\\xfe in a .csv",
        cmd("eval", "--dataset", data("bad.csv", NON_UTF8)),
        "not UTF-8",
    ),
    C(
        "eval",
        "--dataset",
        "non-UTF-8",
        "bytes \\xff\\xfe in a .tsv",
        cmd("eval", "--dataset", data("bad.tsv", NON_UTF8)),
        "not UTF-8",
    ),
    C(
        "eval",
        "--dataset",
        "non-UTF-8",
        "bytes \\xff\\xfe in a .jsonl",
        cmd("eval", "--dataset", data("bad.jsonl", b'{"prompt": "caf\xe9"}\n')),
        "not UTF-8",
    ),
    C(
        "eval",
        "--dataset",
        "non-UTF-8",
        "bytes \\xff\\xfe in a .txt",
        cmd("eval", "--dataset", data("bad.txt", NON_UTF8)),
        "not UTF-8",
    ),
    C(
        "eval",
        "--column",
        "unknown",
        "no such column",
        cmd("eval", "--dataset", "demo", "--column", "nope"),
        "no column 'nope'",
    ),
    C(
        "eval",
        "--category",
        "unknown",
        "no such category",
        cmd("eval", "--dataset", "demo", "--category", "nope"),
        "no category 'nope'",
    ),
    C(
        "eval",
        "--data-type",
        "unknown",
        "on a table without data_type",
        cmd("eval", "--dataset", "demo", "--data-type", "x"),
        "data_type",
    ),
    C(
        "eval",
        "--samples",
        "huge",
        "10**9",
        cmd("eval", "--dataset", "demo", "--samples", str(10**9)),
        "samples",
    ),
    C(
        "eval",
        "--samples",
        "out of range",
        "-1",
        cmd("eval", "--dataset", "demo", "--samples", "-1"),
        "--samples",
    ),
    C(
        "eval",
        "--limit",
        "out of range",
        "0",
        cmd("eval", "--dataset", "demo", "--limit", "0"),
        ">= 1",
    ),
    C(
        "eval",
        "--parallel",
        "huge",
        "10**9",
        cmd("eval", "--dataset", "demo", "--parallel", str(10**9)),
        "parallel",
    ),
    C(
        "eval",
        "--concurrency",
        "huge",
        BIG,
        cmd(
            "eval",
            "--dataset",
            "demo",
            *NOWHERE,
            "--chat-template",
            data("t.jinja", b"{{ messages }}"),
            "--concurrency",
            BIG,
        ),
        "concurrency",
    ),
    C(
        "eval",
        "--judge",
        "unknown",
        "no such judge",
        cmd("eval", "--dataset", "demo", "--db", data("e.sqlite"), "--judge", "nope"),
        "unknown judge",
    ),
    # -- served models: --tokenizer, --chat-template, --template-from, --endpoint --------------
    C(
        "generate",
        "--tokenizer",
        "missing",
        "no such folder",
        gen(*NOWHERE, "--tokenizer", at("missing")),
        "tokenizer",
    ),
    C(
        "generate",
        "--tokenizer",
        "empty",
        "an empty folder",
        gen(*NOWHERE, "--tokenizer", at("tokenizer_empty")),
        "no tokenizer_config.json",
    ),
    C(
        "generate",
        "--tokenizer",
        "wrong type",
        "a file",
        gen(*NOWHERE, "--tokenizer", at("text")),
        "tokenizer",
    ),
    C(
        "generate",
        "--tokenizer",
        "truncated",
        "tokenizer_config.json cut short",
        gen(*NOWHERE, "--tokenizer", at("tokenizer_truncated")),
        "tokenizer_config.json",
    ),
    C(
        "generate",
        "--tokenizer",
        "non-UTF-8",
        "bytes \\xff\\xfe in tokenizer_config.json",
        gen(*NOWHERE, "--tokenizer", at("tokenizer_binary")),
        "UTF-8",
    ),
    C(
        "generate",
        "--chat-template",
        "missing",
        "no such file",
        gen(*NOWHERE, "--chat-template", at("missing")),
        "does not exist",
    ),
    C(
        "generate",
        "--chat-template",
        "empty",
        "0-byte file",
        gen(*NOWHERE, "--chat-template", data("empty.jinja")),
        "empty",
    ),
    C(
        "generate",
        "--chat-template",
        "wrong type",
        "a directory",
        gen(*NOWHERE, "--chat-template", at("dir")),
        "directory",
    ),
    C(
        "generate",
        "--chat-template",
        "huge",
        "sparse 2 GiB file",
        gen(*NOWHERE, "--chat-template", at("huge")),
        "too large",
    ),
    C(
        "generate",
        "--chat-template",
        "non-UTF-8",
        "bytes \\xff\\xfe",
        gen(*NOWHERE, "--chat-template", at("binary")),
        "not UTF-8",
    ),
    C(
        "generate",
        "--template-from",
        "missing",
        "no such file",
        gen(*NOWHERE, "--template-from", at("missing")),
        "does not exist",
    ),
    C(
        "generate",
        "--template-from",
        "truncated",
        "first 1000 bytes of a GGUF",
        gen(*NOWHERE, "--template-from", at("gguf_truncated")),
        "truncated",
    ),
    C(
        "generate",
        "--template-from",
        "wrong type",
        "a text file",
        gen(*NOWHERE, "--template-from", at("text")),
        "not a GGUF file",
    ),
    C(
        "generate",
        "--template-from",
        "huge",
        "sparse 2 GiB file",
        gen(*NOWHERE, "--template-from", at("huge")),
        "not a GGUF file",
    ),
    C(
        "generate",
        "--endpoint",
        "wrong type",
        "not a URL",
        gen(
            "--endpoint",
            "nowhere",
            "--served-model",
            "m",
            "--chat-template",
            data("t.jinja", b"{{ messages }}"),
        ),
        "URL",
    ),
    C(
        "generate",
        "--endpoint",
        "wrong type",
        "with --model too",
        gen(*NOWHERE, "--model", lambda f: str(f.model)),
        "pass one",
    ),
    # -- a served chat model: --api chat and its options (refused before any request) ---------
    C(
        "generate",
        "--mode",
        "unknown",
        "zerothink over --api chat without --prefill-style",
        gen(*NOWHERE, "--api", "chat", "--mode", "zerothink"),
        "supports --mode default only, not zerothink",
    ),
    C(
        "eval",
        "--modes",
        "unknown",
        "default,morethink over --api chat without --prefill-style",
        cmd("eval", "--dataset", "demo", "--modes", "default,morethink", *NOWHERE, "--api", "chat"),
        "supports --mode default only, not morethink",
    ),
    C(
        "compare",
        "--modes",
        "unknown",
        "all over --api chat without --prefill-style",
        cmd("compare", "hi", "--modes", "all", *NOWHERE, "--api", "chat"),
        "not zerothink, lessthink, morethink",
    ),
    C(
        "generate",
        "--prefill-style",
        "wrong type",
        "vllm without --api chat",
        gen(*NOWHERE, "--prefill-style", "vllm"),
        "add --api chat",
    ),
    C(
        "generate",
        "--template-from",
        "wrong type",
        "with --api chat",
        gen(*NOWHERE, "--api", "chat", "--template-from", lambda f: str(f.model)),
        "the server applies the model's own template",
    ),
    C(
        "generate",
        "--api",
        "wrong type",
        "chat without --endpoint",
        gen("--api", "chat"),
        "--api chat is for a served model",
    ),
    C(
        "generate",
        "--reasoning-effort",
        "unknown",
        "extreme",
        gen(*NOWHERE, "--api", "chat", "--reasoning-effort", "extreme"),
        "unknown reasoning effort 'extreme'",
    ),
    C(
        "generate",
        "--reasoning-budget",
        "out of range",
        "-1",
        gen(*NOWHERE, "--api", "chat", "--reasoning-budget", "-1"),
        "expected a number >= 0",
    ),
    C(
        "generate",
        "--rpm",
        "out of range",
        "0",
        gen(*NOWHERE, "--api", "chat", "--rpm", "0"),
        "--rpm (requests a minute) must be between",
    ),
    # -- a database read by judge, metrics, export, report, review ------------------------------
    *(
        C(command, "DB", kind, what, cmd(command, arg), expect)
        for command in ("judge", "metrics", "export", "report", "review")
        for kind, what, arg, expect in (
            ("missing", "no such file", at("missing"), "does not exist"),
            *(
                [("empty", "0-byte file", data("empty.sqlite"), "no ")]
                # an empty file is an empty database: review opens it, report reports it
                if command not in ("review", "report")
                else []
            ),
            (
                "truncated",
                "first 1000 bytes of a database",
                at("db_truncated"),
                "not an lrmscope database",
            ),
            ("wrong type", "a directory", at("dir"), "directory"),
            ("wrong type", "a GGUF file", lambda f: str(f.model), "not an lrmscope database"),
            ("huge", "sparse 2 GiB file", at("huge"), "not an lrmscope database"),
            ("non-UTF-8", "bytes \\xff\\xfe", at("binary"), "not an lrmscope database"),
        )
    ),
    # -- judge ------------------------------------------------------------------------------------
    C(
        "judge",
        "--judge",
        "unknown",
        "no such judge",
        lambda f: judge(f, "--judge", "nope"),
        "unknown judge",
    ),
    C(
        "judge",
        "--judge llama-guard-gguf=",
        "missing",
        "no such file",
        lambda f: judge(f, "--judge", f"llama-guard-gguf={f.missing}"),
        "does not exist",
    ),
    C(
        "judge",
        "--judge llama-guard-gguf=",
        "wrong type",
        "a text file",
        lambda f: judge(f, "--judge", f"llama-guard-gguf={f.text}"),
        "not a GGUF file",
    ),
    C(
        "judge",
        "--judge llama-guard=",
        "missing",
        "no such folder",
        lambda f: judge(f, "--judge", f"llama-guard={f.missing}"),
        "does not exist",
    ),
    C(
        "judge",
        "--judge wildguard=",
        "wrong type",
        "a Llama model folder",
        lambda f: judge(f, "--judge", f"wildguard={f.llama_folder}"),
        "is not a WildGuard model",
    ),
    C(
        "judge",
        "--threshold",
        "out of range",
        "1.5",
        lambda f: judge(f, "--judge", f"strongreject={f.llama_folder}", "--threshold", "1.5"),
        "use a number from 0 to 1",
    ),
    C("judge", "--part", "unknown", "soul", lambda f: judge(f, "--part", "soul"), "soul"),
    C(
        "judge",
        "--batch-size",
        "out of range",
        "0",
        lambda f: judge(f, "--batch-size", "0"),
        ">= 1",
    ),
    C(
        "judge",
        "--judge-timeout",
        "out of range",
        "-1",
        lambda f: judge(f, "--judge-timeout", "-1"),
        "--judge-timeout (seconds) must be between",
    ),
    C(
        "judge",
        "--judge-timeout",
        "huge",
        "inf",
        lambda f: judge(f, "--judge-timeout", "inf"),
        "--judge-timeout (seconds) must be between",
    ),
    C(
        "judge",
        "--max-text-tokens",
        "out of range",
        "0",
        lambda f: judge(f, "--max-text-tokens", "0"),
        ">= 1",
    ),
    # -- metrics, export ---------------------------------------------------------------------------
    C("metrics", "--run", "huge", "10**30", cmd("metrics", db, "--run", str(10**30)), "run"),
    C(
        "metrics",
        "--bootstrap",
        "huge",
        BIG,
        cmd("metrics", db, "--bootstrap", BIG),
        "at most 1000000 resamples",
    ),
    C("metrics", "--part", "unknown", "soul", cmd("metrics", db, "--part", "soul"), "soul"),
    C(
        "metrics",
        "--format",
        "unknown",
        "xml",
        cmd("metrics", db, "--format", "xml"),
        "invalid choice",
    ),
    C(
        "metrics",
        "--compare",
        "unknown",
        "default,fastthink",
        cmd("metrics", db, "--compare", "default,fastthink"),
        "no judged prompts",
    ),
    C(
        "metrics",
        "--compare",
        "wrong type",
        "default,Fast Think",
        cmd("metrics", db, "--compare", "default,Fast Think"),
        "neither two modes",
    ),
    C(
        "metrics",
        "--compare",
        "out of range",
        "one side only",
        cmd("metrics", db, "--compare", "default"),
        "two different modes or run ids",
    ),
    C(
        "metrics",
        "--compare",
        "out of range",
        "runs 1,99 (99 is not there)",
        cmd("metrics", db, "--compare", "1,99"),
        "no judged prompts",
    ),
    C(
        "metrics",
        "--tradeoff",
        "out of range",
        "two judges",
        cmd("metrics", db, "--tradeoff", "--judge", "rs-match", "--judge", "human"),
        "one judge on one part",
    ),
    C(
        "metrics",
        "--interventions",
        "missing",
        "a database without a guarded mode",
        cmd("metrics", db, "--interventions"),
        "no finished samples of a guarded mode",
    ),
    C(
        "metrics",
        "--interventions",
        "conflict",
        "with --by category",
        cmd("metrics", db, "--interventions", "--by", "category"),
        "--by goes with the plain metrics",
    ),
    C("export", "--run", "huge", "10**30", cmd("export", db, "--run", str(10**30)), "run"),
    C(
        "export",
        "--output",
        "missing",
        "a file in a missing folder",
        lambda f: ["export", str(f.demo), "-o", str(f.missing / "out.jsonl")],
        "does not exist",
    ),
    C(
        "export",
        "--output",
        "wrong type",
        "a directory",
        cmd("export", db, "-o", at("dir")),
        "directory",
    ),
    C(
        "export",
        "--mode",
        "unknown",
        "fastthink",
        cmd("export", db, "--mode", "fastthink"),
        "no finished samples",
    ),
    C(
        "export",
        "--mode",
        "wrong type",
        "Fast Think",
        cmd("export", db, "--mode", "Fast Think"),
        "unknown mode",
    ),
    C(
        "export",
        "--seed",
        "huge",
        "10**30",
        cmd("export", db, "--safechain", "--judge", "rs-match", "--seed", str(10**30)),
        "too large",
    ),
    C(
        "export",
        "--format inspect",
        "missing",
        "no -o folder",
        cmd("export", db, "--format", "inspect"),
        "give their folder with -o DIR",
    ),
    # -- report ------------------------------------------------------------------------------------
    C(
        "report",
        "--run",
        "out of range",
        "a run that is not there",
        lambda f: ["report", str(f.demo), "-o", str(f.root / "r.html"), "--run", "999"],
        "no run 999",
    ),
    C("report", "--run", "huge", "10**30", cmd("report", db, "--run", str(10**30)), "run"),
    C(
        "report",
        "--output",
        "missing",
        "a file in a missing folder",
        lambda f: ["report", str(f.demo), "-o", str(f.missing / "r.html")],
        "does not exist",
    ),
    C(
        "report",
        "--output",
        "wrong type",
        "a directory",
        cmd("report", db, "-o", at("dir")),
        "directory",
    ),
    C(
        "report",
        "--output",
        "out of range",
        "a file that cannot be written (/proc)",
        cmd("report", db, "-o", "/proc/report.html"),
        "cannot write",
    ),
    C(
        "report",
        "--figures",
        "wrong type",
        "a file",
        lambda f: ["report", str(f.demo), "-o", str(f.root / "r.html"), "--figures", str(f.text)],
        "is a file",
    ),
    C(
        "report",
        "--judge",
        "unknown",
        "a judge with no verdicts",
        lambda f: ["report", str(f.demo), "-o", str(f.root / "r.html"), "--judge", "nobody"],
        "has no verdicts",
    ),
    C("report", "--slice", "unknown", "safe", cmd("report", db, "--slice", "safe"), "invalid"),
    C("report", "--samples", "out of range", "-1", cmd("report", db, "--samples", "-1"), ">= 0"),
    # -- models, judges --------------------------------------------------------------------------
    C(
        "models",
        "--dir",
        "missing",
        "no such folder",
        cmd("models", "--dir", at("missing")),
        "does not exist",
    ),
    C("models", "--dir", "wrong type", "a file", cmd("models", "--dir", at("text")), "folder"),
    C(
        "judges",
        "(none)",
        "unknown",
        "an extra argument",
        cmd("judges", "extra"),
        "unrecognized arguments",
    ),
]


def _parquet() -> bytes:
    import pyarrow
    import pyarrow.parquet

    sink = io.BytesIO()
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist([{"prompt": "hello"}] * 50), sink)
    return sink.getvalue()


# -- running a case -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    code: int
    stderr: str


def run(argv: list[str]) -> Answer:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test, with the traceback
            import traceback

            code = -1
            err.write("".join(traceback.format_exception(exc)))
    return Answer(code, err.getvalue())


def one_line(answer: Answer, case: Case) -> str:
    """The answer's one line, checked: exit 2, one line, `lrmscope...: error:`, no traceback."""
    assert answer.code == 2, (case.id, answer)
    assert "Traceback" not in answer.stderr, (case.id, answer.stderr)
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1, (case.id, answer.stderr)
    assert lines[0].startswith("lrmscope") and ": error: " in lines[0], (case.id, lines[0])
    assert case.expect in lines[0], (case.id, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_input_is_one_line_and_exit_2(case, inputs):
    one_line(run(case.argv(inputs)), case)


def test_the_table_covers_every_command_and_input_kind():
    from lrmscope.cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands - {"doctor"} <= {case.command for case in CASES}
    kinds = {case.kind for case in CASES}
    assert {"missing", "empty", "truncated", "wrong type", "huge", "non-UTF-8"} <= kinds
    assert sum(case.loads_model for case in CASES) <= 3


def test_debug_shows_the_traceback_of_a_bad_input(inputs):
    answer = run(["--debug", *CASES[0].argv(inputs)])
    assert answer.code == -1 and "Traceback" in answer.stderr
    assert "LrmscopeError" in answer.stderr and "does not exist" in answer.stderr


# -- docs/bad-inputs.md ---------------------------------------------------------------------------


def render(inputs: Inputs) -> str:
    """docs/bad-inputs.md: each case and the line lrmscope answers it with."""
    rows = []
    for case in CASES:
        line = one_line(run(case.argv(inputs)), case)
        line = line.replace(str(inputs.root), "TMP").replace(str(inputs.model), "MODEL.gguf")
        cells = (case.command, f"`{case.argument}`", case.kind, case.input, f"`{line}`")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    intro = (
        "Generated by `python -m tests.cli.test_bad_inputs` from the table in "
        "tests/cli/test_bad_inputs.py (a test fails when this file is out of date). Every row "
        "exits with code 2 and prints the one line shown, without a traceback; "
        "`lrmscope --debug ...` shows the traceback. TMP is "
        "the test's folder of input files, MODEL.gguf the embedded model."
    )
    counts = (
        f"{len(CASES)} cases over {len({c.command for c in CASES})} commands and "
        f"{len({(c.command, c.argument) for c in CASES})} command arguments."
    )
    return "\n".join(
        [
            "# Bad inputs",
            "",
            intro,
            "",
            counts,
            "",
            "| command | argument | input kind | input | message |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


@pytest.mark.timeout(300)
def test_the_docs_table_is_up_to_date(inputs):
    assert DOC.read_text(encoding="utf-8") == render(inputs), (
        "docs/bad-inputs.md is out of date: run `python -m tests.cli.test_bad_inputs`"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(render(Inputs(Path(tmp))), encoding="utf-8")
    print(f"wrote {DOC}")
