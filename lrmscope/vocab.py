"""The words every layer shares, defined once: the judged parts of a trace, a verdict's labels,
the states of a run or sample, and the defaults more than one command uses."""

from __future__ import annotations

from typing import Literal, get_args

Label = Literal["safe", "unsafe", "unparsed"]
Status = Literal["running", "done", "interrupted", "failed"]

PARTS = ("think", "answer", "full")  # the judged texts (docs/study.md "What is judged")
LABELS: tuple[Label, ...] = get_args(Label)
STATUSES: tuple[Status, ...] = get_args(Status)
DEFAULT_JUDGE = "rs-match"
HUMAN = "human"  # the judge name of human labels
