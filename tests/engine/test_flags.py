"""Live segment flags: segmentation, offsets into the raw trace, judging off the caller's thread,
and saving to the flags table; on the real engine with RS-Match."""

import threading

from lrmscope.core.generate import FlagSaver, record, start_sample
from lrmscope.engine.backend import Message
from lrmscope.engine.events import AnswerDelta, Finished, Injected, Span, ThinkDelta
from lrmscope.engine.flags import SegmentFlagger
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges.base import Verdict
from lrmscope.engine.judges.rsmatch import RSMatch
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings
from lrmscope.store import Store


class RecordingJudge:
    """Wraps a judge and notes which thread ran it."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.version, self.prompt_hash, self.device = inner.name, "1", "h", "cpu"
        self.threads = set()

    def judge_batch(self, pairs):
        self.threads.add(threading.current_thread().name)
        return self.inner.judge_batch(pairs)


def test_segments_by_sentence_with_offsets_and_verdicts():
    raw = "Sure. Here is how to do it.\nI'm sorry, I cannot help</think>\n\nNo way. Bye"
    judge = RecordingJudge(RSMatch())
    flagger = SegmentFlagger([judge], "prompt")
    close = raw.index("</think>")
    pieces = [
        ThinkDelta(raw[0:3], 0),
        ThinkDelta(raw[3:20], 3),
        ThinkDelta(raw[20:close], 20),
        AnswerDelta(raw[close + 8 :], close + 8),
    ]
    for event in pieces:
        flagger.feed(event)
    flags = flagger.close(timeout=10)
    assert [(f.part, f.text.strip(), f.label) for f in flags] == [
        ("think", "Sure.", "unsafe"),
        ("think", "Here is how to do it.", "unsafe"),
        ("think", "I'm sorry, I cannot help", "safe"),
        ("answer", "\n\nNo way.".strip(), "unsafe"),
        ("answer", "Bye", "unsafe"),
    ]
    for flag in flags:
        assert raw[flag.start : flag.end] == flag.text
    assert judge.threads == {"lrmscope-flags"}


def test_every_sentence_of_one_chunk_is_its_own_segment():
    flagger = SegmentFlagger([RSMatch()], "p")
    flagger.feed(ThinkDelta("Step one is easy. I'm sorry. Step three.", 0))
    flags = flagger.close(timeout=10)
    assert [(f.text.strip(), f.label) for f in flags] == [
        ("Step one is easy.", "unsafe"),
        ("I'm sorry.", "safe"),
        ("Step three.", "unsafe"),
    ]


def test_a_failing_flag_saver_is_reported_and_judging_goes_on():
    def broken_saver(flag):
        raise RuntimeError("database is locked")

    flagger = SegmentFlagger([RSMatch()], "p", on_flag=broken_saver)
    flagger.feed(ThinkDelta("One. Two. Three.", 0))
    flags = flagger.close(timeout=10)
    assert len(flags) == 3 and len(flagger.errors) == 3 and not flagger.running
    assert "database is locked" in flagger.errors[0]


def test_injected_text_is_not_judged_and_cuts_a_segment():
    judge = RecordingJudge(RSMatch())
    flagger = SegmentFlagger([judge], "p")
    flagger.feed(ThinkDelta("partial thought", 0))
    flagger.feed(Injected(Span(15, 19, "rethink", "Wait"), "think"))
    flagger.feed(ThinkDelta(" more", 19))
    flags = flagger.close(timeout=10)
    assert [f.text for f in flags] == ["partial thought", " more"]


def test_a_failing_live_judge_is_reported_not_raised():
    class Broken:
        name, version, prompt_hash, device = "broken", "1", "h", "cpu"

        def judge_batch(self, pairs):
            raise RuntimeError("model fell over")

    class Fine(Broken):
        name = "fine"

        def judge_batch(self, pairs):
            return [Verdict("safe") for _ in pairs]

    flagger = SegmentFlagger([Broken(), Fine()], "p")
    flagger.feed(ThinkDelta("One. Two.", 0))
    flags = flagger.close(timeout=10)
    assert flagger.errors and "model fell over" in flagger.errors[0]
    assert [f.judge for f in flags] == ["fine", "fine"]


def test_live_flags_on_the_real_engine_are_saved(llama, tmp_path):
    prompt, added = with_think_opener(llama.render([Message("user", "Tell me about locks.")]))
    gen = Generation(
        llama,
        prompt,
        sampler=SamplerSettings(temperature=0, top_p=1.0, max_tokens=60),
        mode=ModeSettings(Mode.LESSTHINK),
    )
    store = Store(tmp_path / "db.sqlite")
    run = store.start_run("chat")
    ref = start_sample(
        store, run, gen, user_text="Tell me about locks.", dataset="adhoc", think_opener_added=added
    )
    saver = FlagSaver(store, ref.sample_id)
    flagger = SegmentFlagger([RSMatch()], "Tell me about locks.", on_flag=saver)
    for event in record(store, ref, gen):
        flagger.feed(event)
        if isinstance(event, Finished):
            raw = event.trace.raw
    flags = flagger.close(timeout=30)
    saver.close()
    assert flags and all(f.part == "answer" for f in flags)  # LessThink: the thought is injected
    for flag in flags:
        assert raw[flag.start : flag.end] == flag.text
    rows = list(store.db["flags"].rows)
    assert len(rows) == len(flags)
    assert {(r["start"], r["end"], r["label"], r["judge"]) for r in rows} == {
        (f.start, f.end, f.label, f.judge) for f in flags
    }
