"""SQLite storage, and the only place with SQL: schema and migrations (schema.py), the database
handle and its writes (db.py), the streaming sample writer (writer.py), the one sample filter and
newest-verdict rule (filters.py), and the reads of review and export (reads.py) and of the
metrics (counts.py)."""

from lrmscope.store.db import BUSY_TIMEOUT_S, Store, default_db_path
from lrmscope.store.writer import SampleWriter

__all__ = ["BUSY_TIMEOUT_S", "SampleWriter", "Store", "default_db_path"]
