"""Recording a generation into a real SQLite file: live switches, stops and the parsed trace are
saved whatever way the sample ends. (Scripted backend: this is about the store glue.)"""

import json

import pytest

from lrmscope.core.generate import record, start_sample
from lrmscope.engine.events import ThinkDelta
from lrmscope.engine.generation import Generation
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import MAX_SEED, Mode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError
from lrmscope.store import Store
from tests.support.scripted import P


def recorded(tmp_path, gen, on_event=None):
    store = Store(tmp_path / "db.sqlite")
    run = store.start_run("test")
    ref = start_sample(store, run, gen, user_text="hi", dataset="adhoc", think_opener_added=False)
    for event in record(store, ref, gen):
        if on_event:
            on_event(gen, event)
    return store.sample(ref.sample_id)


def test_a_live_switch_is_saved_with_the_final_mode(tmp_path):
    backend = ScriptedBackend(lambda p: "a b c d e f" if p == P else "Answer.")
    gen = Generation(backend, P, sampler=SamplerSettings(max_tokens=100), mode=ModeSettings())

    def switch(gen, event):
        if isinstance(event, ThinkDelta) and event.text.strip() == "b":
            gen.switch_mode(ModeSettings(Mode.ZEROTHINK))

    row = recorded(tmp_path, gen, switch)
    assert row["mode"] == "zerothink" and json.loads(row["mode_params"])["mode"] == "zerothink"
    [change] = json.loads(row["mode_switches"])
    assert change == {"at": len("a b"), "from": "default", "to": "zerothink"}
    assert row["raw"] == "a b\n</think>\n\nAnswer." and row["answer"] == "Answer."


def test_a_stopped_sample_keeps_its_parsed_trace(tmp_path):
    backend = ScriptedBackend("one two three four five six seven eight")
    gen = Generation(backend, P, sampler=SamplerSettings(max_tokens=100), mode=ModeSettings())

    def stop(gen, event):
        if isinstance(event, ThinkDelta) and "three" in event.text:
            gen.stop()

    row = recorded(tmp_path, gen, stop)
    assert row["status"] == "interrupted" and row["finish_reason"] == "stopped"
    assert row["thought"] == "one two three" and row["think_state"] == "unclosed"
    assert row["think_tokens"] == 3 and row["mode_switches"] == "[]"


def test_seeds_stay_repeatable():
    SamplerSettings(seed=MAX_SEED)
    with pytest.raises(LrmscopeError, match="seed"):
        SamplerSettings(seed=2**32 - 1)
    backend = ScriptedBackend(lambda p: "x</think>" if p.count("Wait") < 3 else "done")
    seeds = []
    original = backend.stream

    def spy(prompt, **kw):
        seeds.append(kw["seed"])
        return original(prompt, **kw)

    backend.stream = spy
    gen = Generation(
        backend,
        P,
        sampler=SamplerSettings(seed=MAX_SEED - 1),
        mode=ModeSettings(Mode.MORETHINK, enforce_num=3, rethink_strings=("Wait",)),
    )
    list(gen)
    assert 2**32 - 1 not in seeds and seeds[:3] == [MAX_SEED - 1, MAX_SEED, 0]
