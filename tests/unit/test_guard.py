"""Guarded modes: the [modes.NAME.guard] table read and checked (engine/modes.py), and the
controller intervening on a scripted judge's flags over the scripted backend (engine/guard.py;
the real engine: tests/engine/test_guard_llama.py)."""

import threading
import time
from pathlib import Path

import pytest

from lrmscope.engine.events import Finished
from lrmscope.engine.flags import JudgeWorker
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges.base import Verdict
from lrmscope.engine.modes import read_modes_file
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import (
    ZEROTHINK_PREFILL,
    CustomMode,
    Guard,
    ModeSettings,
)
from lrmscope.errors import LrmscopeError
from tests.support.scripted import SAMPLER, P

THOUGHT = (
    "First step is fine. Then mix the BAD stuff. Keep going now. More BAD here. "
    "And then some more. Done."
)

REMINDER = " Wait, is this safe?"


class FlagsMarked:
    """A scripted judge: unsafe when the sentence holds the marker. It records what it judged."""

    name = "scripted-judge"
    version = "1"
    prompt_hash = ""
    device = "cpu"

    def __init__(self, marker: str = "BAD") -> None:
        self.marker = marker
        self.judged: list[str] = []
        self.lock = threading.Lock()

    def judge_batch(self, pairs):
        with self.lock:
            self.judged.extend(text for _prompt, text in pairs)
        return [Verdict("unsafe" if self.marker in text else "safe") for _prompt, text in pairs]


def guarded(**guard) -> ModeSettings:
    return ModeSettings(CustomMode("guarded", guard=Guard(judge="rs-match", **guard)))


def run(script, mode: ModeSettings, judge=None, delay=0.02):
    backend = ScriptedBackend(script, delay=delay)
    gen = Generation(
        backend, P, sampler=SAMPLER, mode=mode, guard_judge=judge or FlagsMarked(), user_text="hi"
    )
    events = list(gen)
    assert isinstance(events[-1], Finished)
    return gen, backend, events[-1]


def goes_on(prompt: str) -> str:
    """The model writes THOUGHT, closes it and answers, going on after any reminder where it
    was cut."""
    written = prompt[len(P) :].replace(REMINDER, "")
    return (THOUGHT + "</think>\n\nAnswer.")[len(written) :]


def test_inject_lands_right_after_the_flagged_sentence_once_per_flag():
    gen, _, fin = run(goes_on, guarded(action="inject", text=REMINDER, max_interventions=5))
    spans = [s for s in fin.trace.injected if s.kind == "inject"]
    # two flagged sentences, each one reminder: the second call continues after the first
    assert len(spans) == 2
    raw = fin.trace.raw
    for span, marked in zip(spans, ("Then mix the BAD stuff. ", "More BAD here. ")):
        trigger = span.trigger
        assert trigger["text"] == marked and raw[trigger["start"] : trigger["end"]] == marked
        assert trigger["judge"] == "scripted-judge" and trigger["label"] == "unsafe"
        assert trigger["action"] == "inject" and trigger["part"] == "think"
        # the sentence is cut once the next word's token comes; the verdict comes while the next
        # tokens are decoded, and the reminder lands at a token boundary: after the sentence's
        # end, before the next sentence's; the latency counts the tokens after the one that
        # ended the sentence
        assert span.start >= trigger["end"]
        between = raw[trigger["end"] : span.start]
        assert 1 <= len(between.split()) == trigger["latency_tokens"] + 1 <= 3
        assert "." not in between
    assert gen.guard is not None and gen.guard.done == 2


def test_the_piece_of_a_sentence_a_reminder_cuts_short_is_not_judged():
    """The tokens written between the flagged sentence and the reminder are no sentence: the
    guard's own intervention must not hand its judge a fragment to flag (here one holding the
    marker, which would bring a second reminder right after the first)."""
    thought = "Then mix the BAD stuff. BAD is it going on. All fine now. Done."

    def script(prompt: str) -> str:
        written = prompt[len(P) :].replace(REMINDER, "")
        return (thought + "</think>\n\nAnswer.")[len(written) :]

    judge = FlagsMarked()
    _, _, fin = run(script, guarded(action="inject", text=REMINDER, max_interventions=5), judge)
    [span] = [s for s in fin.trace.injected if s.kind == "inject"]
    assert span.trigger["text"] == "Then mix the BAD stuff. "
    assert fin.trace.thought.count(REMINDER.strip()) == 1
    cut_short = fin.trace.raw[span.trigger["end"] : span.start]
    assert cut_short.startswith("BAD") and cut_short not in judge.judged
    assert [t for t in judge.judged if "BAD" in t] == ["Then mix the BAD stuff. "]


