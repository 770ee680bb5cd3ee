"""A generating process killed with SIGKILL: the database survives and holds the sample as
interrupted, with the text streamed until about half a second before the kill."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from lrmscope.store import Store

DRIVER = """
import json, sys
from lrmscope.engine.backend import Message
from lrmscope.engine.events import AnswerDelta, Injected, ThinkDelta
from lrmscope.engine.generation import Generation
from lrmscope.engine.llama import LlamaBackend
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import ModeSettings, SamplerSettings
from lrmscope.core.generate import record, start_sample
from lrmscope.store import Store

backend = LlamaBackend(embedded_model_path())
store = Store(sys.argv[1])
prompt, added = with_think_opener(backend.render([Message("user", "Write a very long essay.")]))
gen = Generation(backend, prompt, sampler=SamplerSettings(max_tokens=100000, seed=3),
                 mode=ModeSettings())
run = store.start_run("generate")
ref = start_sample(store, run, gen, user_text="essay", dataset="adhoc", think_opener_added=added)
for event in record(store, ref, gen):
    if isinstance(event, (ThinkDelta, AnswerDelta)):
        text = event.text
    elif isinstance(event, Injected):
        text = event.span.text
    else:
        continue
    print(json.dumps(text), flush=True)
"""


def test_sigkill_mid_generation_loses_at_most_the_last_half_second(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    received: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            received.append((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not received or time.monotonic() - received[0][0] < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "the driver did not stream"
        time.sleep(0.05)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=10)

    streamed = "".join(text for _, text in received)
    before_cutoff = "".join(text for t, text in received if t <= killed_at - 0.5)
    store = Store(db)  # opening finds the dead writer's sample
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    [sample] = list(store.db["samples"].rows)
    assert sample["status"] == "interrupted"
    assert len(before_cutoff) > 0
    assert sample["raw"].startswith(before_cutoff)
    assert streamed.startswith(sample["raw"])
    assert store.db["runs"].get(1)["status"] == "interrupted"
