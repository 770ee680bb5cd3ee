"""`lrmscope export` on real SQLite files built through the Store: JSONL and CSV round trips of
awkward text, the judgements map, filters, atomic -o, SafeChain selection and the bad inputs."""

import csv
import json
import random
import subprocess
import sys
from dataclasses import dataclass

import pytest

from lrmscope.cli.main import main
from lrmscope.core import export
from lrmscope.core.judge import judgement_row
from lrmscope.engine.judges.base import Verdict
from lrmscope.store import Store, reads
from lrmscope.store.filters import SampleFilter

# quotes, newlines, commas, Rich markup, ANSI escapes, CRLF, non-ASCII: all written verbatim
NASTY = 'He said "hi, there",\nthen [bold]left[/bold] \x1b[31mred\x1b[0m; a\r\nb 🙂 é'
SAMPLER = {"temperature": 0.6, "top_p": 0.95, "top_k": 0, "seed": 7}


@dataclass(frozen=True)
class FakeJudge:
    name: str
    version: str = "1"
    prompt_hash: str = "h"
    device: str = "cpu"


def add_sample(store, run, prompt, k=0, mode="default", status="done", **fields):
    sample = store.start_sample(run, prompt, k=k, mode=mode, sampler=SAMPLER, seed=7)
    thought, answer = fields.pop("thought", f"think {k}"), fields.pop("answer", f"answer {k}")
    store.update_sample(
        sample,
        {
            "raw": f"{thought}\n</think>\n\n{answer}",
            "thought": thought,
            "answer": answer,
            "think_closed": 1,
            "think_state": "normal",
            "think_written": 1,
            "think_tokens": 3,
            "answer_tokens": 2,
            "finish_reason": "stop",
            "status": status,
            **fields,
        },
    )
    return sample


def judge(store, sample, think="safe", answer="safe", name="rs-match", version="1", full=None):
    labels = {"think": think, "answer": answer, "full": full}
    store.add_judgements(
        [
            judgement_row(sample, part, FakeJudge(name, version), Verdict(label, raw=label))
            for part, label in labels.items()
            if label
        ]
    )


def run_cli(*args):
    return main(["export", *map(str, args)])


@pytest.fixture
def db(tmp_path):
    """Run 1 (eval, model /models/r1-8b.gguf): a done sample of nasty text, judged twice on
    think (the newer verdict wins) and by `human`, an interrupted sample and a running one;
    run 2: a done zerothink sample."""
    path = tmp_path / "runs.sqlite"
    store = Store(path)
    run = store.start_run("eval", model_path="/models/r1-8b.gguf", k=1, seed=7)
    prompt = store.prompt_id("strongreject", "sr-1", NASTY, category="Violent crimes")
    first = add_sample(
        store,
        run,
        prompt,
        thought=NASTY,
        answer=NASTY,
        raw=NASTY,
        injected=[{"start": 0, "end": 4, "kind": "rethink", "text": "Wait"}],
    )
    judge(store, first, think="unsafe", answer="safe")
    judge(store, first, think="safe", answer=None, version="2")
    judge(store, first, think=None, answer="unparsed", name="human")
    add_sample(store, run, prompt, k=1, status="interrupted", answer="")
    add_sample(store, run, prompt, k=2, status="running")
    other = store.start_run("eval", model_path="/models/qwen.gguf", k=1)
    add_sample(store, other, store.prompt_id("mine", "p2", "plain"), mode="zerothink", thought="")
    store.close()
    return path


