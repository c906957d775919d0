"""The canonical store: tables, column types, engine and migrations."""

from clm_hub.store.database import (
    current_revision,
    head_revision,
    open_engine,
    open_store,
    upgrade,
)

__all__ = ["current_revision", "head_revision", "open_engine", "open_store", "upgrade"]
