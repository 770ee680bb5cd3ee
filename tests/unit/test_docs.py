"""The repository explains itself: every document the code and the docs cite is in it.

Scans the package, the tests, the benchmarks, docs/ and the top-level README.md, BENCHMARKS.md
and pyproject.toml for Markdown paths and checks that each one exists in the repository: a path
with a folder is taken from the repository root (or from the citing file's folder, as Markdown
links are), a bare file name from the root, the citing file's folder or docs/. A citation of a
section, a Markdown path followed by a heading in double quotes (docs/study.md and the heading
"Metrics", say), must name a heading of that file; a heading may be wrapped over two comment or
docstring lines. No llama.cpp, no model: a plain text scan.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("lrmscope", "tests", "bench", "docs")
FILES = ("README.md", "BENCHMARKS.md", "pyproject.toml")
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".sh"}
SKIP = {"__pycache__", "__snapshots__"}

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
# A Markdown path: optional ./ ../ or / in front, folders, a name ending in .md.
_MD = r"(?:\.{0,2}/)?(?:[\w.-]+/)*[\w.-]*\w\.md"
_MD_PATH = re.compile(rf"(?<![\w/.-])({_MD})(?![\w-])")
# A path followed by a quoted heading (the quotes may be escaped, inside a Python string).
_SECTION = re.compile(rf"(?<![\w/.-])({_MD})\s+\\?\"([^\"\\\n]{{1,100}}?)\\?\"")
# Where a line ends and the next continues a comment or docstring: joined with one space.
_CONTINUATION = re.compile(r"[ \t]*\n[ \t]*(?:#+[ \t]*)?")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in FILES if (ROOT / name).is_file()]
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and not SKIP & set(path.parts):
                files.append(path)
    return files


def resolve(reference: str, citing: Path) -> Path | None:
    """The repository file a Markdown path names, or None when there is none."""
    if reference.startswith("/"):
        candidates = [Path(reference)]
    elif "/" in reference.lstrip("./"):
        candidates = [ROOT / reference, citing.parent / reference]
    else:
        candidates = [ROOT / reference, citing.parent / reference, ROOT / "docs" / reference]
    for candidate in candidates:
        path = candidate.resolve()
        if path.is_file() and path.is_relative_to(ROOT):
            return path
    return None


def headings(path: Path) -> set[str]:
    """The headings of a Markdown file (any level), outside fenced code blocks."""
    text = path.read_text(encoding="utf-8")
    pieces = re.split(r"^```.*$", text, flags=re.MULTILINE)
    outside = "\n".join(pieces[::2])  # the even pieces lie outside the fences
    return {match.group(1) for match in _HEADING.finditer(outside)}


def problems(text: str, citing: Path) -> list[str]:
    """Every citation in `text` (the contents of `citing`) that names no document or section of
    the repository, as lines for the failure message."""
    name = citing.relative_to(ROOT) if citing.is_relative_to(ROOT) else citing
    text = _URL.sub(" ", text)
    found = []
    for match in _MD_PATH.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if resolve(match.group(1), citing) is None:
            found.append(f"{name}:{line}: cites {match.group(1)}, which is not in the repository")
    joined = _CONTINUATION.sub(" ", text)
    for match in _SECTION.finditer(joined):
        reference, heading = match.group(1), " ".join(match.group(2).split())
        target = resolve(reference, citing)
        if target is not None and heading not in headings(target):
            found.append(f'{name}: cites {reference} "{heading}", which is no heading of it')
    return found


def test_every_cited_document_and_section_exists():
    found = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += problems(text, path)
    assert not found, "citations of documents or sections that do not exist:\n" + "\n".join(found)


def test_the_study_page_has_the_sections_the_code_cites():
    """The sections docs/study.md promises (the code cites them by these exact headings)."""
    expected = {
        "Trace anatomy", "Think opener", "Decoding modes", "MoreThink", "What is judged",
        "Sampling", "Metrics", "Prompt kinds", "Judges", "RS-Match", "Llama Guard 3",
        "HarmBench classifier", "OpenAI Moderation", "Datasets", "SafeChain construction",
        "Machines", "Where lrmscope differs on purpose",
    }  # fmt: skip
    assert expected <= headings(ROOT / "docs" / "study.md")


# The checker itself, on made-up text. Names of missing files are built from pieces so that this
# file cites nothing missing itself.
MISSING = "REFERENCE" + ".md"
STUDY = "docs/study" + ".md"


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        (f"# see {MISSING} section 8\n", True),
        (f'"""Facts ({MISSING} 5.1)."""\n', True),
        (f"path = root / 'shared' / '{MISSING}'\n", True),
        (f"# /work/shared/{MISSING}\n", True),
        ("# docs/nothing-here" + ".md\n", True),
        (f'# {STUDY} "Metrics": Safe@K\n', False),
        (f'# {STUDY} "No such section"\n', True),
        (f'"""As the study does ({STUDY} "SafeChain\n    construction")."""\n', False),
        (f'# the prefills ({STUDY} "Decoding\n# modes")\n', False),
        (f'# ({STUDY} "Decoding\n# mode")\n', True),
        (f'help="the cap ({STUDY} \\"MoreThink\\")"\n', False),
        (f'help="the cap ({STUDY} \\"Less\\")"\n', True),
        ("see BENCHMARKS" + ".md and docs/bad-inputs" + ".md\n", False),
        ("https://github.com/org/repo/blob/main/" + MISSING + "\n", False),
    ],
)
def test_the_checker_finds_bad_citations(text, bad):
    assert bool(problems(text, ROOT / "lrmscope" / "example.py")) is bad
