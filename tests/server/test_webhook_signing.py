"""Webhook signatures: what the delivery worker signs verifies with the `standardwebhooks`
package (the convention's own code) and with the SDK's `shopkeep.webhooks.verify`; a changed
body, an old timestamp, a wrong secret and a malformed delivery are refused by both."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as PackageRefusal

from shopkeep.events import Event
from shopkeep.webhooks import (
    BadSignature,
    MalformedWebhook,
    TimestampOutsideTolerance,
    WebhookVerificationError,
    verify,
)
from shopkeep_server.delivery import body_of, signature_header
from shopkeep_server.store.webhooks import new_secret, shown_secret

EVENT: dict[str, Any] = {
    "id": 42,
    "type": "stock.sold_out",
    "player_id": "p1",
    "created_at": "2026-12-01T12:00:00.123456Z",
    "data": {"sku": "dragon_egg", "remaining": 0},
}


def _delivery(
    secrets: list[bytes], *, at: dt.datetime | None = None, event: dict[str, Any] = EVENT
) -> tuple[bytes, dict[str, str]]:
    """A body and headers exactly as the delivery worker sends them."""
    at = at or dt.datetime.now(dt.UTC)
    body = body_of(event)
    msg_id = str(event["id"])
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature_header(secrets, msg_id, at, body),
    }


def _both_refuse(body: bytes, headers: dict[str, str], secret: str, error: type) -> None:
    with pytest.raises(PackageRefusal):
        Webhook(secret).verify(body, headers)
    with pytest.raises(error):
        verify(body, headers, secret)


def test_a_delivery_verifies_with_the_package_and_with_the_sdk() -> None:
    key = new_secret()
    secret = shown_secret(key)
    assert secret.startswith("whsec_")
    body, headers = _delivery([key])
    assert Webhook(secret).verify(body, headers) == EVENT
    event = verify(body, headers, secret)
    assert event == Event(
        id=42,
        type="stock.sold_out",
        player_id="p1",
        created_at=dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.UTC),
        data=EVENT["data"],
    )
    # Header names in any case, as a web framework may hand them over.
    assert verify(body, {k.title(): v for k, v in headers.items()}, secret) == event


def test_a_changed_body_is_refused() -> None:
    key = new_secret()
    body, headers = _delivery([key])
    changed = body.replace(b'"remaining":0', b'"remaining":1')
    assert changed != body
    _both_refuse(changed, headers, shown_secret(key), BadSignature)


def test_a_changed_id_is_refused() -> None:
    key = new_secret()
    body, headers = _delivery([key])
    _both_refuse(body, {**headers, "webhook-id": "43"}, shown_secret(key), BadSignature)


def test_a_wrong_secret_is_refused() -> None:
    body, headers = _delivery([new_secret()])
    _both_refuse(body, headers, shown_secret(new_secret()), BadSignature)


@pytest.mark.parametrize("minutes", [-6, 6, -60 * 24])
def test_a_timestamp_outside_the_tolerance_is_refused(minutes: int) -> None:
    key = new_secret()
    at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    body, headers = _delivery([key], at=at)
    _both_refuse(body, headers, shown_secret(key), TimestampOutsideTolerance)
    # A wider tolerance of the receiver's own choosing lets it through.
    assert verify(body, headers, shown_secret(key), tolerance=dt.timedelta(days=2)).id == 42


def test_an_old_delivery_replayed_is_refused_even_with_a_valid_signature() -> None:
    key = new_secret()
    body, headers = _delivery([key])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    with pytest.raises(TimestampOutsideTolerance):
        verify(body, headers, shown_secret(key), now=later)


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = new_secret(), new_secret()
    body, headers = _delivery([new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for key in (old, new):
        assert Webhook(shown_secret(key)).verify(body, headers) == EVENT
        assert verify(body, headers, shown_secret(key)).id == 42
    _both_refuse(body, headers, shown_secret(new_secret()), BadSignature)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": None},
        {"webhook-timestamp": None},
        {"webhook-signature": None},
        {"webhook-timestamp": "soon"},
        {"webhook-timestamp": "1e9"},
    ],
    ids=["no-id", "no-timestamp", "no-signature", "timestamp-text", "timestamp-float"],
)
def test_malformed_headers_are_refused(change: dict[str, str | None]) -> None:
    key = new_secret()
    body, headers = _delivery([key])
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(MalformedWebhook):
        verify(body, headers, shown_secret(key))


def test_signatures_of_another_version_or_broken_base64_do_not_count() -> None:
    key = new_secret()
    body, headers = _delivery([key])
    good = headers["webhook-signature"]
    headers["webhook-signature"] = "v2,abc v1,%%%not-base64 " + good
    assert verify(body, headers, shown_secret(key)).id == 42
    headers["webhook-signature"] = good.replace("v1,", "v2,")
    with pytest.raises(BadSignature):
        verify(body, headers, shown_secret(key))


def test_a_signed_body_that_is_not_an_event_is_malformed() -> None:
    key = new_secret()
    not_an_event = {**EVENT, "data": "text"}  # data must be an object
    body, headers = _delivery([key], event=not_an_event)
    with pytest.raises(MalformedWebhook):
        verify(body, headers, shown_secret(key))
    # ... and a secret that is not base64 is the caller's mistake, named as such.
    body, headers = _delivery([key])
    with pytest.raises(MalformedWebhook):
        verify(body, headers, "whsec_not base64!")


def test_every_refusal_is_a_webhook_verification_error() -> None:
    for error in (BadSignature, MalformedWebhook, TimestampOutsideTolerance):
        assert issubclass(error, WebhookVerificationError)


def test_the_body_is_the_events_compact_json() -> None:
    assert json.loads(body_of(EVENT)) == EVENT
    assert b" " not in body_of({"id": 1, "data": {"a": [1, 2]}})
