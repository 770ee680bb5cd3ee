"""Conversations in an eval: every generated turn of a conversation set is a sample.

A branch is one conversation under one plan of modes (a mode per generated turn: each --modes
mode for every turn, or the row's own `modes`) and one sample index k: the K branches of a
conversation part at its first generated turn, and each keeps its own history. A branch runs its
turns in order on one slot (`Branch.jobs`), so a local sequence keeps the history in its KV cache
and evaluates only what the turn adds; the branches in flight share the batch as single prompts
do. Each turn's context is the row's messages up to its user turn, with the branch's earlier
answers put back as the model's template takes them (`context_answer`, docs/study.md
"Conversations"), read from the samples the branch finished: a resumed run rebuilds the history
of the turn it stopped at, and makes each turn once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lrmscope.core.datasets import ConversationRow, Dataset, load_dataset, turn_rows
from lrmscope.core.eval import EvalSettings, Job
from lrmscope.core.generate import TurnPlace
from lrmscope.engine.backend import Backend, Message
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import THINK_CLOSE, AnyMode
from lrmscope.errors import LrmscopeError
from lrmscope.store import Store
from lrmscope.store import conversations as saved

# What stands for a generated answer when a template is checked before anything is generated.
PLACEHOLDER_ANSWER = "…"


def context_answer(raw: str) -> str:
    """What of a generated turn goes back into the conversation: its text after the last think
    close, as the R1 template cuts an assistant turn (docs/study.md "Conversations"); nothing of
    a thought that never closed."""
    _, close, answer = raw.rpartition(THINK_CLOSE)
    return answer if close else ""


def turn_messages(
    conversation: ConversationRow,
    turn: int,
    answers: dict[int, str],
    system: str | None = None,
) -> list[Message]:
    """The messages the model answers at `turn` (from 1): the row's, up to that user turn (its
    assistant turns cut after their last think close), with `answers` (by turn) after the
    earlier user turns of a generated history; `system` first when the row has no system
    message of its own."""
    end = conversation.users[turn - 1]
    messages = (
        []
        if system is None or conversation.messages[0].role == "system"
        else [Message("system", system)]
    )
    for index, message in enumerate(conversation.messages[: end + 1]):
        if message.role == "assistant":  # the file's: as the template would cut it
            message = Message("assistant", message.content.rpartition(THINK_CLOSE)[2])
        messages.append(message)
        if message.role == "user" and index < end and not conversation.scripted:
            number = conversation.users.index(index) + 1
            messages.append(Message("assistant", answers[number]))
    return messages


def scripted_row(spec: str) -> ConversationRow:
    """The conversation `FILE:ROW` names (ROW: the row's `id`, or its line number; a file of one
    row needs none), for a command that answers one turn in the context a file gives: a scripted
    history, whose last user turn is the one to answer."""
    path, _, which = spec.rpartition(":") if ":" in spec else (spec, "", "")
    dataset = load_dataset(path or spec)
    if not dataset.conversations:
        raise LrmscopeError(f"{path or spec} is not a conversation set (JSONL rows of messages)")
    rows = dataset.conversations
    found = (
        rows
        if not which
        else [c for c in rows if c.name == which or (which.isdigit() and c.line == int(which))]
    )
    if len(found) != 1:
        names = ", ".join(c.name or f"line {c.line}" for c in rows[:10])
        wanted = f"no row {which!r}" if which else f"{len(rows)} rows"
        raise LrmscopeError(
            f"{path or spec} has {wanted}: name one as FILE:ID or FILE:LINE (rows: {names})"
        )
    row = found[0]
    if not row.scripted:
        raise LrmscopeError(
            f"row on line {row.line} of {path or spec} is a generated history (user turns only): "
            "its later turns need the model's own answers; run it with `lrmscope eval`, or give "
            "a row with its assistant turns"
        )
    return row


def plans(
    dataset: Dataset, modes: Sequence[AnyMode], parse: Callable[[str], AnyMode]
) -> dict[str, tuple[tuple[AnyMode, ...], ...]]:
    """Each conversation's plans, by its key: the row's own modes (one plan), else one plan per
    mode of `modes`, that mode on every generated turn. A mode a row names is checked here."""
    found = {}
    for conversation in dataset.conversations:
        if conversation.modes is None:
            found[conversation.key] = tuple((m,) * len(conversation.generated) for m in modes)
            continue
        try:
            own = tuple(parse(name) for name in conversation.modes)
        except LrmscopeError as exc:
            raise LrmscopeError(
                f"dataset {dataset.path or dataset.name}: row on line {conversation.line}: {exc}"
            ) from None
        found[conversation.key] = (own,)
    return found


def modes_used(found: dict[str, tuple[tuple[AnyMode, ...], ...]]) -> tuple[AnyMode, ...]:
    """Every mode the plans use, once each, in order."""
    return tuple(dict.fromkeys(m for plans in found.values() for plan in plans for m in plan))


def check_templates(
    render: Callable[[Sequence[Message]], str], dataset: Dataset, system: str | None
) -> None:
    """Render every conversation, whole, with the model's template (a placeholder for each
    answer still to come), so a template that refuses a row (a system message, say) is named
    with the row before anything runs."""
    for conversation in dataset.conversations:
        last = conversation.generated[-1]
        answers = dict.fromkeys(conversation.generated, PLACEHOLDER_ANSWER)
        try:
            render(turn_messages(conversation, last, answers, system))
        except LrmscopeError as exc:
            raise LrmscopeError(
                f"dataset {dataset.path or dataset.name}: row on line {conversation.line}: {exc}"
            ) from None


@dataclass(frozen=True)
class Branch:
    """One conversation under one plan, sample k: its turns, run in order on one slot."""

    conversation: ConversationRow
    conversation_id: int
    prompt_ids: tuple[int, ...]  # of each generated turn
    modes: tuple[AnyMode, ...]  # of each generated turn
    k: int
    run_id: int
    settings: EvalSettings

    def next_job(self, store: Store, slot: Backend) -> Job | None:
        """The job of the first turn this branch has not finished, with the history its earlier
        turns made; None when every turn is done."""
        done = saved.done_turns(store.conn, self.run_id, self.conversation_id, self.k)
        answers: dict[int, str] = {}
        parent = None
        rows = turn_rows(self.conversation)
        for index, turn in enumerate(self.conversation.generated):
            mode = self.modes[index]
            finished = done.get((turn, mode.value))
            if finished is not None:
                answers[turn] = context_answer(finished.raw)
                parent = finished.sample_id
                continue
            messages = turn_messages(self.conversation, turn, answers, self.settings.system)
            prompt, added = with_think_opener(
                slot.render(messages), self.settings.mode.with_mode(mode)
            )
            place = TurnPlace(self.conversation_id, turn, parent)
            return Job(rows[index], self.prompt_ids[index], prompt, added, mode, self.k, place)
        return None

    def jobs(self, store: Store, slot: Backend) -> Iterator[Job]:
        """The branch's turns still to do, each made when the one before it has finished; a turn
        that did not finish (failed, stopped) ends the branch until the run is resumed."""
        tried: set[int] = set()
        while (job := self.next_job(store, slot)) is not None:
            assert job.place is not None
            if job.place.turn in tried:
                return
            tried.add(job.place.turn)
            yield job


def total(dataset: Dataset, found: dict[str, tuple[tuple[AnyMode, ...], ...]], k: int) -> int:
    """The samples a run of this conversation set makes: every generated turn of every plan and
    branch."""
    return sum(len(c.generated) * len(found[c.key]) * k for c in dataset.conversations)


def plan(
    store: Store,
    settings: EvalSettings,
    run_id: int,
    found: dict[str, tuple[tuple[AnyMode, ...], ...]],
) -> tuple[list[Branch], int]:
    """The branches with turns still to do, conversation by conversation (so the K branches of
    one run side by side), and how many turns are done already."""
    dataset = settings.dataset
    branches, finished = [], 0
    done = store.finished_samples(run_id)
    for conversation in dataset.conversations:
        conversation_id = saved.conversation_id(
            store,
            dataset.name,
            conversation.key,
            name=conversation.name,
            messages=[{"role": m.role, "content": m.content} for m in conversation.messages],
            modes=conversation.modes,
        )
        prompt_ids = tuple(
            store.prompt_id(
                dataset.name,
                row.key,
                row.text,
                category=row.category,
                kind=row.kind,
                source=row.source,
            )
            for row in turn_rows(conversation)
        )
        for modes in found[conversation.key]:
            for k in range(settings.samples):
                made = sum(
                    (prompt_id, mode.value, k) in done for prompt_id, mode in zip(prompt_ids, modes)
                )
                finished += made
                if made < len(prompt_ids):
                    branches.append(
                        Branch(
                            conversation, conversation_id, prompt_ids, modes, k, run_id, settings
                        )
                    )
    return branches, finished
