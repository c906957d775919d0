"""The canonical store: tables, column types, engine and migrations."""

from clm_hub.store.database import current_revision, head_revision, open_engine, upgrade

__all__ = ["current_revision", "head_revision", "open_engine", "upgrade"]
