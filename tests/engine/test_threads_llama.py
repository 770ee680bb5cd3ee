"""A model in real llama.cpp follows its share of the cores as other lrmscope processes start
and stop decoding (lrmscope/engine/threads.py), one sequence or batched."""

import json
import os
import subprocess
import sys
import threading
import time

import llama_cpp
import pytest

from lrmscope.engine import threads
from lrmscope.engine.batch import BatchDecoder
from lrmscope.engine.judges.guard_gguf import LlamaGuardGGUF
from lrmscope.engine.llama import LlamaBackend, LlamaSettings
from lrmscope.engine.settings import SamplerSettings

GREEDY = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=4, seed=1)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Two idle cores and a registry of its own."""
    monkeypatch.setattr(threads, "registry_folder", lambda: tmp_path)
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
    return tmp_path


def another_eval(folder):
    """A live process registered as decoding with one thread."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    record = {"pid": process.pid, "threads": 1, "busy": time.time()}
    (folder / f"{process.pid}-0.json").write_text(json.dumps(record))
    return process


def generate(backend):
    return "".join(
        p.text for p in backend.stream("Hello", max_tokens=4, stop=[], sampler=GREEDY, seed=1)
    )


@pytest.mark.parametrize("batched", [False, True])
def test_a_model_gives_a_core_back_and_takes_it_again(model_path, machine, batched):
    backend = LlamaBackend(model_path, LlamaSettings(n_seq=2, n_ctx=256))
    decoder = BatchDecoder(backend) if batched else None
    stream = decoder.sequence(0) if decoder else backend
    try:
        assert backend.settings.threads == 2 and llama_cpp.llama_n_threads(backend.ctx.ctx) == 2
        assert "no other lrmscope process" in backend.info()["threads"]
        before = generate(stream)
        other = another_eval(machine)
        try:
            assert generate(stream) == before
            assert llama_cpp.llama_n_threads(backend.ctx.ctx) == 1
            assert "1 other lrmscope process" in backend.info()["threads"]
        finally:
            other.kill()
            other.wait()
        generate(stream)
        assert llama_cpp.llama_n_threads(backend.ctx.ctx) == 2
    finally:
        if decoder:
            decoder.close()
        backend.close()
    assert list(machine.glob("*.json")) == []


def test_threads_given_stay_and_are_counted_by_the_others(model_path, machine):
    other = another_eval(machine)
    try:
        backend = LlamaBackend(model_path, LlamaSettings(threads=2, n_ctx=256))
        generate(backend)
        assert llama_cpp.llama_n_threads(backend.ctx.ctx) == 2
        assert backend.info()["threads"] == "2 threads (--threads)"
        assert threads.Registry().others() == [1]
        mine = json.loads(next(machine.glob(f"{os.getpid()}-*.json")).read_text())
        assert mine["threads"] == 2
        backend.close()
    finally:
        other.kill()
        other.wait()


def test_a_gguf_judge_decodes_on_a_thread_that_ends(model_path, monkeypatch):
    """The GGUF guard's batch decodes on a thread of its own that has ended when the verdicts
    come back: the caller's thread (an eval's main thread) would otherwise keep an OpenMP team
    that slows every decode of the generating thread (docs/architecture.md "Threads that
    decode")."""
    judge = LlamaGuardGGUF(str(model_path), LlamaSettings(n_ctx=1024))
    decoding: set[threading.Thread] = set()
    real = llama_cpp.llama_decode

    def decode(ctx, batch):
        decoding.add(threading.current_thread())
        return real(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_decode", decode)
    verdicts = judge.judge_batch([("How do I bake bread?", "Mix flour and water.")] * 2)
    judge.backend.close()
    assert len(verdicts) == 2 and all(v.raw for v in verdicts)
    assert decoding and threading.current_thread() not in decoding
    assert not any(thread.is_alive() for thread in decoding)