def test_jsonl_round_trip_keeps_text_verbatim(db, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert run_cli(db, "-o", out) == 0
    assert capsys.readouterr().err.strip() == f"wrote 2 samples to {out}"
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    assert [r["sample_id"] for r in rows] == [1, 4]  # done only, by default
    first = rows[0]
    assert list(first) == list(export.FIELDS)
    assert (first["prompt"], first["think"], first["answer"], first["raw"]) == (NASTY,) * 4
    assert first["prompt_id"] == "sr-1" and first["dataset"] == "strongreject"
    assert first["category"] == "Violent crimes" and first["model"] == "r1-8b.gguf"
    assert (first["mode"], first["sample_index"], first["seed"], first["status"]) == (
        "default",
        0,
        7,
        "done",
    )
    assert (first["think_tokens"], first["answer_tokens"], first["think_state"]) == (3, 2, "normal")
    assert first["injected"] == [{"start": 0, "end": 4, "kind": "rethink", "text": "Wait"}]
    assert first["sampler"] == SAMPLER
    assert first["judgements"] == {
        "human": {"answer": "unparsed"},
        "rs-match": {"think": "safe", "answer": "safe"},
    }
    assert rows[1]["model"] == "qwen.gguf" and rows[1]["judgements"] == {}


def test_csv_round_trip_quotes_text_and_nests_json(db, tmp_path):
    out = tmp_path / "out.csv"
    assert run_cli(db, "--format", "csv", "-o", out, "--include-interrupted") == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["sample_id"] for r in rows] == ["1", "2", "4"]
    first = rows[0]
    assert list(first) == list(export.FIELDS)
    assert (first["prompt"], first["think"], first["raw"]) == (NASTY,) * 3
    assert json.loads(first["judgements"])["rs-match"] == {"think": "safe", "answer": "safe"}
    assert json.loads(first["sampler"]) == SAMPLER and json.loads(first["injected"])[0]["end"] == 4
    assert rows[1]["status"] == "interrupted" and rows[1]["answer"] == ""


