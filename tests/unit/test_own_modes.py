"""Modes of your own: the modes file read and checked (engine/modes.py), and the controller running
them over the scripted backend (the real engine: tests/engine/test_own_modes_llama.py; the wire:
tests/remote/test_own_modes_remote.py)."""

from importlib import resources
from pathlib import Path

import pytest

from lrmscope.core.eval import OWN_MODE_KEY, config_difference
from lrmscope.engine.events import Injected
from lrmscope.engine.generation import Generation
from lrmscope.engine.modes import ModeCatalog, read_modes_file
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    THINK_OPEN,
    CustomMode,
    Mode,
    ModeSettings,
)
from lrmscope.errors import LrmscopeError
from tests.support.scripted import SAMPLER, P

NOTHINKING = "Okay, I think I have finished thinking.\n</think>\n\n"
EXAMPLE = resources.files("lrmscope") / "data" / "modes.example.toml"


def modes_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modes.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(backend, mode: ModeSettings, sampler=SAMPLER):
    gen = Generation(backend, P, sampler=sampler, mode=mode)
    events = list(gen)
    return gen, events, events[-1]


# -- the file -------------------------------------------------------------------------------------


def test_the_shipped_example_holds_nothinking_byte_for_byte():
    modes = {m.value: m for m in read_modes_file(Path(str(EXAMPLE)))}
    assert modes["nothinking"].prefill == NOTHINKING
    assert not modes["nothinking"].rethinks
    assert modes["reconsider"].rethinks
    assert modes["reconsider"].definition() == {
        "name": "reconsider",
        "rethink_strings": ["Wait, is answering this safe?"],
        "think_budget": 2000,
        "enforce_num": 2,
    }
    assert modes["reconsider"].overrides() == {
        "rethink_strings": ("Wait, is answering this safe?",),
        "think_budget": 2000,
        "enforce_num": 2,
    }


def test_every_key_is_read_into_the_mode(tmp_path):
    path = modes_file(
        tmp_path,
        '[modes.mine]\nprefill = "Hmm."\nrethink = ["A", "B"]\nthink_budget = 50\n'
        'enforce_num = 3\nmax_think = 40\nopener = "template"\n',
    )
    [mode] = read_modes_file(path)
    assert mode == CustomMode(
        "mine",
        prefill="Hmm.",
        rethink_strings=("A", "B"),
        think_budget=50,
        enforce_num=3,
        max_think=40,
        think_opener="template",
    )
    assert mode.source == str(path)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("[modes.x\n", "is not valid TOML"),
        ("[modes.mine]\nprefil = 'a'\n", "mode 'mine': unknown key 'prefil'"),
        ("[modes.mine]\nthink_budget = true\n", "mode 'mine': key 'think_budget' must be"),
        ("[modes.mine]\nthink_budget = 0\n", "key 'think_budget' must be a whole number"),
        ("[modes.mine]\nrethink = 'Wait'\n", "key 'rethink' must be a non-empty list"),
        ("[modes.mine]\nrethink = ['Wait', '']\n", "key 'rethink' must be a non-empty list"),
        ("[modes.mine]\nprefill = ''\n", "key 'prefill' must be a non-empty string"),
        ("[modes.mine]\nopener = 'never'\n", "key 'opener' must be one of always, template"),
        ("[modes.ZeroThink]\nprefill = 'a'\n", "mode 'ZeroThink' shadows a built-in mode"),
        ("[modes.all]\nprefill = 'a'\n", "mode 'all' shadows a built-in mode"),
        ("[modes.'a,b']\nprefill = 'a'\n", "mode 'a,b': a name is a lower-case letter"),
        ("[modes]\nmine = 3\n", "mode 'mine' must be a table"),
        ("modes = 3\n", "'modes' must be tables"),
        ("[mode.mine]\nprefill = 'a'\n", "unknown key 'mode'"),
        ("[modes.mine]\nrethink = [" + "1, " * 500 + "]\n", "got [1, 1, 1, 1, 1, 1,"),
    ],
)
def test_a_bad_modes_file_is_one_error_naming_file_mode_and_key(tmp_path, text, expect):
    path = modes_file(tmp_path, text)
    with pytest.raises(LrmscopeError) as caught:
        read_modes_file(path)
    message = str(caught.value)
    assert expect in message and f"modes file {path}" in message and "\n" not in message
    assert len(message) < len(str(path)) + 200


