"""An intensity cache another process holds locked past SQLite's busy timeout is no cache for this
command (a warning), not a crash: two commands started at once on a new machine both create it."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from carbonshift.config import load_settings
from carbonshift.runtime import build_service


def test_a_locked_cache_is_run_without_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # as another process creating it would, for longer than 5 s
    try:
        settings = load_settings(None, ukci_enabled=False, cache={"path": str(path)})
        with caplog.at_level(logging.WARNING, logger="carbonshift.runtime"):
            service = build_service(settings)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert service.cache is None
    assert any("unavailable" in r.getMessage() and "locked" in r.getMessage() for r in caplog.records)
    # once the lock is gone the next command has its cache again
    assert build_service(settings).cache is not None
