"""Conversation sets (core/datasets.py): JSONL rows of OpenAI-format messages, scripted or
generated histories, each generated turn a prompt of its own; bad rows named by file and line."""

import json

import pytest

from lrmscope.core.datasets import load_dataset
from lrmscope.errors import LrmscopeError


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def test_scripted_and_generated_histories(tmp_path):
    path = write(
        tmp_path / "talks.jsonl",
        [
            {
                "id": "s1",
                "category": "lock",
                "kind": "harmful",
                "messages": [user("a"), assistant("b"), user("c")],
            },
            {"messages": [{"role": "system", "content": "be nice"}, user("x"), user("y")]},
            {"messages": [user("a"), assistant("b"), user("c")], "id": "again"},  # a repeat
        ],
    )
    data = load_dataset(str(path))
    assert (data.format, data.column, data.duplicates) == ("conversations", "messages", 1)
    scripted, generated = data.conversations
    assert scripted.scripted and scripted.generated == (2,) and scripted.name == "s1"
    assert (scripted.kind, scripted.category, scripted.line) == ("harmful", "lock", 1)
    assert not generated.scripted and generated.generated == (1, 2)
    assert generated.kind == "unknown" and generated.user_text(2) == "y"
    assert [(r.key, r.text, r.kind) for r in data.rows] == [
        (f"{scripted.key}.2", "c", "harmful"),
        (f"{generated.key}.1", "x", "unknown"),
        (f"{generated.key}.2", "y", "unknown"),
    ]
    assert scripted.key != generated.key
    assert load_dataset(str(path), limit=1).conversations == (scripted,)
    assert load_dataset(str(path), category="lock").conversations == (scripted,)
    assert load_dataset(str(path), prompt_kind="benign").conversations[1].kind == "benign"


def test_a_row_may_name_a_mode_per_generated_turn(tmp_path):
    path = write(
        tmp_path / "m.jsonl",
        [{"messages": [user("1"), user("2"), user("3")], "modes": ["default", "zerothink", "x"]}],
    )
    assert load_dataset(str(path)).conversations[0].modes == ("default", "zerothink", "x")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [user("a"), assistant("b")]}, "end with 'assistant', not a user turn"),
        ({"messages": []}, "end with 'nothing'"),
        ({"messages": [user("a"), user("b"), assistant("c"), user("d")]}, "message 2 is 'user'"),
        ({"messages": [user("a"), {"role": "system", "content": "s"}, user("b")]}, "message 2"),
        ({"messages": [user("a"), assistant(" \n"), user("c")]}, "message 2 (assistant) has an"),
        ({"messages": [user("a"), {"role": "tool", "content": "t"}]}, "message 2 is not a"),
        ({"messages": [user("a")], "modes": ["default", "zerothink"]}, "names 2 modes for its 1"),
        ({"messages": [user("a")], "modes": "default"}, "'modes' is not a list"),
        ({"messages": "hi"}, "has no 'messages' list"),
        ({"messages": [user("a")], "kind": "maybe"}, "column 'kind' has 'maybe'"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "bad.jsonl", [{"messages": [user("fine")]}, row])
    with pytest.raises(LrmscopeError) as caught:
        load_dataset(str(path))
    text = str(caught.value)
    assert "\n" not in text and str(path) in text and "line 2" in text
    assert message in text


def test_the_demo_conversations_load():
    from lrmscope.core.conversations import check_templates
    from lrmscope.engine.prompt import FALLBACK_TEMPLATE, render_chat
    from lrmscope.engine.settings import Mode

    data = load_dataset("demo-conversations")
    assert (data.name, data.format, data.path, data.sha256) == (
        "demo-conversations",
        "conversations",
        None,
        None,
    )
    talks = data.conversations
    assert {c.scripted for c in talks} == {True, False}
    assert {c.kind for c in talks} == {"harmful", "benign"}
    listed = [c for c in talks if c.modes is not None]
    assert listed and all(set(c.modes) <= {m.value for m in Mode} for c in listed)
    assert len({c.name for c in talks}) == len(talks)
    check_templates(lambda messages: render_chat(FALLBACK_TEMPLATE, messages), data, None)
