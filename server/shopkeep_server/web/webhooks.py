"""Webhook endpoints on the studio page: the list with each endpoint's state (and why one is
disabled), adding one (its secret shown once), rotating the secret, disabling, enabling,
deleting, the delivery log and "send again". The store's functions are the API's
(store/webhooks.py); adding, rotating and sending again run once per form key, as the API's
Idempotency-Key."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response as WebResponse

from ..errors import NotFound, ValidationFailed
from ..runtime import with_connection
from ..store import rules, webhooks
from ..store.inputs import RedeliverRequestSchema, WebhookRequestSchema
from . import once
from .forms import catalog_errors, number
from .page import current_session, done, new_key, render

PAGE_SIZE = 50

_webhook_schema = WebhookRequestSchema()
_redeliver_schema = RedeliverRequestSchema()


def webhooks_page() -> WebResponse:
    """The game's endpoints and the form to add one."""
    return _show_list()


def _show_list(
    status: int = 200,
    *,
    errors: list[str] | None = None,
    form: dict[str, str] | None = None,
    secret: dict[str, Any] | None = None,
) -> WebResponse:
    game = current_session().game
    found = with_connection(lambda conn: webhooks.list_webhooks(conn, game))
    return render(
        "studio/webhooks.html",
        status,
        webhooks=found,
        errors=errors or [],
        form=form or {"url": "", "types": "", "description": ""},
        secret=secret,
        key=new_key(),
        new_key=new_key,
    )


def _types(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def add_webhook() -> WebResponse:
    """Adds an endpoint and shows its secret, this once."""
    game = current_session().game
    form = {name: request.form.get(name, "") for name in ("url", "types", "description")}
    raw = {
        "url": form["url"].strip(),
        "types": _types(form["types"]),
        "description": form["description"].strip(),
    }
    try:
        body = rules.load(_webhook_schema, raw)
    except ValidationFailed as exc:
        return _show_list(422, errors=catalog_errors(exc.details, None), form=form)
    outcome = once.run_once(
        request.form.get("key"),
        raw,
        201,
        lambda conn: webhooks.create(conn, game, **body),
    )
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return _show_list(outcome.status, errors=[payload["error"]["message"]], form=form)
    return _show_list(secret={**payload, "what": "added"})


def rotate_secret(webhook_id: str) -> WebResponse:
    """A new secret, shown this once; the old one keeps signing for 24 hours."""
    game = current_session().game
    outcome = once.run_once(
        request.form.get("key"),
        {"webhook_id": webhook_id},
        200,
        lambda conn: webhooks.rotate_secret(conn, game, webhook_id),
    )
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return _show_list(outcome.status, errors=[payload["error"]["message"]])
    return _show_list(secret={**payload, "what": "rotated"})


def _set_enabled(webhook_id: str, *, enabled: bool) -> dict[str, Any]:
    game = current_session().game
    outcome = once.run_once(
        request.form.get("key"),
        {"webhook_id": webhook_id, "enabled": enabled},
        200,
        lambda conn: webhooks.set_enabled(conn, game, webhook_id, enabled=enabled),
    )
    found: dict[str, Any] = once.outcome_payload(outcome)[1]
    return found


def disable(webhook_id: str) -> WebResponse:
    found = _set_enabled(webhook_id, enabled=False)
    return done("studio_web.webhooks_page", f"Disabled {found['url']}: nothing is sent to it.")


def enable(webhook_id: str) -> WebResponse:
    found = _set_enabled(webhook_id, enabled=True)
    return done(
        "studio_web.webhooks_page",
        f"Enabled {found['url']}: sending from event {found['delivered_through'] + 1}.",
    )


def delete(webhook_id: str) -> WebResponse:
    game = current_session().game
    with_connection(lambda conn: webhooks.delete(conn, game, webhook_id))
    return done("studio_web.webhooks_page", "Deleted the webhook and its delivery log.")


def webhook_page(webhook_id: str) -> WebResponse:
    """One endpoint: its delivery log, newest first, and "send again"."""
    return _show_webhook(webhook_id)


def _show_webhook(
    webhook_id: str, status: int = 200, *, errors: list[str] | None = None
) -> WebResponse:
    game = current_session().game
    cursor = request.args.get("cursor") or None

    def read(conn: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            webhooks.get(conn, game, webhook_id),
            webhooks.deliveries(conn, game, webhook_id, limit=PAGE_SIZE, cursor=cursor),
        )

    try:
        hook, log = with_connection(read)
    except ValidationFailed:  # a cursor this page did not give out: the first page then
        raise NotFound("no such page of the delivery log") from None
    return render(
        "studio/webhook.html",
        status,
        webhook=hook,
        deliveries=log,
        errors=errors or [],
        key=new_key(),
    )


def redeliver(webhook_id: str) -> WebResponse:
    """Sends delivered events again: one, or a range."""
    game = current_session().game
    raw: dict[str, Any] = {"from_event_id": number(request.form.get("from_event_id", ""))}
    last = request.form.get("to_event_id", "").strip()
    if last:
        raw["to_event_id"] = number(last)
    try:
        body = rules.load(_redeliver_schema, raw)
        outcome = once.run_once(
            request.form.get("key"),
            raw,
            202,
            lambda conn: webhooks.redeliver(
                conn,
                game,
                webhook_id,
                from_event_id=body["from_event_id"],
                to_event_id=body.get("to_event_id"),
            ),
        )
    except ValidationFailed as exc:
        return _show_webhook(webhook_id, 422, errors=catalog_errors(exc.details, None))
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return _show_webhook(webhook_id, outcome.status, errors=[payload["error"]["message"]])
    return done(
        "studio_web.webhook_page",
        f"Queued {payload['queued']} event(s) to be sent again.",
        webhook_id=webhook_id,
    )
