"""README.md "From Python", run as written (only its budgets made small) in a fresh interpreter
on the real embedded model: the public API is one import and the example works. And the llama.cpp
backends give what the `Backend` protocol promises (tests/unit/test_api.py checks the others)."""

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import lrmscope.api
from lrmscope.engine.backend import Backend
from lrmscope.engine.batch import BatchDecoder

README = Path(__file__).resolve().parents[2] / "README.md"
# The example's budgets, and the small ones the test runs it with.
BUDGETS = {"max_tokens=2048": "max_tokens=48", "think_budget=1024": "think_budget=24"}


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## From Python\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, 'README.md "From Python" has no python code block'
    return match.group(1)


def test_every_name_of_the_api_resolves():
    assert all(hasattr(lrmscope.api, name) for name in lrmscope.api.__all__)


def test_the_readme_example_runs(tmp_path):
    code = readme_example()
    assert "from lrmscope.api import" in code
    for written, small in BUDGETS.items():
        assert written in code, f"the example no longer sets {written}: update BUDGETS"
        code = code.replace(written, small)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    verdicts = re.findall(r"^(think|answer|full) (safe|unsafe|unparsed)$", result.stdout, re.M)
    assert [part for part, _ in verdicts] == ["think", "answer", "full"]
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        run = conn.execute("SELECT kind, status, model_path FROM runs").fetchall()
        samples = conn.execute(
            "SELECT mode, status, think_tokens, answer_tokens, thought, answer FROM samples"
        ).fetchall()
    assert run == [("generate", "done", str(lrmscope.api.embedded_model_path()))]
    [(mode, status, think_tokens, answer_tokens, thought, answer)] = samples
    assert (mode, status) == ("morethink", "done")
    assert think_tokens == 24 and 0 < answer_tokens <= 24
    assert thought and thought in result.stdout and answer in result.stdout


def test_llama_backends_give_what_the_protocol_promises(llama):
    members = {name for name in (*Backend.__annotations__, *vars(Backend)) if name[0] != "_"}
    decoder = BatchDecoder(llama)
    try:
        sequence = decoder.sequence(0)
        for backend in (llama, sequence):
            assert [name for name in sorted(members) if not hasattr(backend, name)] == []
        assert sequence.model_name == llama.model_name == lrmscope.api.embedded_model_path().name
        assert sequence.model_fingerprint == llama.model_fingerprint
        assert sequence.model_meta() == llama.model_meta() and "chat_template" in llama.model_meta()
        sequence.close()  # the sequence frees nothing: the decoder still decodes on it
        prompt = llama.render([lrmscope.api.Message("user", "Hi")])
        greedy = lrmscope.api.SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=4)
        pieces = list(sequence.stream(prompt, max_tokens=4, stop=(), sampler=greedy, seed=1))
        assert pieces[-1].end is not None
    finally:
        decoder.close()
