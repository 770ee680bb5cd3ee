"""Layers (README.md "Development"): only lrmscope/tui imports Textual; the engine and the store
do not import each other, so the engine is usable from a plain Python script."""

import ast
from pathlib import Path

import lrmscope

ROOT = Path(lrmscope.__file__).parent


def imports(path: Path) -> set[str]:
    """Absolute names of every module imported by path, relative imports resolved."""
    package = ["lrmscope", *path.relative_to(ROOT).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def modules_importing(prefixes: tuple[str, ...], skip: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in ROOT.rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith(skip)
        for name in imports(path)
        if name.startswith(prefixes)
    ]


def test_only_tui_imports_textual():
    assert modules_importing(("textual",), skip="tui/") == []
    # the command line (its commands) starts the TUI; nothing else may reach into it
    assert [
        m for m in modules_importing(("lrmscope.tui",), skip="tui/")
        if not m.startswith("cli/commands/")
    ] == []


def test_engine_does_not_import_store_or_cli():
    offenders = [
        f"{path.name}: {name}"
        for path in (ROOT / "engine").rglob("*.py")
        for name in imports(path)
        if name.startswith(("lrmscope.store", "lrmscope.cli.main", "lrmscope.core.generate", "rich"))
    ]
    assert offenders == []


def test_store_does_not_import_engine():
    offenders = [
        f"{path.name}: {name}"
        for path in (ROOT / "store").rglob("*.py")
        for name in imports(path)
        if name.startswith(("lrmscope.engine", "lrmscope.cli.main", "llama_cpp"))
    ]
    assert offenders == []


def test_the_contract_sees_imports(tmp_path, monkeypatch):
    assert "llama_cpp" in imports(ROOT / "engine" / "llama.py")
    relative = ROOT / "engine" / "_probe_relative_import.py"
    relative.write_text("from ..store import db\nfrom . import trace\n")
    try:
        names = imports(relative)
    finally:
        relative.unlink()
    assert "lrmscope.store" in names and "lrmscope.engine.trace" in names
