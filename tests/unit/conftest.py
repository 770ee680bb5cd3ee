"""Fixtures the fast tests share."""

import pytest

from lrmscope.store import Store


@pytest.fixture
def store(tmp_path):
    """A new database (runs.sqlite in the test's folder) through the Store, closed after."""
    store = Store(tmp_path / "runs.sqlite")
    yield store
    store.close()
