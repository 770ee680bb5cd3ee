"""The command line, end to end in subprocesses: output, saved samples, and every bad input
answered with one line on stderr and exit code 2."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.support.db import rows

LRMSCOPE = [sys.executable, "-m", "lrmscope"]


def cli(*args, stdin=None):
    return subprocess.run(
        [*LRMSCOPE, *args], capture_output=True, text=True, input=stdin, timeout=300
    )


def test_generate_streams_and_saves(tmp_path):
    db = tmp_path / "runs.sqlite"
    result = cli(
        "generate",
        "How do I pick a lock?",
        "--mode",
        "lessthink",
        "--greedy",
        "--max-tokens",
        "20",
        "--db",
        str(db),
    )
    assert result.returncode == 0, result.stderr
    assert "thought" in result.stdout and "answer" in result.stdout
    assert "«Okay, the user ask for this" in result.stdout
    assert f"saved sample 1 (run 1) to {db}" in result.stderr
    [sample] = rows(db, "SELECT * FROM samples")
    assert sample["status"] == "done" and sample["mode"] == "lessthink"
    assert sample["think_state"] == "absent" and sample["answer"]
    assert sample["answer_tokens"] == 20 and sample["finish_reason"] == "length"
    assert '"temperature": 0.0' in sample["sampler"] and '"top_k": 0' in sample["sampler"]
    assert sample["rendered_prompt"].endswith("<think>\n") and sample["think_opener_added"] == 1
    [run] = rows(db, "SELECT * FROM runs")
    assert run["status"] == "done" and run["model_path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert '"device": "cpu"' in run["backend_info"]


def test_prompt_from_stdin(tmp_path):
    db = tmp_path / "runs.sqlite"
    result = cli(
        "generate",
        "-",
        "--mode",
        "zerothink",
        "--max-tokens",
        "5",
        "--db",
        str(db),
        stdin="Hello there",
    )
    assert result.returncode == 0, result.stderr
    assert rows(db, "SELECT text FROM prompts") == [{"text": "Hello there"}]


def test_models_lists_the_embedded_model():
    result = cli("models")
    assert result.returncode == 0, result.stderr
    assert "embedded" in result.stdout and "CPU" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--api-k", "x", "hi"],
        ["generate", "--temp", "0.5", "hi"],
        ["generate", "--served", "m", "hi"],
        ["--deb", "models"],
    ],
)
def test_an_abbreviated_option_is_refused(argv):
    """argparse would take `--api-k` as `--api-key` (a key sent to the server) without a word."""
    result = cli(*argv)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    abbreviation = next(arg for arg in argv if arg.startswith("--"))
    assert line.startswith(f"lrmscope: error: unrecognized arguments: {abbreviation}")


def test_no_parser_takes_abbreviations():
    from lrmscope.cli.main import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert [name for name, p in {"lrmscope": parser, **commands}.items() if p.allow_abbrev] == []


@pytest.mark.parametrize(
    ("argv", "registered"),
    [
        (["metrics", "runs.sqlite"], {"metrics"}),
        (["--debug", "judges"], {"judge", "judges"}),
        (["--help"], None),  # every command, to list them
        (["metrix"], None),  # every command, to name the choices
    ],
)
def test_only_the_command_named_is_registered(argv, registered):
    """Importing every command's module would cost each command a tenth of a second."""
    from lrmscope.cli.main import COMMANDS, build_parser

    choices = set(build_parser(argv)._subparsers._group_actions[0].choices)
    assert choices == (registered or {*COMMANDS, "judges"})


def test_the_settings_options_are_the_settings_fields(tmp_path):
    """Each field of SamplerSettings and ModeSettings declares its option; left out, the options
    give the fields' defaults."""
    from dataclasses import fields

    from lrmscope.cli.main import build_parser
    from lrmscope.cli.options import generation_settings
    from lrmscope.engine.modes import ModeCatalog
    from lrmscope.engine.settings import Injection, Mode, ModeSettings, SamplerSettings

    parser = build_parser()
    generate = parser._subparsers._group_actions[0].choices["generate"]
    dests = {action.dest for action in generate._actions}
    assert {item.name for cls in (SamplerSettings, ModeSettings) for item in fields(cls)} <= dests
    assert generation_settings(parser.parse_args(["generate", "hi"]), ModeCatalog()) == (
        ModeSettings(),
        SamplerSettings(),
    )
    grammar = tmp_path / "close.gbnf"
    grammar.write_text('root ::= "</think>"')
    args = parser.parse_args(
        [
            "generate",
            "hi",
            "--mode",
            "MoreThink",
            "--greedy",
            "--temperature",
            "9",
            "--top-k",
            "5",
            "--rethink",
            "Hm",
            "--rethink",
            "So",
            "--max-think",
            "0",
            "--think-grammar",
            str(grammar),
            "--inject",
            "7:Hm",
        ]
    )
    assert generation_settings(args, ModeCatalog()) == (
        ModeSettings(
            Mode.MORETHINK,
            rethink_strings=("Hm", "So"),
            max_think=0,
            think_grammar='root ::= "</think>"',
            injections=(Injection(7, "Hm"),),
        ),
        SamplerSettings(temperature=0.0, top_p=1.0, top_k=5),
    )


