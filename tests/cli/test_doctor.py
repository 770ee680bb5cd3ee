"""`lrmscope doctor` through the real command line: every check reported, a database from a newer
lrmscope and an unwritable database directory reported as failures with the fix, no traceback."""

import os
import sqlite3
import subprocess
import sys

import pytest

from lrmscope.cli.main import main
from lrmscope.core.doctor import database
from lrmscope.store import Store
from lrmscope.store.schema import SCHEMA_VERSION

CHECKS = (
    "python",
    "lrmscope",
    "llama.cpp",
    "llama.cpp system",
    "AMX",
    "threads",
    "embedded model",
    "torch",
    "transformers",
    "database",
)


def doctor(*args):
    done = subprocess.run(
        [sys.executable, "-m", "lrmscope", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def lines_of(out: str) -> dict[str, str]:
    """check name -> its line"""
    found = {}
    for line in out.splitlines()[:-1]:
        status, rest = line.split(" ", 1)
        assert status in ("ok", "warn", "fail"), line
        found[rest.strip().split(":", 1)[0]] = line
    return found


def test_every_check_is_reported_and_a_good_install_passes(tmp_path):
    db = tmp_path / "runs.sqlite"
    Store(db).close()
    code, out, err = doctor("--db", str(db))
    assert code == 0 and err == "" and "Traceback" not in out
    found = lines_of(out)
    assert [name.split(" /")[0] for name in found] == list(CHECKS)
    assert found[f"database {db}"].startswith("ok ") and f"v{SCHEMA_VERSION}" in out
    assert "CPU-only build" in out or "CUDA build" in out
    assert "embedded model: " in found["embedded model"] and found["embedded model"][:2] == "ok"
    assert out.splitlines()[-1].endswith("0 failures")


def test_a_database_of_a_newer_lrmscope_fails_with_the_fix(tmp_path, capsys):
    db = tmp_path / "new.sqlite"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    assert main(["doctor", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "database" in line]
    assert line.startswith("fail database")
    assert f"schema v{SCHEMA_VERSION + 5}" in line and "fix: upgrade lrmscope" in line
    assert out.splitlines()[-1].endswith("1 failures")


def test_a_file_that_is_not_a_database_fails(tmp_path):
    db = tmp_path / "notes.sqlite"
    db.write_text("not sqlite")
    check = database(db)
    assert check.status == "fail" and "not an lrmscope database" in check.detail
    assert check.fix == "choose another database file"


def test_an_old_schema_is_upgraded_on_next_use(tmp_path):
    db = tmp_path / "old.sqlite"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    check = database(db)
    assert check.status == "ok" and f"upgraded to v{SCHEMA_VERSION}" in check.detail


@pytest.fixture
def unwritable(tmp_path):
    """A directory nobody may write to: read-only mode, and immutable when running as root (who
    ignores the mode)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], check=False).returncode != 0:
        folder.chmod(0o755)
        pytest.skip("running as root on a file system without chattr +i")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_an_unwritable_database_directory_is_reported(unwritable):
    code, out, err = doctor("--db", str(unwritable / "sub" / "runs.sqlite"))
    assert code == 1 and "Traceback" not in out + err
    [line] = [line for line in out.splitlines() if line.startswith("fail")]
    assert (
        f"fail database {unwritable}/sub/runs.sqlite: cannot be created: {unwritable} is not "
        "a writable directory (fix: fix its permissions or choose another file with --db)" == line
    )
    check = database(unwritable / "runs.sqlite")
    assert check.status == "fail" and "is not a writable directory" in check.detail


def test_doctor_is_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "doctor" in capsys.readouterr().out
