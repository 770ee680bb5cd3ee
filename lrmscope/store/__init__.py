"""SQLite storage: schema and migrations, the database handle, the streaming sample writer."""

from lrmscope.store.db import BUSY_TIMEOUT_S, Store, default_db_path
from lrmscope.store.writer import SampleWriter

__all__ = ["BUSY_TIMEOUT_S", "SampleWriter", "Store", "default_db_path"]