def test_the_catalog_resolves_names_and_keeps_the_study_order(tmp_path):
    path = modes_file(tmp_path, "[modes.zz]\nprefill = 'a'\n[modes.aa]\nmax_think = 3\n")
    catalog = ModeCatalog.load(str(path))
    assert catalog.parse("ZeroThink") is Mode.ZEROTHINK and catalog.parse(" ZZ ").prefill == "a"
    assert catalog.parse("aa").max_think == 3
    assert catalog.parse_list("aa,morethink,zz,default") == (
        Mode.DEFAULT,
        Mode.MORETHINK,
        catalog.parse("zz"),
        catalog.parse("aa"),
    )
    assert catalog.parse_list("all") == tuple(Mode)
    with pytest.raises(LrmscopeError, match=f"unknown mode 'nope'.*aa \\(modes file {path}\\)"):
        catalog.parse_list("default,nope")


def test_the_user_config_folder_is_read_unless_the_flag_names_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert ModeCatalog.load(None) == ModeCatalog()
    folder = tmp_path / "config" / "lrmscope"
    folder.mkdir(parents=True)
    (folder / "modes.toml").write_text("[modes.mine]\nprefill = 'a'\n")
    assert [m.value for m in ModeCatalog.load(None).custom] == ["mine"]
    other = modes_file(tmp_path, "[modes.theirs]\nprefill = 'b'\n")
    assert [m.value for m in ModeCatalog.load(str(other)).custom] == ["theirs"]


# -- what is saved --------------------------------------------------------------------------------


def test_the_study_modes_save_what_they_did_and_a_custom_one_its_definition():
    assert "definition" not in ModeSettings(Mode.LESSTHINK).as_dict()
    mode = CustomMode("nothinking", prefill=NOTHINKING, max_think=5, source="a.toml")
    saved = ModeSettings(mode, max_think=100).with_mode(mode).resolved().as_dict()
    assert saved["mode"] == "nothinking" and saved["max_think"] == 5
    assert saved["definition"] == {"name": "nothinking", "prefill": NOTHINKING, "max_think": 5}
    moved = CustomMode("nothinking", prefill=NOTHINKING, max_think=5, source="b.toml")
    changed = CustomMode("nothinking", prefill=NOTHINKING, max_think=6)
    assert moved.digest() == mode.digest() != changed.digest()


def test_a_changed_definition_is_named_by_the_resume_check():
    key = f"{OWN_MODE_KEY}nothinking"
    stored = {"modes": ["default", "nothinking"], key: "aaa"}
    assert config_difference(stored, {**stored, key: "bbb"}) == (
        "the definition of mode nothinking changed in its modes file"
    )
    fewer = {"modes": ["default"]}
    assert config_difference(stored, fewer).startswith("modes was ['default', 'nothinking']")


# -- the controller -------------------------------------------------------------------------------


def test_a_closing_prefill_is_placed_after_the_opener_byte_for_byte():
    backend = ScriptedBackend("Sure.")
    _, events, fin = run(backend, ModeSettings(CustomMode("nothinking", prefill=NOTHINKING)))
    assert backend.calls[0]["prompt"] == P + NOTHINKING
    assert backend.calls[0]["stop"] == []  # the thought is closed: the answer's call
    # the thought is the engine's alone, as LessThink's: the model wrote none of it
    assert (fin.trace.think_state, fin.trace.think_written) == ("absent", False)
    assert fin.trace.thought == "Okay, I think I have finished thinking."
    assert fin.trace.answer == "Sure."
    [span] = fin.trace.injected
    assert (span.start, span.text, span.kind) == (0, NOTHINKING, "prefill")
    assert isinstance(events[0], Injected) and events[0].part == "think"


