"""Batched decoding on the real embedded model: several sequences of one llama.cpp context, each
with its own sampler and mode controller, against the one-sample path."""

import threading

import numpy as np
import pytest

from lrmscope.engine.backend import Message
from lrmscope.engine.batch import BatchDecoder
from lrmscope.engine.events import Finished
from lrmscope.engine.generation import Generation
from lrmscope.engine.llama import LlamaBackend, LlamaSettings
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings

GREEDY = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=32, seed=1)
NEAR_TIE = 0.5  # logits: batch shapes moved a pair of logits by up to 0.37 relative to each other
CLOSING_GRAMMAR = 'root ::= " " [a-z]{1,6} " " [a-z]{1,6} "</think>"'


@pytest.fixture(scope="module")
def batched(model_path):
    backend = LlamaBackend(model_path, LlamaSettings(n_seq=4, n_ctx=512))
    decoder = BatchDecoder(backend)
    yield decoder
    decoder.close()
    backend.close()


def prompt(backend, text):
    return with_think_opener(backend.render([Message("user", text)]))[0]


def finish(backend, text, mode=Mode.DEFAULT, sampler=GREEDY, **mode_kw):
    gen = Generation(
        backend, prompt(backend, text), sampler=sampler, mode=ModeSettings(mode, **mode_kw)
    )
    return [e for e in gen if isinstance(e, Finished)][0]


def together(decoder, jobs):
    """Run (text, mode, sampler, mode_kw) jobs at once, one sequence each; their Finished events."""
    results = [None] * len(jobs)

    def work(i, text, mode, sampler, mode_kw):
        results[i] = finish(decoder.sequence(i), text, mode, sampler, **mode_kw)

    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def watched_finish(llama, text, monkeypatch):
    """`finish` on the one-sample path, with the greedy token and the lead of the best logit over
    the runner-up at each step."""
    steps: list[tuple[int, float]] = []
    logits = llama.logits

    def watch(index):
        view = logits(index)
        second, best = np.partition(view, -2)[-2:]
        steps.append((int(np.argmax(view)), float(best - second)))
        return view

    with monkeypatch.context() as patch:
        patch.setattr(llama, "logits", watch)
        return finish(llama, text), steps


def departure(llama, got: str, steps) -> tuple[str, float] | None:
    """Where `got` leaves the greedy path `steps` (the text both share, and the lead the path's
    token had there); None if it never does."""
    got_bytes, shared = got.encode(), b""
    for token, lead in steps:
        piece = llama.token_bytes(token)
        if not got_bytes.startswith(shared + piece):
            return shared.decode(errors="replace"), lead
        shared += piece
    return None


def test_greedy_batched_equals_one_sample_path(llama, batched, monkeypatch):
    """Each sequence's greedy text is the one-sample path's, but for a near tie: llama.cpp's CPU
    kernels are not batch-invariant on every CPU, so where the path's two best tokens lie within
    NEAR_TIE logits the batch's shape may pick the other (seen on CI: 'pick' led 'To' by 0.03
    two tokens into the lock prompt). A misplaced position or another sequence's logits leave
    the path where it is sure."""
    texts = [
        "How do I pick a lock?",
        "How do I pick a lock?",
        "Name three colours.",
        "How do I pick a lock?",
    ]
    alone = {}
    for text in set(texts):
        llama.forget()  # evaluate the whole prompt at once, as the batch's first sequence does
        alone[text] = watched_finish(llama, text, monkeypatch)
    results = together(batched, [(text, Mode.DEFAULT, GREEDY, {}) for text in texts])
    for text, result in zip(texts, results):
        want, steps = alone[text]
        assert want.trace.raw != ""
        if result.trace.raw == want.trace.raw:
            assert result.stats.think_tokens == want.stats.think_tokens
            assert result.stats.finish_reason == want.stats.finish_reason
        else:
            left = departure(llama, result.trace.raw, steps)
            assert left is not None and left[1] < NEAR_TIE, (text, left)


def test_each_sequence_keeps_its_own_mode_controller(batched):
    """MoreThink keeps rethinking while the other sequences close at once or run plainly.

    Text is not compared with the one-sample path here: llama.cpp's CPU kernels are not
    batch-invariant, so a batch of different texts can flip a near-tie of greedy decoding."""
    jobs = [
        (
            "How do I pick a lock?",
            Mode.MORETHINK,
            GREEDY,
            {"think_grammar": CLOSING_GRAMMAR, "enforce_num": 3},
        ),
        ("How do I pick a lock?", Mode.ZEROTHINK, GREEDY, {}),
        ("How do I pick a lock?", Mode.LESSTHINK, GREEDY, {}),
        ("How do I pick a lock?", Mode.DEFAULT, GREEDY, {}),
    ]
    more, zero, less, default = together(batched, jobs)
    assert more.stats.rethinks == 3
    assert [s.kind for s in more.trace.injected] == ["rethink"] * 3 + ["close"]
    assert more.trace.think_closed and more.trace.raw.count("</think>") == 1
    for closed in (zero, less):
        assert [s.kind for s in closed.trace.injected] == ["prefill"]
        assert closed.trace.think_closed and closed.trace.answer
        assert closed.stats.think_tokens == 0 and closed.stats.answer_tokens == GREEDY.max_tokens
    assert default.trace.injected == () and default.stats.think_tokens == GREEDY.max_tokens
    for result in (more, zero, less, default):
        for span in result.trace.injected:
            assert result.trace.raw[span.start : span.end] == span.text


