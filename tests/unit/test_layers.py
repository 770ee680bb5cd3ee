"""Layers (README.md "Development"): only lrmscope/tui imports Textual; the engine and the store
do not import each other, so the engine is usable from a plain Python script."""

import ast
import re
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
        m
        for m in modules_importing(("lrmscope.tui",), skip="tui/")
        if not m.startswith("cli/commands/")
    ] == []


def offenders(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / layer).rglob("*.py")
        for name in imports(path)
        if name == "lrmscope.cli" or name.startswith(forbidden)
    ]


def test_engine_does_not_import_store_core_cli_or_tui():
    forbidden = ("lrmscope.store", "lrmscope.core", "lrmscope.cli.", "lrmscope.tui", "rich")
    assert offenders("engine", forbidden) == []


def test_store_does_not_import_engine_core_cli_or_tui():
    forbidden = ("lrmscope.engine", "lrmscope.core", "lrmscope.cli.", "lrmscope.tui", "llama_cpp")
    assert offenders("store", forbidden) == []


def test_core_imports_neither_cli_nor_tui():
    assert offenders("core", ("lrmscope.cli.", "lrmscope.tui", "rich", "textual")) == []


def test_the_contract_sees_imports(tmp_path, monkeypatch):
    assert "llama_cpp" in imports(ROOT / "engine" / "llama.py")
    relative = ROOT / "engine" / "_probe_relative_import.py"
    relative.write_text("from ..store import db\nfrom . import trace\n")
    try:
        names = imports(relative)
    finally:
        relative.unlink()
    assert "lrmscope.store" in names and "lrmscope.engine.trace" in names


def test_only_cli_imports_argparse():
    # settings declare their flags as plain data (engine/settings.py `option`); cli/ builds them
    assert modules_importing(("argparse",), skip="cli/") == []


# SQL as the store writes it (verbs in capitals), and the calls that run it.
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|VACUUM)\b")
RUNS_SQL = {"execute", "executemany", "executescript"}


def sql_in(source: str) -> list[str]:
    """The SQL of a module: string literals (f-string parts too) with an SQL verb, calls of
    execute / executemany / executescript, and sqlite-utils tables (`x.db["runs"]`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if verb := SQL.search(node.value):
                found.append(f"line {node.lineno}: {verb.group()}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in RUNS_SQL:
                found.append(f"line {node.lineno}: .{node.func.attr}(")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            if node.value.attr == "db":
                found.append(f"line {node.lineno}: .db[]")
    return found


def test_sql_is_only_in_the_store():
    offenders = [
        f"{path.relative_to(ROOT)} {hit}"
        for path in ROOT.rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith("store/")
        for hit in sql_in(path.read_text())
    ]
    assert offenders == []


def test_the_sql_contract_sees_sql():
    probe = (
        "def f(conn, where):\n"
        '    conn.execute(f"SELECT id FROM runs WHERE {where}")\n'
        '    sql = ("UPDATE runs SET title = ?"\n'
        '           " WHERE id = ?")\n'
        '    store.db["runs"].update(1, {})\n'
    )
    assert sorted(sql_in(probe)) == [
        "line 2: .execute(",
        "line 2: SELECT",
        "line 3: UPDATE",
        "line 5: .db[]",
    ]
    assert sql_in('"""Select a run, update its title; delete it."""') == []
