"""Reviewing and publishing the draft, the version history, and rolling back.

Publishing checks the draft's ETag exactly as the API's publish with If-Match does: the store's
catalog.publish compares it under the draft's row lock, in the transaction that publishes, so
the draft a person reviewed is the one that goes live or nothing does.
"""

from __future__ import annotations

from typing import Any

import psycopg
from flask import request
from werkzeug.wrappers import Response as WebResponse

from shopkeep.catalog_diff import diff_catalogs

from ..errors import NotFound, PreconditionFailed, ValidationFailed
from ..runtime import services, with_connection
from ..store import catalog, rules
from ..store.inputs import PublishRequestSchema, RollbackRequestSchema
from . import once
from .forms import catalog_errors, number
from .overview import catalog_state
from .page import EMPTY_CATALOG, current_session, done, live, new_key, render, scales

CHANGED_MEANWHILE = (
    "The draft was changed by someone else since this page was loaded, so nothing was "
    "published. Open the catalog again to see their changes."
)

_publish_schema = PublishRequestSchema()
_rollback_schema = RollbackRequestSchema()


def diff_page() -> WebResponse:
    """The draft compared with live, per item and field, with the publish form."""
    return _show_diff()


def _show_diff(
    status: int = 200, *, errors: list[str] | None = None, notes: str = ""
) -> WebResponse:
    state = catalog_state(current_session().game)
    return render(
        "studio/diff.html",
        status,
        **state,
        errors=errors or [],
        notes=notes,
        key=new_key(),
    )


def publish() -> WebResponse:
    """Publishes exactly the draft the person reviewed: the form's ETag goes to the store as
    If-Match (catalog.publish), as the API's publish sends it."""
    who = current_session()
    notes = request.form.get("notes", "")
    etag = request.form.get("etag", "")
    try:
        body = rules.load(_publish_schema, {"notes": notes})
    except ValidationFailed as exc:
        return _show_diff(422, errors=catalog_errors(exc.details, None), notes=notes)
    buckets = services().config.stock_buckets
    try:
        outcome = once.run_once(
            request.form.get("key"),
            {"notes": body["notes"], "etag": etag},
            201,
            lambda conn: catalog.publish(
                conn,
                who.game,
                actor=who.subject,
                notes=body["notes"],
                stock_buckets=buckets,
                if_match=etag,
            ),
        )
    except PreconditionFailed:
        return _show_diff(412, errors=[CHANGED_MEANWHILE], notes=notes)
    except ValidationFailed as exc:
        return _show_diff(422, errors=catalog_errors(exc.details, None), notes=notes)
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return _show_diff(outcome.status, errors=[payload["error"]["message"]], notes=notes)
    again = " (this form had already been sent)" if outcome.replayed else ""
    return done(
        "studio_web.catalog_page", f"Published version {payload['version']}: live now{again}."
    )


def versions_page() -> WebResponse:
    """Every published version, with roll back buttons."""
    game = current_session().game
    found = with_connection(lambda conn: catalog.list_versions(conn, game))
    return render("studio/versions.html", versions=found, new_key=new_key)


def version_page(version: int) -> WebResponse:
    """What rolling back to this version would change on the live store."""
    game = current_session().game

    def read(conn: psycopg.Connection) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return catalog.get_version(conn, game, version), live(conn, game)

    chosen, live_version = with_connection(read)
    return render(
        "studio/version.html",
        version=chosen,
        live=live_version,
        diff=diff_catalogs(live_version or EMPTY_CATALOG, chosen),
        scales=scales(chosen, live_version),
        key=new_key(),
    )


def rollback() -> WebResponse:
    """Publishes an earlier version's content as a new version (catalog.rollback, once per
    key)."""
    who = current_session()
    try:
        body = rules.load(_rollback_schema, {"version": number(request.form.get("version", ""))})
    except ValidationFailed as exc:
        message = "; ".join(catalog_errors(exc.details, None))
        return done("studio_web.versions_page", message, kind="error")
    buckets = services().config.stock_buckets
    try:
        outcome = once.run_once(
            request.form.get("key"),
            body,
            201,
            lambda conn: catalog.rollback(
                conn,
                who.game,
                version=body["version"],
                actor=who.subject,
                stock_buckets=buckets,
            ),
        )
    except NotFound as exc:
        return done("studio_web.versions_page", exc.message, kind="error")
    ok, payload = once.outcome_payload(outcome)
    if not ok:
        return done("studio_web.versions_page", payload["error"]["message"], kind="error")
    return done(
        "studio_web.versions_page",
        f"Rolled back: version {payload['version']} is live with the content of version "
        f"{body['version']}. The draft is unchanged.",
    )
