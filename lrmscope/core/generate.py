"""Running a generation while it is saved: the glue between the engine and the store.

Used by every command that generates, so a chat turn, a `generate` call and an eval sample are
recorded the same way: a `running` sample row first, its text flushed while it streams, then the
parsed trace and stats, or `interrupted` / `failed` with the text so far.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lrmscope.core.datasets import prompt_key
from lrmscope.engine.events import Event, Finished
from lrmscope.engine.flags import Flag
from lrmscope.engine.generation import Generation
from lrmscope.store import SampleWriter, Store
from lrmscope.store.db import now


@dataclass(frozen=True)
class SampleRef:
    run_id: int
    sample_id: int


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
) -> Iterator[Event]:
    """Yield the generation's events while saving them to the sample `ref.sample_id`."""
    writer = SampleWriter(store, ref.sample_id, generation.snapshot)
    done = False
    try:
        for event in generation:
            if isinstance(event, Finished):
                writer.finish(finished_fields(event))
                done = True
            yield event
    except BaseException as exc:
        if not done:
            cut_off = isinstance(exc, (KeyboardInterrupt, GeneratorExit))
            writer.finish(
                {
                    "status": "interrupted" if cut_off else "failed",
                    "finish_reason": "stopped" if cut_off else None,
                    "error": None if cut_off else f"{type(exc).__name__}: {exc}",
                    "ended_at": now(),
                }
            )
        raise


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
) -> SampleRef:
    prompt_id = store.prompt_id(dataset, key or prompt_key(user_text), user_text)
    sample_id = store.start_sample(
        run_id,
        prompt_id,
        parent_id=parent_id,
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