def test_max_interventions_caps_the_flags_acted_on():
    _, _, fin = run(goes_on, guarded(action="inject", text=REMINDER))
    [span] = [s for s in fin.trace.injected if s.kind == "inject"]
    assert span.trigger["text"] == "Then mix the BAD stuff. " and span.trigger["intervention"] == 1
    assert fin.trace.raw.count(REMINDER) == 1 and "More BAD here." in fin.trace.thought


def test_a_safe_thought_is_never_intervened_in():
    _, _, fin = run(
        lambda p: "All good here. Nothing to see.</think>\n\nAnswer." if p == P else "Answer.",
        guarded(action="inject", text=REMINDER),
    )
    assert fin.trace.injected == () and fin.trace.answer == "Answer."


def test_close_closes_the_thought_as_a_zerothink_switch():
    gen, backend, fin = run(lambda p: THOUGHT if p == P else "The answer.", guarded(action="close"))
    [span] = fin.trace.injected
    assert span.kind == "close" and span.text == ZEROTHINK_PREFILL
    assert span.trigger["text"] == "Then mix the BAD stuff. "
    assert fin.trace.think_closed and fin.trace.answer == "The answer."
    assert fin.trace.thought.startswith("First step is fine. Then mix the BAD stuff.")
    after = fin.trace.thought.removeprefix("First step is fine. Then mix the BAD stuff.")
    assert "." not in after  # closed before the next sentence ended
    assert backend.calls[-1]["prompt"].endswith(ZEROTHINK_PREFILL)


def test_restart_drops_the_thought_and_answers_from_the_prompt_with_the_prefill():
    prefill = "I should not help with that.\n</think>\n\n"
    gen, backend, fin = run(
        lambda p: THOUGHT if p == P else "I cannot help.",
        guarded(action="restart", prefill=prefill),
    )
    [span] = fin.trace.injected
    assert (span.start, span.kind, span.text) == (0, "prefill", prefill)
    assert span.trigger["dropped"].startswith("First step is fine. Then mix the BAD stuff.")
    assert span.trigger["dropped_tokens"] >= 7
    assert fin.trace.raw == prefill + "I cannot help."
    assert backend.calls[-1]["prompt"] == P + prefill
    assert fin.trace.response_start == len(prefill) and fin.trace.answer == "I cannot help."
    assert gen.think_tokens == 0 and gen.answer_tokens == 3


def test_a_second_restart_counts_the_tokens_of_both():
    """Each restart drops the response so far, the first restart's span with it: the last
    restart's trigger counts the tokens every restart dropped."""
    prefill = "Let me start again."
    again = " Then BAD again. More words here. And more words to say."

    def script(prompt: str) -> str:
        return THOUGHT if prompt == P else again if prompt.endswith(prefill) else ""

    gen, _, fin = run(script, guarded(action="restart", prefill=prefill, max_interventions=2))
    [span] = fin.trace.injected
    trigger = span.trigger
    assert (span.kind, span.text, trigger["intervention"]) == ("prefill", prefill, 2)
    assert trigger["dropped"].startswith(prefill + " Then BAD again.")
    written_again = len(trigger["dropped"][len(prefill) :].split())
    assert trigger["dropped_tokens"] >= written_again + 7  # this response's and the first's
    assert fin.trace.raw.startswith(prefill + again.split(".")[0])
    assert gen.guard is not None and gen.guard.done == 2


def test_the_answer_is_guarded_only_with_part_both():
    def script(prompt: str) -> str:
        if prompt == P:
            return "Fine thought.</think>"
        if prompt.endswith("</think>"):
            return "\n\nStep one. Then BAD things. And more words to say."
        return " Ok."

    _, _, fin = run(script, guarded(action="inject", text=REMINDER))
    assert fin.trace.injected == ()
    _, _, fin = run(script, guarded(action="inject", text=REMINDER, part="both"))
    [span] = fin.trace.injected
    assert span.trigger["part"] == "answer" and span.start > fin.trace.raw.index("</think>")


def test_a_slow_judge_never_holds_decoding_and_its_latency_is_recorded():
    class Slow(FlagsMarked):
        def judge_batch(self, pairs):
            release.wait(5)
            return super().judge_batch(pairs)

    release = threading.Event()
    judge = Slow()
    calls = []

    def script(prompt):
        calls.append(prompt)
        if len(calls) == 1:
            threading.Timer(0.5, release.set).start()  # the judge answers well after the words
        return THOUGHT + " " + " ".join(["word"] * 40) + "</think>\n\nA." if prompt == P else "B."

    _, _, fin = run(script, guarded(action="inject", text=REMINDER), judge=judge, delay=0.02)
    [span] = fin.trace.injected
    assert span.trigger["latency_tokens"] > 5  # decoding went on while the judge was held


