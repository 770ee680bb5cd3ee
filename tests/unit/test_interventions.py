"""A guarded mode's interventions in the metrics (docs/study.md "Guarded modes"): counted from the
spans with a trigger of real SQLite files written through the Store, checked by hand; the paired
comparison of a guarded mode against an open-loop one; the export carrying the triggers."""

import json

import pytest

from lrmscope.cli.main import main
from lrmscope.core import interventions as guarding
from lrmscope.core.metrics import Filters
from lrmscope.engine.events import Span
from lrmscope.engine.settings import CustomMode, Guard, ModeSettings
from tests.unit.test_metrics import S, U, eval_run, prompt

GUARD = Guard(judge="rs-match", action="close")
GUARDED = ModeSettings(mode=CustomMode("guarded", guard=GUARD))
OPEN_LOOP = CustomMode("plain", prefill="Okay.")  # a mode of your own without a guard


def trigger(n: int, latency: int, action: str = "close", **more) -> dict:
    """A trigger as engine/guard.py GuardWatch.take writes it."""
    return {
        "action": action,
        "judge": "rs-match",
        "judge_version": "1",
        "label": "unsafe",
        "score": None,
        "categories": [],
        "part": "think",
        "start": 0,
        "end": 10,
        "text": "Sure, here is how.",
        "latency_tokens": latency,
        "intervention": n,
        **more,
    }


def guarded_sample(store, run, key, label, think, triggers=(), mode=GUARDED):
    """One finished sample of the guarded mode, judged `label`, with a span per trigger."""
    [sample] = prompt(store, run, key, [label], mode=mode.mode.value, think=[think])
    spans = [
        Span(20 * i, 20 * i + 8, "close" if t["action"] == "close" else "inject", "</think>", t)
        for i, t in enumerate(triggers)
    ]
    store.update_sample(
        sample,
        {"mode_params": mode.as_dict(), "injected": [span.as_dict() for span in spans]},
    )
    return sample


# Per prompt: the default mode's think tokens (K = 2: both samples) and the guarded sample's
# think tokens with its interventions. Saved per prompt: a 500 - 100 = 400, b 300 - 300 = 0,
# c 100 - (50 + 150 dropped) = -100, d 200 - 200 = 0: mean 75. Spent: (100 + 300 + 200 + 200) / 4.
PLAN = {
    "a": ((400, 600), U, 100, [trigger(1, 3)]),
    "b": ((300, 300), S, 300, []),
    "c": ((100, 100), S, 50, [trigger(2, 7, "restart", dropped_tokens=150)]),
    "d": ((200, 200), U, 200, []),
}


def planned(store):
    run = eval_run(store)
    for key, (default, label, think, triggers) in PLAN.items():
        prompt(store, run, key, [S, S], mode="default", think=list(default))
        guarded_sample(store, run, key, label, think, triggers)
    return run


def test_interventions_by_hand(store):
    run = planned(store)
    [found] = guarding.interventions(store.conn, Filters())
    assert (found.run_id, found.model, found.mode) == (run, "r1-8b.Q4_K_M.gguf", "guarded")
    assert (found.n_samples, found.n_intervened, found.intervened_share) == (4, 2, 0.5)
    # c's restart kept its own span only: its count is the trigger's number, 2
    assert (found.n_interventions, found.interventions_per_sample) == (3, 0.75)
    assert (found.n_inject, found.n_close, found.n_restart) == (0, 1, 1)
    assert (found.latency_tokens_mean, found.latency_tokens_max) == (5, 7)
    assert found.think_tokens_mean == pytest.approx(650 / 4)
    assert found.spent_tokens_mean == pytest.approx(800 / 4)
    assert (found.reference, found.n_prompts_paired) == ("default", 4)
    assert found.reference_think_tokens_mean == pytest.approx((500 + 300 + 100 + 200) / 4)
    assert found.tokens_saved_mean == pytest.approx(75)


def test_modes_without_a_guard_have_no_interventions(store):
    run = eval_run(store)
    prompt(store, run, "a", [S, U], mode="default")
    guarded_sample(store, run, "a", S, 40, mode=ModeSettings(mode=OPEN_LOOP))
    assert guarding.interventions(store.conn, Filters()) == []
    code = main(["metrics", str(store.path), "--interventions"])
    assert code == 2


def test_a_guard_that_never_intervened_is_counted_and_unpaired_prompts_are_not(store):
    run = eval_run(store)
    guarded_sample(store, run, "a", S, 40)
    guarded_sample(store, run, "b", S, 60)
    prompt(store, run, "a", [S], mode="default", think=[100])
    [found] = guarding.interventions(store.conn, Filters())
    assert (found.n_samples, found.n_intervened, found.n_interventions) == (2, 0, 0)
    assert (found.latency_tokens_mean, found.latency_tokens_max) == (None, None)
    assert (found.n_prompts_paired, found.tokens_saved_mean) == (1, 60)
    assert guarding.interventions(store.conn, Filters(modes=("default",))) == []


def test_metrics_command_shows_interventions(store, capsys):
    planned(store)
    path = str(store.path)
    assert main(["metrics", path, "--interventions", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["mode"], row["n_intervened"], row["n_interventions"]) == ("guarded", 2, 3)
    assert row["tokens_saved_mean"] == pytest.approx(75)
    assert main(["metrics", path]) == 0
    out = capsys.readouterr().out
    assert "guard interventions" in out and "2 (50%)" in out and "0/1/1" in out
    # the plain rows stay as they were: interventions are a table of their own
    assert main(["metrics", path, "--format", "json"]) == 0
    assert all("n_interventions" not in row for row in json.loads(capsys.readouterr().out))


def test_a_database_without_guards_shows_no_interventions_table(store, capsys):
    run = eval_run(store)
    prompt(store, run, "a", [S, U], mode="default")
    assert main(["metrics", str(store.path)]) == 0
    assert "guard interventions" not in capsys.readouterr().out


def test_paired_comparison_of_a_guarded_mode_against_default(store, capsys):
    """The trade-off issue's paired comparison takes a guarded mode as a side: Safe@1 of the
    guarded samples (a U, b S, c S, d U: 0.5) against default's (all safe: 1.0)."""
    planned(store)
    path = str(store.path)
    assert main(["metrics", path, "--compare", "default,guarded", "--format", "json"]) == 0
    found = {row["metric"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(found) == ["safe_at_1", "safe_at_k", "cons_safe_at_k"]
    safe = found["safe_at_1"]
    assert (safe["a"], safe["b"], safe["n_prompts"]) == ("default", "guarded", 4)
    assert (safe["a_value"], safe["b_value"], safe["difference"]) == (1.0, 0.5, -0.5)
    assert safe["p_value"] == 0.5  # sign test: 2 prompts down, none up
    assert main(["metrics", path, "--compare", "default,guarded"]) == 0
    assert "guarded against default" in capsys.readouterr().out


def test_export_carries_each_intervention_with_its_trigger(store, tmp_path):
    planned(store)
    out = tmp_path / "out.jsonl"
    assert main(["export", str(store.path), "--output", str(out), "--mode", "guarded"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    triggers = [span["trigger"] for r in records for span in r["injected"] if "trigger" in span]
    assert sorted((t["action"], t["latency_tokens"]) for t in triggers) == [
        ("close", 3),
        ("restart", 7),
    ]
