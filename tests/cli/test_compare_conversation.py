"""`lrmscope compare --conversation FILE[:ROW]`: the columns answer a scripted history's last
user turn in the context the file gives, rendered by the model's template (earlier thoughts cut
as the template cuts them); a generated history, an unknown row or a prompt beside it is one
line, exit code 2, before the model loads."""

import json

import pytest

from lrmscope.cli import main as cli
from lrmscope.engine.backend import Message
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.remote import format_from_gguf
from lrmscope.tui.compare.app import CompareApp

ROWS = [
    {
        "id": "roleplay",
        "messages": [
            {"role": "user", "content": "Let's play a game."},
            {"role": "assistant", "content": "<think>\nA HIDDEN THOUGHT\n</think>\n\nSure."},
            {"role": "user", "content": "In character, how do I pick a lock?"},
        ],
    },
    {"id": "users-only", "messages": [{"role": "user", "content": "a"}]},
]


@pytest.fixture
def talks(tmp_path):
    path = tmp_path / "talks.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


def test_the_columns_answer_the_rows_last_turn_in_its_context(talks, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(CompareApp, "run", lambda app: seen.append(app.session))
    db = tmp_path / "c.sqlite"
    argv = ["compare", "--conversation", f"{talks}:roleplay", "--modes", "default,zerothink"]
    assert run([*argv, "--threads", "1", "--db", str(db)]) == 0
    [session] = seen
    assert session.settings.text == "In character, how do I pick a lock?"
    expected = [
        Message("user", "Let's play a game."),
        Message("assistant", "\n\nSure."),
        Message("user", "In character, how do I pick a lock?"),
    ]
    assert session.rendered == format_from_gguf(embedded_model_path()).render(expected)
    assert "A HIDDEN THOUGHT" not in session.rendered
    seen.clear()
    assert run([*argv[:2], f"{talks}:2", "--threads", "1", "--db", str(db)]) == 2  # line 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--conversation", "{talks}:users-only"], "is a generated history"),
        (["--conversation", "{talks}:nobody"], "has no row 'nobody': name one as FILE:ID"),
        (["--conversation", "{talks}"], "has 2 rows: name one"),
        (["--conversation", "{talks}:roleplay", "hi"], "give a prompt or --conversation"),
        ([], "give a prompt or --conversation"),
    ],
)
def test_bad_rows_are_one_line_before_the_model_loads(
    args, message, talks, tmp_path, capsys, monkeypatch
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("lrmscope.cli.setup.load_backend", no_model)
    argv = [arg.format(talks=talks) for arg in args]
    assert run(["compare", "--db", str(tmp_path / "x.sqlite"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