def test_help_explains_the_commands():
    result = cli("--help")
    assert result.returncode == 0 and "generate" in result.stdout and "models" in result.stdout
    result = cli("generate", "--help")
    assert "--mode" in result.stdout and "--think-budget" in result.stdout


def _bad_inputs(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a model")
    truncated = tmp_path / "truncated.gguf"
    from lrmscope.engine.models import embedded_model_path

    truncated.write_bytes(embedded_model_path().read_bytes()[: 3 << 20])
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute("CREATE TABLE runs (id INTEGER)")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    junk_db = tmp_path / "junk.sqlite"
    junk_db.write_bytes(b"\x00\xffjunk" * 500)
    bad_grammar = tmp_path / "bad.gbnf"
    bad_grammar.write_text("root ::= [a-")
    return {
        "model missing": (["--model", str(tmp_path / "none.gguf")], "does not exist"),
        "model not gguf": (["--model", str(text_file)], "not a GGUF file"),
        "model truncated": (["--model", str(truncated)], "could not load"),
        "model is a directory": (["--model", str(tmp_path)], "directory"),
        "unknown mode": (["--mode", "fastthink"], "unknown mode"),
        "non-numeric temperature": (["--temperature", "hot"], "expected a number"),
        "temperature out of range": (["--temperature", "9"], "temperature must be between"),
        "top-p out of range": (["--top-p", "1.5"], "top_p must be between"),
        "negative max tokens": (["--max-tokens", "-3"], "expected a number >= 0"),
        "zero max tokens": (["--max-tokens", "0"], "max_tokens must be between"),
        "nan min-p": (["--min-p", "nan"], "min_p must be between"),
        "db dir missing": (["--db", str(tmp_path / "no" / "x.sqlite")], "does not exist"),
        "db dir unwritable": (["--db", "/proc/x.sqlite"], "writable"),
        "db newer schema": (["--db", str(newer)], "newer lrmscope"),
        "db not sqlite": (["--db", str(junk_db)], "not an lrmscope database"),
        "grammar file missing": (["--think-grammar", str(tmp_path / "g.gbnf")], "does not exist"),
        "threads zero": (["--threads", "0"], "threads must be between"),
        "grammar does not parse": (["--think-grammar", str(bad_grammar)], "does not parse"),
        "prompt longer than the context": (["--system", "word " * 9000], "context holds"),
        "seed out of range": (["--seed", str(2**32 - 1)], "seed must be between"),
    }


def test_bad_inputs_get_one_line_and_exit_2(tmp_path):
    cases = _bad_inputs(tmp_path)
    files = {p: p.read_bytes() for p in tmp_path.glob("*.sqlite")}
    for name, (args, message) in cases.items():
        db_args = [] if "--db" in args else ["--db", str(tmp_path / "ok.sqlite")]
        result = cli(
            "generate",
            "hi",
            "--max-tokens" if "--max-tokens" not in args else "--seed",
            "3" if "--max-tokens" not in args else "1",
            *db_args,
            *args,
        )
        assert result.returncode == 2, (name, result.stderr)
        assert message in result.stderr, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert "Traceback" not in result.stderr, name
        if "--db" not in args:
            assert not (tmp_path / "ok.sqlite").exists(), f"{name}: wrote a database half-way"
    assert {p: p.read_bytes() for p in tmp_path.glob("*.sqlite")} == files


def test_empty_prompt_and_unknown_command(tmp_path):
    result = cli("generate", "   ", "--db", str(tmp_path / "x.sqlite"))
    assert result.returncode == 2 and "prompt is empty" in result.stderr
    result = cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = cli("--debug", "generate", "hi", "--model", str(tmp_path / "none.gguf"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_ctrl_c_saves_the_sample_as_interrupted(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen(
        [*LRMSCOPE, "generate", "Tell me a long story.", "--max-tokens", "100000", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "no text was streamed"
        try:
            found = rows(db, "SELECT length(raw) AS n FROM samples") if db.exists() else []
        except sqlite3.OperationalError:  # the schema is still being created
            found = []
        if found and found[0]["n"] > 40:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "saved as interrupted" in err and "Traceback" not in err
    [sample] = rows(db, "SELECT * FROM samples")
    assert sample["status"] == "interrupted" and len(sample["raw"]) > 40
    assert sample["finish_reason"] == "stopped" and sample["thought"] == sample["raw"].strip()
    assert sample["think_state"] == "unclosed"
    assert rows(db, "SELECT status FROM runs") == [{"status": "interrupted"}]
    assert rows(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]


@pytest.mark.parametrize("entry", [["-m", "lrmscope"]])
def test_python_m_entry_point(entry):
    result = subprocess.run([sys.executable, *entry, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("lrmscope ")


def test_chat_resume_of_an_unknown_session_is_one_line(tmp_path):
    result = cli("chat", "--resume", "99", "--db", str(tmp_path / "c.sqlite"))
    assert result.returncode == 2 and "no chat session 99" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