def test_stdout_and_filters(db, capsys):
    assert run_cli(db, "--run", 2) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["mode"] for line in captured.out.splitlines()] == ["zerothink"]
    assert "wrote 1 sample to stdout" in captured.err
    assert run_cli(db, "--mode", "DEFAULT", "--include-interrupted", "--run", 1, 2) == 0
    ids = [json.loads(line)["sample_id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == [1, 2]


def test_records_are_read_in_pages(db):
    store = Store(db)
    selection = SampleFilter(statuses=("done", "interrupted", "running"))
    paged = [r["sample_id"] for r in export.records(store.conn, selection, page=1)]
    assert paged == [1, 2, 3, 4]
    assert reads.count_samples(store.conn, selection) == 4
    view = {}  # the newest verdicts as the schema's view `verdicts` has them
    for sample, judge_name, part, label in store.conn.execute(
        "SELECT sample_id, judge, part, label FROM verdicts"
    ):
        view.setdefault(sample, {}).setdefault(judge_name, {})[part] = label
    assert {r["sample_id"]: r["judgements"] for r in export.records(store.conn, selection)} == {
        sample: view.get(sample, {}) for sample in paged
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", 9], "no run 9 in"),
        (["--mode", "Fast Think"], "unknown mode 'Fast Think'"),
        (["--mode", "fast"], "no finished samples in"),  # a name of your own, not here
        (["--mode", "lessthink"], "no finished samples in"),
        (["--judge", "rs-match"], "apply to --safechain only"),
        (["--strict"], "--strict and --require-thought apply to --safechain only"),
        (["--require-thought"], "--strict and --require-thought apply to --safechain only"),
        (["-o", "nowhere/out.jsonl"], "output directory nowhere does not exist"),
    ],
)
def test_bad_inputs_are_one_line_errors(db, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert run_cli(db, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_database(tmp_path, capsys):
    assert run_cli(tmp_path / "none.sqlite") == 2
    assert "does not exist" in capsys.readouterr().err


def others(folder):
    """The files in folder besides the database and its WAL files."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("runs.sqlite"))


def test_output_is_atomic(db, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("earlier export\n")
    real = export.records

    def failing(conn, selection):
        yield next(real(conn, selection))
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "records", failing)
    assert run_cli(db, "-o", out) == 130
    assert out.read_text() == "earlier export\n"
    assert others(tmp_path) == ["out.jsonl"]
    with pytest.raises(RuntimeError), export.atomic_output(tmp_path / "new.csv") as handle:
        handle.write("half")
        raise RuntimeError
    assert others(tmp_path) == ["out.jsonl"]


def test_stdout_closed_early_is_quiet(tmp_path):
    store = Store(tmp_path / "big.sqlite")
    run = store.start_run("eval", model_path="m.gguf")
    for k in range(40):
        add_sample(store, run, store.prompt_id("d", f"p{k}", "x" * 10_000), k=k)
    store.close()
    script = f"{sys.executable} -m lrmscope export {tmp_path / 'big.sqlite'} | head -c 100"
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {script}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and len(result.stdout) == 100, result.stderr
    assert result.stderr == ""


# -- SafeChain ---------------------------------------------------------------------------------


CHAIN_KEYS = (
    "s1",
    "s2",
    "full-unsafe",
    "unparsed",
    "missing",
    "think-unsafe",
    "no-thought",
    "unclosed",
    "cut",
    "s3",
    "short",
)
# The prompts each rule keeps: the study's (the full response of every sample judged safe),
# --strict (the thought the model wrote and the answer, too), --require-thought (every thought
# written and closed) and both.
KEPT = {
    (): ("s1", "s2", "think-unsafe", "no-thought", "unclosed", "s3"),
    ("--strict",): ("s1", "s2", "no-thought", "s3"),
    ("--require-thought",): ("s1", "s2", "think-unsafe", "s3"),
    ("--strict", "--require-thought"): ("s1", "s2", "s3"),
}
LEFT_OUT = "full unsafe: 1, unparsed verdict: 1, missing verdict: 1"
BROKEN = "unfinished sample: 1, fewer than K samples: 1"


@pytest.fixture
def chain_db(tmp_path):
    """An eval run with K = 3, each sample judged by rs-match on think, answer and full.
    Prompts s1, s2, s3: all safe (s2 after an older verdict that said otherwise). In the rest,
    sample 1 differs: its full response unsafe, unparsed or not judged; its thought alone judged
    unsafe (its full response safe); no thought (empty: the model closed it at once); an unclosed
    thought (no answer); interrupted; `short` has 2 of 3 samples. s1 also has zerothink samples
    (another mode), one judged by `other` too."""
    path = tmp_path / "chain.sqlite"
    store = Store(path)
    run = store.start_run("eval", model_path="/m/r1.gguf", k=3)
    spoilers = {
        "full-unsafe": {"labels": ("safe", "safe", "unsafe")},
        "unparsed": {"labels": ("safe", "safe", "unparsed")},
        "missing": {"labels": ("safe", "safe", None)},
        "think-unsafe": {"labels": ("unsafe", "safe", "safe")},
        "no-thought": {
            "labels": (None, "safe", "safe"),
            "thought": "",
            "think_state": "empty",
            "think_written": 0,
        },
        "unclosed": {
            "labels": ("safe", None, "safe"),
            "think_state": "unclosed",
            "think_closed": 0,
            "answer": "",
        },
        "cut": {"status": "interrupted"},
    }
    for key in CHAIN_KEYS:
        prompt = store.prompt_id("wj", key, f"instruction {key}")
        for k in range(2 if key == "short" else 3):
            spoil = dict(spoilers.get(key, {})) if k == 1 else {}
            labels = spoil.pop("labels", ("safe", "safe", "safe"))
            sample = add_sample(store, run, prompt, k=k, raw=f"{key} response {k}", **spoil)
            if key == "s2":  # an older verdict, superseded by the next one
                judge(store, sample, "unsafe", "unparsed", version="0", full="unsafe")
            judge(store, sample, *labels[:2], full=labels[2])
            if key == "s1":
                zero = add_sample(store, run, prompt, k=k, mode="zerothink")
                judge(store, zero, full="safe")
    judge(store, zero, name="other", full="safe")
    store.close()
    return path


def chain(path, *args):
    return run_cli(path, "--safechain", "--judge", "rs-match", *args)


def test_safechain_keeps_prompts_whose_full_responses_are_all_safe(chain_db, tmp_path, capsys):
    """The study's rule: Safe@K = 1 on the full response; one of the K chosen at random."""
    out = tmp_path / "set.jsonl"
    assert chain(chain_db, "-o", out, "--seed", 5) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rng = random.Random(5)
    kept = KEPT[()]
    assert [r["response"] for r in rows] == [
        f"{key} response {rng.choice(range(3))}" for key in kept
    ]
    assert [r["instruction"] for r in rows] == [f"instruction {k}" for k in kept]
    assert all(
        list(r) == ["instruction", "response", "label"] and r["label"] == "safe" for r in rows
    )
    err = capsys.readouterr().err
    assert (
        "kept 6 of 11 prompts (mode default) have every sample judged safe on the full response "
        f"by rs-match (left out: {LEFT_OUT}, {BROKEN}); wrote 6 rows to"
    ) in err
    again = tmp_path / "again.jsonl"
    assert chain(chain_db, "-o", again, "--seed", 5) == 0
    assert again.read_text() == out.read_text()
    choices = set()
    for seed in range(8):
        assert chain(chain_db, "-o", again, "--seed", seed) == 0
        choices.add(again.read_text())
    assert len(choices) > 1


@pytest.mark.parametrize(
    ("args", "summary", "left_out"),
    [
        (
            ("--strict",),
            "4 of 11 prompts (mode default) have every sample judged safe on the full response, "
            "thought and answer by rs-match",
            "think or answer unsafe (--strict): 1, unparsed verdict: 1, missing verdict: 1, "
            "no answer (--strict): 1",
        ),
        (
            ("--require-thought",),
            "4 of 11 prompts (mode default) have every sample judged safe on the full response "
            "by rs-match, each with a thought",
            "unparsed verdict: 1, missing verdict: 1, no thought (--require-thought): 2",
        ),
        (
            ("--strict", "--require-thought"),
            "3 of 11 prompts (mode default) have every sample judged safe on the full response, "
            "thought and answer by rs-match, each with a thought",
            "think or answer unsafe (--strict): 1, unparsed verdict: 1, missing verdict: 1, "
            "no answer (--strict): 1, no thought (--require-thought): 1",
        ),
    ],
)
def test_safechain_stricter_rules(chain_db, capsys, args, summary, left_out):
    assert chain(chain_db, *args) == 0
    captured = capsys.readouterr()
    instructions = [json.loads(line)["instruction"] for line in captured.out.splitlines()]
    assert instructions == [f"instruction {key}" for key in KEPT[args]]
    assert f"kept {summary} (left out: full unsafe: 1, {left_out}, {BROKEN});" in captured.err


def test_safechain_response_is_what_the_model_generated(tmp_path, capsys):
    """No prefill (raw before response_start is prompt) and no opening <think> the model wrote."""
    path = tmp_path / "prefill.sqlite"
    store = Store(path)
    run = store.start_run("eval", model_path="/m/r1.gguf", k=1)
    raws = {
        "lessthink": ("Okay, I can answer it. \n</think>\n\n", "Sure: no."),
        "opener": ("", "<think>\nhmm, no.\n</think>\n\nNo."),
        "plain": ("", " I think not.\n</think>\n\nNo."),
    }
    for key, (prefill, generated) in raws.items():
        sample = add_sample(
            store,
            run,
            store.prompt_id("wj", key, f"instruction {key}"),
            raw=prefill + generated,
            response_start=len(prefill),
        )
        judge(store, sample, full="safe")
    store.close()
    assert chain(path) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["response"] for r in rows] == [
        "Sure: no.",
        "hmm, no.\n</think>\n\nNo.",
        " I think not.\n</think>\n\nNo.",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--safechain"], "--safechain needs --judge NAME"),
        (["--safechain", "--judge", "llama-guard"], "judge 'llama-guard' has no verdicts in"),
        (
            ["--safechain", "--judge", "other"],
            (
                "no prompt qualifies: 0 of 11 prompts (mode default) have every sample judged safe "
                "on the full response by other (left out: missing verdict: 11)"
            ),
        ),
        (
            ["--safechain", "--judge", "rs-match", "--mode", "lessthink"],
            "no samples in mode lessthink",
        ),
        (["--safechain", "--judge", "rs-match", "--format", "csv"], "JSONL only"),
    ],
)
def test_safechain_errors(chain_db, tmp_path, capsys, args, message):
    out = tmp_path / "set.jsonl"
    assert run_cli(chain_db, *args, "-o", out) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".set.jsonl.*"))
    if "llama-guard" in args:
        assert "(judges there: other, rs-match)" in err


def test_safechain_mode_and_run_filters(chain_db, capsys):
    assert chain(chain_db, "--mode", "zerothink", "--run", 1) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["instruction"] for line in captured.out.splitlines()] == [
        "instruction s1"
    ]
    assert "kept 1 of 1 prompts (mode zerothink, runs 1)" in captured.err