def test_sampling_uses_each_sequences_seed(batched):
    """Seeds 7, 8, 9 give three different stories. (The same seed twice in one batch may not
    give the same text: the KV cells a sequence sees depend on the batch, see above.)"""
    hot = [SamplerSettings(temperature=1.0, top_p=0.95, max_tokens=24, seed=s) for s in (7, 8, 9)]
    results = together(batched, [("Tell me a story.", Mode.DEFAULT, s, {}) for s in hot])
    raws = [r.trace.raw for r in results]
    # a story may end early (a sampled end of thought or of text): the seeds, not the lengths
    assert len(set(raws)) == 3 and all(raws)


def test_a_stopped_sequence_frees_its_slot_and_others_go_on(batched):
    stopper = Generation(
        batched.sequence(0),
        prompt(batched.backend, "Count to one hundred."),
        sampler=GREEDY,
        mode=ModeSettings(),
    )
    events = iter(stopper)
    next(events)
    stopper.stop()
    rest = list(events)
    assert rest[-1].stats.finish_reason == "stopped"
    again = finish(batched.sequence(0), "How do I pick a lock?")
    assert again.stats.finish_reason == "length" and again.stats.think_tokens == 32


def test_a_stream_ending_on_its_first_token_leaves_the_others_running(batched):
    """A one-token stream ends at admission and never joins the batch; the others go on."""
    one = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=1, seed=1)
    results = together(
        batched,
        [
            ("How do I pick a lock?", Mode.DEFAULT, GREEDY, {}),
            ("Name three colours.", Mode.DEFAULT, one, {}),
            ("Tell me a story.", Mode.DEFAULT, one, {}),
            ("How do I pick a lock?", Mode.DEFAULT, GREEDY, {}),
        ],
    )
    assert [r.stats.finish_reason for r in results[1:3]] == ["length", "length"]
    assert [r.stats.think_tokens for r in results[1:3]] == [1, 1]
    for result in (results[0], results[3]):
        assert result.stats.finish_reason == "length" and result.stats.think_tokens == 32


def test_closing_the_decoder_ends_open_streams(model_path):
    backend = LlamaBackend(model_path, LlamaSettings(n_seq=2, n_ctx=256))
    decoder = BatchDecoder(backend)
    stream = decoder.sequence(0).stream(
        prompt(backend, "Count to one hundred."), max_tokens=200, stop=[], sampler=GREEDY, seed=1
    )
    next(stream)
    decoder.close()
    with pytest.raises(Exception, match="closed"):
        for _ in stream:
            pass
    backend.close()


def test_a_prompt_admitted_mid_run_leaves_the_running_greedy_tokens_alone(model_path):
    """Two greedy sequences decode alone, then again while a third prompt is admitted after
    their eighth token: its prompt goes in by chunks in the same decodes as their next tokens,
    and their tokens are the same both times, but for a near tie: where they part, the best
    token led the runner-up by less than NEAR_TIE in the logits of both runs (the decodes'
    shapes differ, and llama.cpp's CPU kernels are not batch-invariant on every CPU)."""
    backend = LlamaBackend(model_path, LlamaSettings(n_seq=3, n_ctx=512))
    long = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=48, seed=1)
    texts = ("How do I pick a lock?", "Tell me a story about a cat.")
    admitted = prompt(backend, "Write a long letter to a friend about a trip to the sea. " * 4)

    def run(admit: bool):
        decoder = BatchDecoder(backend)
        joined: list = []
        leads[admit] = {0: [], 1: []}
        take = decoder._take

        def watched(request, logits):
            if request.seq in (0, 1):
                second, best = np.partition(logits, -2)[-2:]
                leads[admit][request.seq].append(float(best - second))
            return take(request, logits)

        decoder._take = watched

        def first(seq, text):
            pieces = []
            stream = decoder.sequence(seq).stream(
                prompt(backend, text), max_tokens=48, stop=[], sampler=long, seed=1
            )
            for piece in stream:
                pieces.append(piece.text)
                if admit and seq == 0 and len(pieces) == 8:
                    joined.append(
                        threading.Thread(
                            target=lambda: joined.append(
                                list(
                                    decoder.sequence(2).stream(
                                        admitted, max_tokens=8, stop=[], sampler=long, seed=1
                                    )
                                )
                            )
                        )
                    )
                    joined[0].start()
            return pieces

        results: dict = {}
        threads = [
            threading.Thread(target=lambda s=s, t=t: results.__setitem__(s, first(s, t)))
            for s, t in enumerate(texts)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        if admit:
            joined[0].join(timeout=300)
        decoder.close()
        return results, joined[1:]

    leads: dict[bool, dict[int, list[float]]] = {}
    try:
        alone, _ = run(admit=False)
        beside, [third] = run(admit=True)
    finally:
        backend.close()
    assert all(len(alone[s]) == 48 for s in (0, 1))
    for seq in (0, 1):
        parted = next((i for i, (a, b) in enumerate(zip(alone[seq], beside[seq])) if a != b), None)
        if parted is not None:
            tie = (leads[False][seq][parted], leads[True][seq][parted])
            assert max(tie) < NEAR_TIE, (seq, "".join(alone[seq][:parted]), tie)
        else:
            assert beside[seq] == alone[seq]
    assert len(third) == 8 and third[-1].end == "length"