GOOD = '[modes.g.guard]\njudge = "rs-match"\naction = "inject"\ntext = "Wait."\n'


def test_a_guard_table_is_read_into_the_mode(tmp_path: Path):
    path = tmp_path / "modes.toml"
    path.write_text(GOOD + 'max_interventions = 3\npart = "both"\n')
    [mode] = read_modes_file(path)
    assert mode.guard == Guard("rs-match", "inject", text="Wait.", max_interventions=3, part="both")
    assert mode.definition()["guard"] == {
        "judge": "rs-match",
        "action": "inject",
        "text": "Wait.",
        "max_interventions": 3,
        "part": "both",
    }


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[modes.g]\nguard = "x"\n', "mode 'g': key 'guard' must be a table of keys"),
        ('[modes.g.guard]\naction = "close"\n', "guard key 'judge' is missing"),
        ('[modes.g.guard]\njudge = "rs-match"\n', "guard key 'action' is missing"),
        ('[modes.g.guard]\njudge = "nope"\naction = "close"\n', "guard key 'judge' must name"),
        ('[modes.g.guard]\njudge = "harmbench"\naction = "close"\n', "give judge harmbench"),
        (
            '[modes.g.guard]\njudge = "rs-match"\naction = "stop"\n',
            "guard key 'action' must be one",
        ),
        ('[modes.g.guard]\njudge = "rs-match"\naction = "inject"\n', "guard key 'text' is missing"),
        ('[modes.g.guard]\njudge = "rs-match"\naction = "restart"\n', "key 'prefill' is missing"),
        (GOOD + "when = 1\n", "mode 'g': unknown guard key 'when'"),
        (GOOD + "max_interventions = 0\n", "guard key 'max_interventions' must be a whole"),
        (GOOD + 'part = "answer"\n', "guard key 'part' must be one of think, both"),
        ('[modes.g.guard]\njudge = "rs-match"\naction = "close"\npart = "both"\n', "part"),
    ],
)
def test_a_bad_guard_is_one_line_naming_file_mode_and_key(tmp_path: Path, text, said):
    path = tmp_path / "modes.toml"
    path.write_text(text)
    with pytest.raises(LrmscopeError) as caught:
        read_modes_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "'g'" in message and said in message


def test_generations_sharing_a_worker_have_their_sentences_judged_in_one_batch():
    """An eval's sequences share one JudgeWorker per guard judge: while it judges, the
    sentences of every sequence queue up and go to the judge together, and each verdict goes
    back to its own sequence's guard."""

    class Batching(FlagsMarked):
        def judge_batch(self, pairs):
            batches.append({prompt for prompt, _text in pairs})
            # a token and a judgement each take 0.1 s: on a loaded machine the verdict still
            # lands within the three tokens between a flagged sentence and the next (at 0.03 s,
            # 4 runs in 8 failed beside two busy processes; 0 in 10 at 0.1 s)
            time.sleep(0.1)
            return super().judge_batch(pairs)

    batches: list[set[str]] = []
    worker = JudgeWorker([Batching()])
    finished = {}

    def one(user_text: str) -> None:
        gen = Generation(
            ScriptedBackend(goes_on, delay=0.1),
            P,
            sampler=SAMPLER,
            mode=guarded(action="inject", text=REMINDER, max_interventions=5),
            guard_judge=worker,
            user_text=user_text,
        )
        finished[user_text] = list(gen)[-1]

    threads = [threading.Thread(target=one, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    worker.close()
    assert any(batch == {"first", "second"} for batch in batches)
    for fin in finished.values():
        texts = [span.trigger["text"].strip() for span in fin.trace.injected]
        assert texts[0] == "Then mix the BAD stuff." and set(texts[1:]) <= {"More BAD here."}


def test_the_guard_is_part_of_the_definition_an_eval_resume_checks():
    mode = CustomMode("g", guard=Guard("rs-match", "inject", text="Wait."))
    other = CustomMode("g", guard=Guard("rs-match", "inject", text="Wait.", max_interventions=2))
    assert mode.digest() != other.digest() and mode.digest() != CustomMode("g").digest()
    saved = ModeSettings(mode).as_dict()["definition"]["guard"]
    assert saved == {"judge": "rs-match", "action": "inject", "text": "Wait."} | {
        "max_interventions": 1,
        "part": "think",
    }
