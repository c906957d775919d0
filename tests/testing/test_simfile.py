"""A simulator's SQLite file: temporary ones go away, given ones start empty, batches nest."""

from __future__ import annotations

from pathlib import Path

from clm_hub.testing.simfile import SimulatorFile


def test_temporary_file_is_removed_on_close() -> None:
    sim = SimulatorFile(None, name="tool")
    assert sim.path.exists() and sim.path.name == "tool.sqlite3"
    sim.close()
    assert not sim.path.parent.exists()


def test_a_given_file_starts_empty_and_stays(tmp_path: Path) -> None:
    path = tmp_path / "sim.sqlite3"
    path.write_bytes(b"left over from an earlier run")
    sim = SimulatorFile(path, name="tool")
    sim.db.execute("CREATE TABLE t (v)")
    sim.close()
    assert path.exists()


def test_nested_batches_are_one_transaction(tmp_path: Path) -> None:
    sim = SimulatorFile(tmp_path / "sim.sqlite3", name="tool")
    sim.db.execute("CREATE TABLE t (v)")
    with sim.batch():
        sim.db.execute("INSERT INTO t VALUES (1)")
        with sim.batch():
            sim.db.execute("INSERT INTO t VALUES (2)")
        assert sim.db.in_transaction
    assert not sim.db.in_transaction
    assert sim.db.execute("SELECT COUNT(*) FROM t").fetchone() == (2,)
    sim.close()
