"""Verifying the store's webhooks (Standard Webhooks: https://www.standardwebhooks.com)::

    from shopkeep.webhooks import verify, WebhookVerificationError

    def receive(body: bytes, headers: Mapping[str, str]) -> None:
        try:
            event = verify(body, headers, secret)   # the endpoint's whsec_... secret
        except WebhookVerificationError:
            return 400                               # not from the store: ignore it
        if seen(event.id):                           # a retry of one already handled
            return 204
        handle(event)

``verify`` checks the HMAC-SHA256 signature over ``webhook-id.webhook-timestamp.body`` with the
endpoint's secret (any of the space-separated ``v1,`` signatures may match: during a secret
rotation the store signs with the old and the new secret), refuses a timestamp further than
``tolerance`` from now (a replayed old delivery), and returns the body as a typed
:class:`~shopkeep.events.Event`. Deliveries are at least once: the same event may come again
(``webhook-id`` and ``event.id`` stay the same), so a receiver keeps the ids it handled.

Errors, all :class:`WebhookVerificationError`::

    WebhookVerificationError
     ├── MalformedWebhook         headers missing or unreadable, a bad secret, a body that is
     │                            not an event
     ├── TimestampOutsideTolerance
     └── BadSignature             no signature matches: wrong secret or a changed body

Standard library only (``hmac``, ``hashlib``, ``base64``, ``json``), like the rest of the SDK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from .events import Event

__all__ = [
    "BadSignature",
    "MalformedWebhook",
    "TimestampOutsideTolerance",
    "WebhookVerificationError",
    "verify",
]

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = timedelta(minutes=5)


class WebhookVerificationError(Exception):
    """A delivery that cannot be trusted to come from the store; handle nothing of it."""


class MalformedWebhook(WebhookVerificationError):
    """A header is missing or unreadable, the secret is not a ``whsec_`` secret, or the body is
    not an event."""


class TimestampOutsideTolerance(WebhookVerificationError):
    """``webhook-timestamp`` is further from now than the tolerance: an old delivery replayed,
    or a clock far off."""


class BadSignature(WebhookVerificationError):
    """No signature matches: signed with another secret, or the body or headers changed."""


def _secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedWebhook("the secret is not a whsec_ secret (base64)") from exc
    if not key:
        raise MalformedWebhook("the secret is empty")
    return key


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> Event:
    """The event ``body`` carries, once its signature and timestamp check out (see the module
    documentation); raises a :class:`WebhookVerificationError` otherwise. ``headers`` are the
    request's headers (any case); ``now`` is for tests."""
    found = {name.lower(): value for name, value in headers.items()}
    msg_id = found.get("webhook-id", "")
    stamp = found.get("webhook-timestamp", "")
    signatures = found.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise MalformedWebhook("webhook-id, webhook-timestamp and webhook-signature are required")
    if not stamp.isdigit() or len(stamp) > 12:
        raise MalformedWebhook(f"webhook-timestamp is not a Unix time: {stamp[:20]!r}")
    sent_at = datetime.fromtimestamp(int(stamp), UTC)
    moment = now or datetime.now(UTC)
    if abs(moment - sent_at) > tolerance:
        raise TimestampOutsideTolerance(
            f"webhook-timestamp {sent_at.isoformat()} is more than {tolerance} from now"
        )
    key = _secret_bytes(secret)
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + bytes(body)
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    if not any(
        hmac.compare_digest(expected, candidate) for candidate in _v1_signatures(signatures)
    ):
        raise BadSignature("no signature matches this secret")
    try:
        event = Event.from_wire(json.loads(body))
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedWebhook(f"the body is not an event: {exc}") from exc
    if str(event.id) != msg_id:
        raise MalformedWebhook(f"webhook-id {msg_id!r} is not the event's id {event.id}")
    return event


def _v1_signatures(header: str) -> list[bytes]:
    """The ``v1,<base64>`` signatures of a ``webhook-signature`` header (others are ignored)."""
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
