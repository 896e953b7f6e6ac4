"""The embedded backend: one SQLite file, shared safely by several processes."""

from app.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
