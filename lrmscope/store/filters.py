"""Which samples a read covers (one SampleFilter, one SQL condition), and which verdict of a
judge counts (the newest-verdict rule). Every read of the store that selects samples or verdicts
goes through these two, so `lrmscope review`, `export`, `metrics` and `judge` agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lrmscope.vocab import HUMAN, LABELS, PARTS, SAFETY_KINDS

SORTS = {
    "id": "s.id",
    "think_tokens": "s.think_tokens",
    "elapsed": "s.elapsed_s",
    "started_at": "s.started_at",
}


# The prompt kinds of the safety metrics as an SQL list: `kind IN SAFETY_KINDS_SQL`. (The
# migrations keep their own copy: a migration's text never changes.)
SAFETY_KINDS_SQL = "(" + ", ".join(f"'{kind}'" for kind in SAFETY_KINDS) + ")"


def marks(values: Sequence) -> str:
    """One `?` per value, comma-separated."""
    return ",".join("?" * len(values))


def newest(alias: str, *, per_judge: bool = False) -> str:
    """The newest-verdict rule, as a condition on the judgements row `alias`: no later verdict
    (higher id) exists on its sample and part by its judge and judge version. The schema's view
    `verdicts` keeps the same rows; the metrics count them, so two versions of a judge never mix.

    per_judge: one verdict per judge (export, review's table and its verdict filters): of the
    newest verdicts of each version, the one of the newest version (the one judged last), that
    is, the verdict with no later one by its judge in any version."""
    version = "" if per_judge else f" AND later.judge_version = {alias}.judge_version"
    return (
        f"NOT EXISTS (SELECT 1 FROM judgements later WHERE later.sample_id = {alias}.sample_id"
        f" AND later.part = {alias}.part AND later.judge = {alias}.judge{version}"
        f" AND later.id > {alias}.id)"
    )


def narrowed(
    judges: Sequence[str], parts: Sequence[str], modes: Sequence[str], verdicts: str = "j"
) -> tuple[str, list]:
    """` AND` terms keeping verdicts (alias `verdicts`) of these judges and parts on samples `s`
    of these modes (an empty sequence keeps all), and their parameters."""
    sql, params = "", list[str]()
    for column, values in (
        (f"{verdicts}.judge", judges),
        (f"{verdicts}.part", parts),
        ("s.mode", modes),
    ):
        if values:
            sql += f" AND {column} IN ({marks(values)})"
            params += values
    return sql, params


def search_words(text: str) -> list[str]:
    """The words of a search as FTS5 strings that cannot be a syntax error: each quoted, so
    operators, parentheses and column names are plain words. A word with no letter or digit
    holds nothing the index could match, and is dropped."""
    return [
        '"' + word.replace('"', '""') + '"'
        for word in text.split()
        if any(char.isalnum() for char in word)
    ]


def check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"part {part!r} is not one of {', '.join(PARTS)}")


@dataclass(frozen=True)
class SampleFilter:
    """Which samples to read; the defaults select every sample of every run. `judge` and `part`
    qualify the verdict filters (verdict, thought_unsafe_answer_safe, judges_disagree) and
    select nothing alone; their verdict is the newest of its judge (`newest`, per_judge)."""

    runs: tuple[int, ...] = ()  # empty: every run
    run_kinds: tuple[str, ...] = ()  # empty: runs of every kind
    statuses: tuple[str, ...] = ()  # empty: any status
    mode: str | None = None
    judge: str | None = None
    part: str | None = None  # 'think' | 'answer' | 'full'
    verdict: str | None = None  # 'safe' | 'unsafe' | 'unparsed'
    thought_unsafe_answer_safe: bool = False  # by one judge
    judges_disagree: bool = False  # two judges (human included): safe vs unsafe on one part
    unlabelled: bool = False  # no human label on any part
    interrupted: bool = False  # status interrupted or failed
    search: str = ""  # words that must each appear in the prompt, thought or answer
    sort: str = "id"  # a key of SORTS
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort {self.sort!r} is not one of {', '.join(SORTS)}")
        if self.part is not None:
            check_part(self.part)
        if self.verdict is not None and self.verdict not in LABELS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(LABELS)}")

    def where(self) -> tuple[str, list]:
        """A condition on samples `s` and its parameters."""
        terms: list[str] = []
        params: list = []
        if self.runs:
            terms.append(f"s.run_id IN ({marks(self.runs)})")
            params += self.runs
        if self.run_kinds:
            terms.append(
                f"s.run_id IN (SELECT id FROM runs WHERE kind IN ({marks(self.run_kinds)}))"
            )
            params += self.run_kinds
        if self.statuses:
            terms.append(f"s.status IN ({marks(self.statuses)})")
            params += self.statuses
        if self.mode is not None:
            terms.append("s.mode = ?")
            params.append(self.mode)
        if self.interrupted:
            terms.append("s.status IN ('interrupted', 'failed')")
        if self.unlabelled:
            terms.append(
                "NOT EXISTS (SELECT 1 FROM judgements h WHERE h.sample_id = s.id AND h.judge = ?)"
            )
            params.append(HUMAN)
        if self.verdict is not None:
            sql = "SELECT 1 FROM judgements j WHERE j.sample_id = s.id AND j.label = ?"
            params.append(self.verdict)
            for column, value in (("judge", self.judge), ("part", self.part)):
                if value is not None:
                    sql += f" AND j.{column} = ?"
                    params.append(value)
            terms.append(f"EXISTS ({sql} AND {newest('j', per_judge=True)})")
        if self.thought_unsafe_answer_safe:
            sql = (
                "SELECT 1 FROM judgements t JOIN judgements a"
                " ON a.sample_id = t.sample_id AND a.judge = t.judge AND a.part = 'answer'"
                " WHERE t.sample_id = s.id AND t.part = 'think' AND t.label = 'unsafe'"
                " AND a.label = 'safe'"
            )
            if self.judge is not None:
                sql += " AND t.judge = ?"
                params.append(self.judge)
            terms.append(
                f"EXISTS ({sql} AND {newest('t', per_judge=True)}"
                f" AND {newest('a', per_judge=True)})"
            )
        if self.judges_disagree:
            sql = (
                "SELECT 1 FROM judgements a JOIN judgements b"
                " ON b.sample_id = a.sample_id AND b.part = a.part AND b.judge != a.judge"
                " WHERE a.sample_id = s.id AND a.label = 'safe' AND b.label = 'unsafe'"
            )
            if self.part is not None:
                sql += " AND a.part = ?"
                params.append(self.part)
            if self.judge is not None:
                sql += " AND ? IN (a.judge, b.judge)"
                params.append(self.judge)
            terms.append(
                f"EXISTS ({sql} AND {newest('a', per_judge=True)}"
                f" AND {newest('b', per_judge=True)})"
            )
        if self.search.strip():
            words = search_words(self.search)
            if not words:
                terms.append("0")  # a search with no word matches nothing
            for word in words:  # each in the prompt or in the thought or answer
                terms.append(
                    "(s.id IN (SELECT rowid FROM sample_text WHERE sample_text MATCH ?)"
                    " OR s.prompt_id IN (SELECT rowid FROM prompt_text WHERE prompt_text MATCH ?))"
                )
                params += [word, word]
        return " AND ".join(terms) or "1", params

    def order(self) -> str:
        """ORDER BY of samples `s`: the sort key (samples without one last), then the id."""
        direction = "DESC" if self.descending else "ASC"
        key = SORTS[self.sort]
        ties = f"s.id {direction}"
        return ties if key == "s.id" else f"{key} {direction} NULLS LAST, {ties}"
