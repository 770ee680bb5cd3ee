"""`lrmscope export --format inspect`: each run as an Inspect eval log (UK AISI's inspect_ai, the
`.eval` format it writes), so `inspect view` shows lrmscope's samples with their reasoning.

A sample of the log is a sample of the run: its id the prompt's id and the mode
(`PROMPT:MODE`), its epoch k + 1, its input the prompt, and one assistant message whose content
is a reasoning block holding the thought and a text block holding the answer. Its scores are the
newest verdict of each judge per part, named `JUDGE/PART`, valued `safe`, `unsafe` or
`unparsed` (the records of `lrmscope export`, core/export.py). inspect_ai is an optional
dependency (the `inspect` extra), imported only here.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from lrmscope.core import export
from lrmscope.errors import LrmscopeError
from lrmscope.store import reads
from lrmscope.store.filters import SampleFilter

MISSING = (
    "--format inspect needs inspect_ai, which is not installed: pip install 'lrmscope[inspect]'"
)
STATUSES = {"done": "success", "running": "started"}  # other run statuses: cancelled


def _inspect() -> Any:
    """inspect_ai's log and model modules, or one line saying how to install them."""
    try:
        from inspect_ai import log, model, scorer
    except ImportError:
        raise LrmscopeError(MISSING) from None
    return log, model, scorer


def score_name(judge: str, part: str) -> str:
    return f"{judge}/{part}"


def sample_id(record: dict) -> str:
    return f"{record['prompt_id']}:{record['mode']}"


def _sample(record: dict, modules: Any):
    log, model, scorer = modules
    content = []
    if record["think"]:
        content.append(model.ContentReasoning(reasoning=record["think"]))
    content.append(model.ContentText(text=record["answer"] or ""))
    assistant = model.ChatMessageAssistant(content=content, model=record["model"] or "lrmscope")
    return log.EvalSample(
        id=sample_id(record),
        epoch=record["sample_index"] + 1,
        input=record["prompt"],
        target="",
        messages=[model.ChatMessageUser(content=record["prompt"]), assistant],
        output=model.ModelOutput(
            model=record["model"] or "lrmscope",
            choices=[
                model.ChatCompletionChoice(
                    message=assistant,
                    stop_reason="max_tokens" if record["finish_reason"] == "length" else "stop",
                )
            ],
        ),
        scores={
            score_name(judge, part): scorer.Score(value=label, answer=record["answer"])
            for judge, parts in record["judgements"].items()
            for part, label in parts.items()
        },
        metadata={
            key: record[key]
            for key in (
                "sample_id",
                "run_id",
                "dataset",
                "category",
                "prompt_kind",
                "mode",
                "sample_index",
                "seed",
                "status",
                "finish_reason",
                "think_state",
                "think_tokens",
                "answer_tokens",
                "injected",
                "sampler",
            )
        },
    )


def _log(run: tuple, ended_at: str | None, samples: list, modules: Any):
    log, _model, _scorer = modules
    run_id, kind, title, model_path, mode, dataset, k, status, started_at = run
    model_name = PurePath(model_path).name if model_path else "unknown"
    return log.EvalLog(
        status=STATUSES.get(status, "cancelled"),
        eval=log.EvalSpec(
            created=started_at,
            task=title or f"lrmscope {kind} {dataset or ''}".strip(),
            task_id=f"lrmscope-run-{run_id}",
            run_id=f"lrmscope-run-{run_id}",
            dataset=log.EvalDataset(name=dataset, samples=len(samples)),
            model=f"lrmscope/{model_name}",
            config=log.EvalConfig(epochs=k),
            metadata={"lrmscope_run": run_id, "kind": kind, "modes": mode},
        ),
        stats=log.EvalStats(started_at=started_at, completed_at=ended_at or ""),
        samples=samples,
    )


def log_path(folder: Path, run_id: int) -> Path:
    return folder / f"lrmscope-run-{run_id}.eval"


def write_logs(
    conn: sqlite3.Connection,
    folder: Path,
    runs: tuple[int, ...],
    statuses: tuple[str, ...],
    mode: str | None = None,
) -> Iterator[tuple[int, Path, int]]:
    """Write one log per run (these runs, every run if none) with samples of these statuses (and
    this mode, if given) into
    `folder` (made if missing), each file whole or not at all; yield (run id, path, samples
    written) as each is done. A run without such samples gets no file."""
    modules = _inspect()
    if folder.exists() and not folder.is_dir():
        raise LrmscopeError(
            f"--format inspect writes a file per run: {folder} is a file; give a folder with -o"
        )
    if not folder.parent.is_dir():
        raise LrmscopeError(
            f"output directory {folder.parent} does not exist; create it or choose another -o"
        )
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise LrmscopeError(f"cannot make {folder} ({exc.strerror}); choose another -o") from None
    rows = [row for row in sorted(reads.runs(conn)) if not runs or row[0] in runs]
    ended = {row[0]: row[6] for row in reads.run_settings(conn, [row[0] for row in rows])}
    for run in rows:
        selection = SampleFilter(runs=(run[0],), statuses=statuses, mode=mode)
        samples = [_sample(record, modules) for record in export.records(conn, selection)]
        if not samples:
            continue
        path = log_path(folder, run[0])
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        try:
            modules[0].write_eval_log(
                _log(run, ended[run[0]], samples, modules), temp, format="eval"
            )
            export.publish(Path(temp), path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        yield run[0], path, len(samples)