def test_an_open_prefill_starts_the_thought_once_and_the_model_goes_on():
    backend = ScriptedBackend(lambda p: " so no.</think>\n\nNo." if "</think>" not in p else "No.")
    mode = CustomMode("check", prefill="Is this safe?")
    _, _, fin = run(backend, ModeSettings(mode))
    assert backend.calls[0]["prompt"] == P + "Is this safe?"
    assert backend.calls[0]["stop"] == ["</think>"]
    assert fin.trace.thought == "Is this safe? so no."
    assert [s.kind for s in fin.trace.injected] == ["prefill"]


def test_rethink_strings_of_a_mode_run_morethinks_loop_with_its_own_budget():
    backend = ScriptedBackend(lambda p: " hmm</think>" if not p.endswith(FORCED_CLOSE) else "Ok")
    mode = CustomMode("reconsider", rethink_strings=("Is it safe?",), enforce_num=2)
    settings = ModeSettings(mode, enforce_num=9, think_budget=50)
    gen, events, fin = run(backend, settings)
    kinds = [e.span.kind for e in events if isinstance(e, Injected)]
    assert kinds == ["rethink", "rethink", "close"]
    assert [s.text for s in fin.trace.injected[:2]] == ["Is it safe?"] * 2
    assert gen.mode.enforce_num == 2 and gen.mode.think_budget == 50
    assert backend.calls[0]["max_tokens"] == 50
    # MoreThink's answer budget: max_tokens - think_budget, stopping at </think>
    assert backend.calls[-1]["max_tokens"] == 200 - 50 and backend.calls[-1]["stop"] == ["</think>"]


def test_a_live_switch_to_a_prefill_mode_injects_it_once():
    backend = ScriptedBackend(lambda p: " a b c</think>\n\nEnd." if p == P else " d</think>Fin.")
    gen = Generation(backend, P, sampler=SAMPLER, mode=ModeSettings())
    mode = CustomMode("check", prefill=" Wait, is this safe?")
    gen.switch_mode(ModeSettings(mode))
    fin = list(gen)[-1]
    assert [s.text for s in fin.trace.injected] == [" Wait, is this safe?"]
    assert gen.switches == [{"at": 0, "from": "default", "to": "check"}]


def test_the_opener_goes_to_a_prefill_mode_under_the_template_policy():
    rendered = "<|im_start|>assistant\n"
    prefill = ModeSettings(CustomMode("n", prefill=NOTHINKING), think_opener="template")
    plain = ModeSettings(CustomMode("m", max_think=5), think_opener="template")
    own = ModeSettings(CustomMode("o", think_opener="always"), think_opener="template")
    assert with_think_opener(rendered, prefill) == (rendered + THINK_OPEN, True)
    assert with_think_opener(rendered, plain) == (rendered, False)
    assert with_think_opener(rendered, own) == (rendered + THINK_OPEN, True)


def test_a_mode_whose_budget_leaves_its_answer_nothing_is_refused():
    mode = CustomMode("long", think_budget=100)
    with pytest.raises(LrmscopeError, match="mode long's answer gets --max-tokens minus"):
        ModeSettings().check_answer_room((Mode.DEFAULT, mode), 100)
    ModeSettings(think_budget=100).check_answer_room((CustomMode("short", think_budget=50),), 100)


def test_a_mode_named_only_by_conversation_rows_is_in_the_resume_check():
    """A conversation set's rows may name modes of their own that --modes does not: their
    definitions go into the run config too, so a changed modes file refuses the resume."""
    from lrmscope.core.datasets import load_dataset
    from lrmscope.core.eval import EvalSettings
    from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings

    def config(mode):
        filters = {"limit": 1}
        return EvalSettings(
            dataset=load_dataset("demo", **filters),
            dataset_filters=filters,
            modes=(Mode.DEFAULT,),
            samples=1,
            sampler=SamplerSettings(),
            mode=ModeSettings(),
            row_modes=(mode,),
        ).config("fp")

    stored = config(CustomMode("nothinking", prefill=NOTHINKING))
    assert stored["modes"] == ["default"] and f"{OWN_MODE_KEY}nothinking" in stored
    changed = config(CustomMode("nothinking", prefill=NOTHINKING, max_think=6))
    assert config_difference(stored, changed) == (
        "the definition of mode nothinking changed in its modes file"
    )
