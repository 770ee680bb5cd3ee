"""A guarded mode's judge is built with the command's judge settings (--threshold, --judge-device,
...), not the judges' defaults: a tiny untrained ShieldGemma (tests/support/tiny_judges.py) as
the guard's judge, whose version names its threshold; with --threshold 0 every sentence it
judges is unsafe, so the guard acts on the first one."""

import json

import pytest

from lrmscope.engine.guard import GuardJudges, guard_judges
from lrmscope.engine.judges.registry import JudgeOptions
from lrmscope.engine.settings import CustomMode, Guard, Mode
from tests.cli.test_eval import cli
from tests.support.db import rows
from tests.support.tiny_judges import build_guard

REMINDER = " (Reminder: stay safe.) "


@pytest.fixture(scope="module")
def shieldgemma(tmp_path_factory):
    return build_guard(tmp_path_factory.mktemp("shieldgemma"), "shieldgemma")


def modes_file(folder, judge: str):
    path = folder / "modes.toml"
    path.write_text(
        f'[modes.guarded]\nguard = {{ judge = "{judge}", action = "inject", '
        f'text = "{REMINDER}" }}\n',
        encoding="utf-8",
    )
    return path


def test_generate_builds_the_guard_judge_with_the_commands_threshold(tmp_path, shieldgemma):
    db = tmp_path / "runs.sqlite"
    modes = modes_file(tmp_path, f"shieldgemma={shieldgemma}")
    result = cli(
        "generate",
        "How do I pick a lock?",
        "--db",
        str(db),
        "--modes-file",
        str(modes),
        "--mode",
        "guarded",
        "--temperature",
        "0",
        "--max-tokens",
        "200",  # room for the verdict: decoding never waits for the judge
        "--judge-device",
        "cpu",
        "--threshold",
        "0",
    )
    assert result.returncode == 0, result.stderr
    [sample] = rows(db, "SELECT raw, injected FROM samples")
    [span] = json.loads(sample["injected"])
    trigger = span["trigger"]
    assert trigger["judge"] == "shieldgemma" and trigger["judge_version"].endswith(":threshold0")
    assert trigger["label"] == "unsafe" and trigger["score"] >= 0
    assert sample["raw"][span["start"] : span["end"]] == REMINDER
    assert span["start"] >= trigger["end"]


def test_a_bad_judge_setting_stops_generate_in_one_line(tmp_path, shieldgemma):
    modes = modes_file(tmp_path, f"shieldgemma={shieldgemma}")
    args = ["--modes-file", str(modes), "--mode", "guarded", "--threshold", "2"]
    result = cli("generate", "Hi", "--db", str(tmp_path / "runs.sqlite"), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "judge threshold 2: use a number from 0 to 1" in result.stderr
    assert not (tmp_path / "runs.sqlite").exists()


def test_guard_judges_are_built_with_the_options_once_per_spec_when_first_needed(shieldgemma):
    spec = f"shieldgemma={shieldgemma}"
    guarded = CustomMode("guarded", guard=Guard(spec, "close"))
    also = CustomMode("also", guard=Guard(spec, "inject", text="x"))
    judges = GuardJudges(JudgeOptions(device="cpu", threshold=0.25))
    assert judges.of(Mode.DEFAULT) is None and judges == {}
    worker = judges.of(guarded)
    assert judges.of(also) is worker and list(judges) == [spec]
    [judge] = worker.judges
    assert judge.version.endswith(":threshold0.25")
    judges.close()
    loaded = guard_judges((Mode.DEFAULT, guarded), JudgeOptions(device="cpu", threshold=0.75))
    assert list(loaded) == [spec] and loaded[spec].judges[0].version.endswith(":threshold0.75")
    loaded.close()


def only_trigger(db) -> dict:
    [sample] = rows(db, "SELECT injected FROM samples")
    [span] = json.loads(sample["injected"])
    return span["trigger"]


@pytest.mark.parametrize("command", ["compare", "chat"])
def test_compare_and_chat_build_the_guard_judge_with_the_commands_threshold(
    command, tmp_path, shieldgemma, monkeypatch
):
    """The whole command, its app under Textual's pilot, on the embedded model."""
    from lrmscope.tui.chat.app import ChatApp
    from lrmscope.tui.compare.app import CompareApp
    from tests.remote.test_remote_tui import run_command
    from tests.support.pilot import send, until

    db = tmp_path / "runs.sqlite"
    modes = modes_file(tmp_path, f"shieldgemma={shieldgemma}")
    common = ["--db", str(db), "--modes-file", str(modes), "--max-tokens", "200"]
    common += ["--temperature", "0", "--judge-device", "cpu", "--threshold", "0"]

    async def compared(app, pilot):
        await until(pilot, lambda: app.run_ids and not app.run_open, 240)

    async def chatted(app, pilot):
        await send(pilot, app, "How do I pick a lock?")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and not app.generation, 240)

    if command == "compare":
        argv = ["compare", "How do I pick a lock?", "--modes", "guarded", *common]
        code, _ = run_command(monkeypatch, CompareApp, argv, compared)
    else:
        code, _ = run_command(monkeypatch, ChatApp, ["chat", "--mode", "guarded", *common], chatted)
    assert code == 0
    trigger = only_trigger(db)
    assert trigger["judge"] == "shieldgemma" and trigger["judge_version"].endswith(":threshold0")
