"""A comparison: one prompt under several decoding modes, K samples of each, side by side.

Each (mode, k) is a column with a seed of its own, derived from the run's seed as eval derives
its samples' seeds (`evaluation.sample_seed`), so a column is repeatable from the run's seed. The
columns decode together through one `BatchDecoder`, one sequence each: they share one evaluation
of the prompt. The screen is lrmscope/tui/compare/; the command is
lrmscope/cli/commands/compare.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lrmscope.core.datasets import prompt_key
from lrmscope.core.eval import check_plan, sample_seed
from lrmscope.engine.backend import Backend
from lrmscope.engine.generation import Generation
from lrmscope.engine.guard import GuardJudges
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import MAX_SEED, AnyMode, ModeSettings, SamplerSettings

# The dataset a compare run's prompts are saved under.
DATASET = "compare"


@dataclass(frozen=True)
class Column:
    mode: AnyMode
    k: int
    seed: int


@dataclass(frozen=True)
class CompareSettings:
    text: str  # the user's prompt
    modes: tuple[AnyMode, ...]
    samples: int
    sampler: SamplerSettings  # its seed is the first run's
    mode: ModeSettings  # the thinking parameters every column shares; its mode is unused

    def __post_init__(self) -> None:
        check_plan(self.modes, self.samples, self.sampler)
        self.mode.check_answer_room(self.modes, self.sampler.max_tokens)

    @property
    def width(self) -> int:
        """The number of columns."""
        return len(self.modes) * self.samples

    def columns(self, seed: int) -> tuple[Column, ...]:
        """The columns of a run with this seed: mode by mode, k by k."""
        key = prompt_key(self.text)
        return tuple(
            Column(mode, k, sample_seed(seed, key, mode, k))
            for mode in self.modes
            for k in range(self.samples)
        )

    def prompt(self, rendered: str, column: Column) -> tuple[str, bool]:
        """The column's prompt P from the template's rendering (the think opener depends on the
        mode), and whether the opener was added."""
        return with_think_opener(rendered, self.mode.with_mode(column.mode))

    def generation(
        self, backend: Backend, prompt: str, column: Column, guard_judges: GuardJudges
    ) -> Generation:
        """The column's generation from its prompt P; a guarded mode's guard judges with the
        command's judge (`guard_judges`, which the columns share)."""
        return Generation(
            backend,
            prompt,
            sampler=replace(self.sampler, seed=column.seed),
            mode=self.mode.with_mode(column.mode),
            guard_judge=guard_judges.of(column.mode),
            user_text=self.text,  # what a guarded mode's judge sees as the prompt
        )


def next_seed(seed: int) -> int:
    """The seed of a re-run: the next one, so the runs of a session are repeatable in order."""
    return (seed + 1) % (MAX_SEED + 1)
