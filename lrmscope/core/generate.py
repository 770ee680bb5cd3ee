"""Running a generation while it is saved: the glue between the engine and the store.

Used by every command that generates, so a chat turn, a `generate` call and an eval sample are
recorded the same way: a `running` sample row first, its text flushed while it streams, then the
parsed trace and stats, or `interrupted` / `failed` with the text so far.

`run_turn` is a chat turn or a compare column, headless: recorded, flagged live while it streams,
judged when it ends; the TUI calls it from a worker thread and shows what it reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lrmscope.core.datasets import prompt_key
from lrmscope.core.judge import Shown, judge_trace
from lrmscope.engine.events import Event, Finished
from lrmscope.engine.flags import Flag, SegmentFlagger
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges.base import Judge
from lrmscope.store import SampleWriter, Store
from lrmscope.store.db import now


@dataclass(frozen=True)
class SampleRef:
    run_id: int
    sample_id: int


@dataclass(frozen=True)
class TurnPlace:
    """Where an eval sample sits in a conversation (core/conversations.py): the conversation,
    the turn (from 1) and the same branch's sample of the turn before."""

    conversation_id: int
    turn: int
    parent_id: int | None


def finished_fields(event: Finished) -> dict:
    """What only the end knows; the trace itself comes with every snapshot."""
    stats = event.stats
    return {
        "finish_reason": stats.finish_reason,
        "first_token_s": stats.first_token_s,
        "elapsed_s": stats.elapsed_s,
        "status": "interrupted" if stats.finish_reason == "stopped" else "done",
        "ended_at": now(),
    }


def record(
    store: Store,
    ref: SampleRef,
    generation: Generation,
    writer: SampleWriter | None = None,
) -> Iterator[Event]:
    """Yield the generation's events while saving them to the sample `ref.sample_id`: flushed
    while it streams by `writer` (one an eval's samples share) or by a writer of its own, and
    its end written through `store`."""
    own = writer is None
    flusher = SampleWriter(store.path) if writer is None else writer
    flusher.watch(ref.sample_id, generation.snapshot)
    done = False
    try:
        for event in generation:
            if isinstance(event, Finished):
                done = True
                flusher.finish(store, ref.sample_id, finished_fields(event))
            yield event
    except BaseException as exc:
        if not done:
            done = True
            cut_off = isinstance(exc, (KeyboardInterrupt, GeneratorExit))
            flusher.finish(
                store,
                ref.sample_id,
                {
                    "status": "interrupted" if cut_off else "failed",
                    "finish_reason": "stopped" if cut_off else None,
                    "error": None if cut_off else f"{type(exc).__name__}: {exc}",
                    "ended_at": now(),
                },
            )
        raise
    finally:
        if own:
            flusher.close()


def start_sample(
    store: Store,
    run_id: int,
    generation: Generation,
    *,
    user_text: str,
    dataset: str,
    key: str | None = None,
    think_opener_added: bool,
    k: int = 0,
    parent_id: int | None = None,
    place: TurnPlace | None = None,
    prompt_id: int | None = None,
) -> SampleRef:
    """The generation's `running` sample row; `prompt_id` when the caller saved the prompt
    already (an eval's plan)."""
    if prompt_id is None:
        prompt_id = store.prompt_id(dataset, key or prompt_key(user_text), user_text)
    turn = {} if place is None else {"conversation_id": place.conversation_id, "turn": place.turn}
    sample_id = store.start_sample(
        run_id,
        prompt_id,
        parent_id=parent_id if place is None else place.parent_id,
        **turn,
        k=k,
        mode=generation.mode.mode.value,
        mode_params=generation.mode.as_dict(),
        sampler=generation.sampler.as_dict(),
        seed=generation.sampler.seed,
        rendered_prompt=generation.prompt,
        think_opener_added=int(think_opener_added),
    )
    return SampleRef(run_id, sample_id)


class FlagSaver:
    """Saves live flags to the `flags` table. Called from the flagger's thread, so it keeps a
    connection of its own."""

    def __init__(self, store: Store, sample_id: int) -> None:
        self._store = Store(store.path)
        self._sample_id = sample_id

    def __call__(self, flag: Flag) -> None:
        self._store.add_flag(
            self._sample_id,
            part=flag.part,
            start=flag.start,
            end=flag.end,
            judge=flag.judge,
            judge_version=flag.judge_version,
            label=flag.label,
            score=flag.score,
            categories=list(flag.categories),
            raw=flag.raw,
        )

    def close(self) -> None:
        self._store.close()


@dataclass(frozen=True)
class TurnJob:
    """A generation to save as a sample of a run: a chat turn or a compare column."""

    store_path: Path
    run_id: int
    generation: Generation
    text: str  # the user's prompt, as saved and as the judges see it
    dataset: str
    think_opener_added: bool
    k: int = 0
    parent_id: int | None = None
    live_judges: tuple[Judge, ...] = ()  # segment flags while it streams
    final_judges: tuple[Judge, ...] = ()  # verdicts on thought / answer / full at the end


class TurnObserver(Protocol):
    """What `run_turn` reports, in this order: the sample, its events (the Finished one after the
    live judges are done), flags (from the flagger's thread), live judges' errors, verdicts."""

    def on_sample(self, sample_id: int) -> None: ...

    def on_event(self, event: Event) -> None: ...

    def on_flag(self, flag: Flag) -> None: ...

    def on_live_error(self, error: str) -> None: ...

    def on_verdicts(self, verdicts: list[Shown]) -> None: ...


@dataclass(frozen=True)
class TurnResult:
    sample_id: int
    finished: Finished | None
    flags: tuple[Flag, ...]  # every live verdict, safe ones too
    verdicts: tuple[Shown, ...]


def run_turn(job: TurnJob, observer: TurnObserver) -> TurnResult:
    """Save the generation as it streams (with a database connection of the calling thread's
    own), flag it live, judge it at the end. A live judge's error is reported and the turn goes
    on; any other error is raised, the sample saved as failed or interrupted."""
    with closing(Store(job.store_path)) as store:
        ref = start_sample(
            store,
            job.run_id,
            job.generation,
            user_text=job.text,
            dataset=job.dataset,
            think_opener_added=job.think_opener_added,
            k=job.k,
            parent_id=job.parent_id,
        )
        observer.on_sample(ref.sample_id)
        flagger = saver = None
        if job.live_judges:
            saver = FlagSaver(store, ref.sample_id)

            def on_flag(flag: Flag) -> None:
                saver(flag)
                observer.on_flag(flag)

            flagger = SegmentFlagger(job.live_judges, job.text, on_flag=on_flag)
        finished = None
        for event in record(store, ref, job.generation):
            if flagger is not None:
                flagger.feed(event)
            if isinstance(event, Finished):
                finished = event
            else:
                observer.on_event(event)
        flags: list[Flag] = []
        if flagger is not None and saver is not None:
            flags = flagger.close()
            saver.close()
            for error in flagger.errors:
                observer.on_live_error(error)
        verdicts: list[Shown] = []
        if finished is not None:
            observer.on_event(finished)
            if job.final_judges:
                verdicts = judge_trace(
                    store, ref.sample_id, job.text, finished.trace, job.final_judges
                )
                observer.on_verdicts(verdicts)
        return TurnResult(ref.sample_id, finished, tuple(flags), tuple(verdicts))
