"""The pending-purchase journal: purchases whose outcome the game has not heard yet.

Receipts of app-store purchases (``redeem_receipt``) go through it too (``path``
``/v1/receipts``): the store has charged the player by then, so a crash before the credit is
heard must not lose it.

A purchase is written here, with its idempotency key and exact request body, before it is
sent, and removed when a final outcome arrives (a 2xx, or a refusal such as ``sold_out``).
If the game crashes, is killed, or loses the network in between, the entry survives, and
``resume_pending()`` at the next start re-sends it with the same key: the server either runs it
once or replays the outcome it already stored, so the player is charged exactly once.

The file is small JSON, rewritten atomically (temp file, fsync, ``os.replace``), so a crash
mid-write leaves either the old journal or the new one, never half of one. One client at a time
should own a journal file; within a process, access is serialized by a lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .errors import ShopkeepError
    from .models import PurchaseResult, ReceiptResult

__all__ = ["PendingJournal", "PendingOutcome", "PendingPurchase"]

FORMAT_VERSION = 1

# The server keeps idempotency keys at least 24 h. Past that a re-send could run as a new
# purchase, so an older entry is reported as expired instead of being re-sent.
DEFAULT_MAX_AGE_SECONDS = 23 * 3600.0


@dataclasses.dataclass(frozen=True, slots=True)
class PendingPurchase:
    """A purchase written to the journal and not yet settled."""

    idempotency_key: str
    body: dict[str, Any]
    created_at: datetime
    path: str = "/v1/purchases"

    @classmethod
    def new(cls, key: str, body: dict[str, Any], *, path: str = "/v1/purchases") -> PendingPurchase:
        """An entry for a purchase (or, at ``/v1/receipts``, a receipt) about to be sent now."""
        return cls(idempotency_key=key, body=body, created_at=datetime.now(UTC), path=path)

    @property
    def sku(self) -> str:
        """The sku being bought."""
        return str(self.body["sku"])

    @property
    def quantity(self) -> int:
        """How many units are being bought."""
        return int(self.body.get("quantity", 1))

    def to_json(self) -> dict[str, Any]:
        """The entry as stored in the journal file."""
        return {
            "idempotency_key": self.idempotency_key,
            "method": "POST",
            "path": self.path,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingPurchase:
        """An entry read back from the journal file."""
        return cls(
            idempotency_key=str(data["idempotency_key"]),
            body=dict(data["body"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            path=str(data.get("path", "/v1/purchases")),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PendingOutcome:
    """What ``resume_pending()`` found for one journaled purchase.

    ``state`` is one of:

    - ``"completed"``: the purchase exists (``result``; ``result.replayed`` is true when it had
      already happened before the crash). Removed from the journal.
    - ``"rejected"``: the store refused it for good (``error``, e.g. :class:`SoldOut`). Removed.
    - ``"pending"``: still no answer (``error`` is a :class:`ConnectionError`, a 5xx or a 429).
      Kept for the next ``resume_pending()``.
    - ``"expired"``: older than the server keeps keys; not re-sent, because that could charge
      twice. Removed; reconcile with ``purchases()`` if it matters.
    """

    pending: PendingPurchase
    state: Literal["completed", "rejected", "pending", "expired"]
    result: PurchaseResult | ReceiptResult | None = None
    error: ShopkeepError | None = None


class PendingJournal:
    """The journal file at ``path``; created on first write, parent directories included."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def entries(self) -> list[PendingPurchase]:
        """The unsettled purchases, oldest first."""
        with self._lock:
            return [PendingPurchase.from_json(e) for e in self._read()]

    def add(self, entry: PendingPurchase) -> None:
        """Record ``entry``; an entry with the same key is kept as it was first written.

        Raises ``ValueError`` if the key is journaled for a different purchase: sending it
        would be refused (``idempotency_key_reused``) and settle, i.e. lose, the pending one.
        """
        with self._lock:
            entries = self._read()
            for existing in entries:
                if existing["idempotency_key"] == entry.idempotency_key:
                    if existing["body"] != entry.body:
                        raise ValueError(
                            f"idempotency key {entry.idempotency_key!r} is pending for "
                            f"another purchase ({existing['body']})"
                        )
                    return
            entries.append(entry.to_json())
            self._write(entries)

    def remove(self, key: str) -> None:
        """Forget the entry with idempotency key ``key`` (no-op if absent)."""
        with self._lock:
            entries = self._read()
            kept = [e for e in entries if e["idempotency_key"] != key]
            if len(kept) != len(entries):
                self._write(kept)

    def _read(self) -> list[dict[str, Any]]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # A damaged journal is raised, never dropped: it may hold a purchase the player paid for.
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError(f"{self.path} is not a Shopkeep pending journal")
        return list(data["entries"])

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": FORMAT_VERSION, "entries": entries}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory itself is flushed (POSIX); Windows cannot
    # open a directory, and its rename is durable enough for this.
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_expired(entry: PendingPurchase, max_age_seconds: float, now: datetime | None = None) -> bool:
    """Whether ``entry`` is too old to re-send safely."""
    now = now or datetime.now(UTC)
    return (now - entry.created_at).total_seconds() > max_age_seconds
