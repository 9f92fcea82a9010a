"""Per-run report tokens: what a remote run's tracker sends back with its report.

A token is derived from a per-database key and the run id, so every launch of a run, by any daemon,
sends the same token in the same bootstrap (a provider's idempotency key, such as EC2's ClientToken,
then sees one request, never two that disagree). Only its hash is stored with the run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from carbonshift.scheduler.lifecycle import Store
from carbonshift.scheduler.models import DaemonKeyRow

__all__ = ["ReportTokens", "hash_token"]

_KEY_NAME = "report-token"


def hash_token(token: str) -> str:
    """What is stored for a token (SHA-256, hex): compared in constant time, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReportTokens:
    """The database's token key, read (or made, once, by the first daemon) on first use."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._key: bytes | None = None

    def _load_key(self) -> bytes:
        with self.store.tx() as s:
            value = s.scalar(select(DaemonKeyRow.value).where(DaemonKeyRow.name == _KEY_NAME))
        if value is None:
            try:
                with self.store.tx() as s:
                    s.add(DaemonKeyRow(name=_KEY_NAME, value=secrets.token_hex(32)))
            except IntegrityError:
                pass  # another daemon made it first: use theirs
            with self.store.tx() as s:
                value = s.scalar(select(DaemonKeyRow.value).where(DaemonKeyRow.name == _KEY_NAME))
        assert value is not None
        return bytes.fromhex(value)

    def token(self, run_id: str) -> str:
        """The run's report token (the same for every launch of it, by any daemon on this database)."""
        if self._key is None:
            self._key = self._load_key()
        digest = hmac.new(self._key, f"report-token:{run_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    @staticmethod
    def matches(token: str, expected_hash: str | None) -> bool:
        """Whether `token` hashes to `expected_hash`; both SHA-256 hex digests of equal length, so
        compare_digest runs in constant time."""
        return expected_hash is not None and hmac.compare_digest(hash_token(token or ""), expected_hash)
