"""The words every layer shares, defined once: the judged parts of a trace, a verdict's labels,
the states of a run or sample, and the defaults more than one command uses."""

from __future__ import annotations

from typing import Literal, get_args

Label = Literal["safe", "unsafe", "unparsed"]
Status = Literal["running", "done", "interrupted", "failed"]
PromptKind = Literal["harmful", "benign", "unknown", "reasoning"]  # what a dataset says it is

PARTS = ("think", "answer", "full")  # the judged texts (docs/study.md "What is judged")
LABELS: tuple[Label, ...] = get_args(Label)
STATUSES: tuple[Status, ...] = get_args(Status)
PROMPT_KINDS: tuple[PromptKind, ...] = get_args(PromptKind)
BENIGN: PromptKind = "benign"  # the kind whose verdicts count over-refusal, not safety
REASONING: PromptKind = "reasoning"  # a task with a reference answer: accuracy, not safety
SAFETY_KINDS: tuple[PromptKind, ...] = ("harmful", "unknown")  # what the safety metrics average
DEFAULT_JUDGE = "rs-match"
HUMAN = "human"  # the judge name of human labels
JURY = "jury"  # the judge name of verdicts made of other judges' saved verdicts (core/jury.py)
