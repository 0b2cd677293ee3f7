"""Personalized offers on the studio page: the draft's segments, offers and promo codes, each
edited in a form of its own like an item (web/offer_forms.py) through the store's put_draft
(with the ETag the form was opened with, refused with the store's own field paths at the
fields), a preview of what one player would see of the draft, and each offer's sales
(purchases and revenue per day, from the purchases table) drawn as a small chart."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from flask import request
from werkzeug.wrappers import Response as WebResponse

from ..errors import PreconditionFailed, ValidationFailed
from ..runtime import with_connection
from ..store import catalog, offers, rules
from .forms import catalog_errors
from .offer_forms import FORMS, PART_KEYS, part_field_errors
from .overview import current_draft, put_draft
from .page import current_session, done, render, scales

CHART_DAYS = 14


def offers_page() -> WebResponse:
    """The draft's segments, offers and codes, the preview and the sales figures."""
    return _show()


def _show(
    status: int = 200,
    *,
    errors: list[str] | None = None,
    etag: str | None = None,
) -> WebResponse:
    session = current_session()
    game = session.game
    player = request.args.get("player", "").strip()

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        draft, draft_etag = catalog.get_draft(conn, game)
        return {
            "draft": draft,
            "etag": draft_etag,
            "sales": offers.offer_sales(conn, game),
            "usage": offers.code_usage(conn, game),
        }

    state = with_connection(read)
    draft = state["draft"]
    preview, preview_errors = (
        _preview(game, player, actor=session.subject) if player else (None, [])
    )
    return render(
        "studio/offers.html",
        status,
        draft=draft,
        etag=etag or state["etag"],
        errors=errors or [],
        player=player,
        preview=preview,
        preview_errors=preview_errors,
        sales=[{**row, "bars": _bars(row["by_day"])} for row in state["sales"]],
        usage=state["usage"],
        scales=scales(draft),
    )


def segment_page(key: str | None = None) -> WebResponse:
    """Adds a segment to the draft (no key) or edits one."""
    return _edit_part("segments", key)


def offer_page(key: str | None = None) -> WebResponse:
    """Adds an offer to the draft (no key) or edits one."""
    return _edit_part("offers", key)


def code_page(key: str | None = None) -> WebResponse:
    """Adds a promo code to the draft (no key) or edits one: live once the draft is published."""
    return _edit_part("promo_codes", key)


PART_NAMES = {"segments": "segment", "offers": "offer", "promo_codes": "code"}


def _edit_part(part: str, key: str | None) -> WebResponse:
    """One segment, offer or code of the draft, every field in a form, saved through put_draft
    with the ETag the form was opened with and refused with the store's own field paths."""
    draft, etag = current_draft()
    entries = list(draft.get(part, []))
    key_field = PART_KEYS[part]
    index = next((i for i, e in enumerate(entries) if e[key_field] == key), None)
    if key is not None and index is None:
        message = f"{PART_NAMES[part]} {key} is not in the draft (was it removed?)"
        return _show(404, errors=[message])
    form_class = FORMS[part]
    if request.method == "GET":
        form = form_class.from_entry(entries[index]) if index is not None else form_class()
        return _part_page(part, form, draft, etag, key=key)
    form = form_class.from_request(request.form)
    entry = form.to_entry()
    sent_etag = request.form.get("etag", "")
    position = index if index is not None else len(entries)
    if index is None:
        entries.append(entry)
    else:
        entries[index] = entry
    content = {**draft, part: entries}
    try:
        put_draft(content, sent_etag)
    except ValidationFailed as exc:
        errors = part_field_errors(
            exc.details, prefix=f"{part}.{position}", form=form, data=content
        )
        return _part_page(part, form, draft, sent_etag, key=key, errors=errors, status=422)
    except PreconditionFailed:
        return _part_page(part, form, draft, sent_etag, key=key, conflict=True, status=412)
    verb = "Added" if key is None else "Saved"
    return done(
        "studio_web.offers_page",
        f"{verb} the {PART_NAMES[part]} {entry[key_field]} in the draft: publish to make it live.",
    )


def _part_page(
    part: str,
    form: Any,
    draft: dict[str, Any],
    etag: str,
    *,
    key: str | None,
    errors: dict[str, list[str]] | None = None,
    conflict: bool = False,
    status: int = 200,
) -> WebResponse:
    return render(
        "studio/offer_part.html",
        status,
        part=part,
        name=PART_NAMES[part],
        form=form,
        etag=etag,
        key=key,
        codes=[c["code"] for c in draft["currencies"]],
        skus=[i["sku"] for i in draft["items"]],
        segments=[s["id"] for s in draft.get("segments", [])],
        offers=[o["id"] for o in draft.get("offers", [])],
        errors=errors or {},
        conflict=conflict,
        scales=scales(draft),
    )


def remove_part(part: str, key: str) -> WebResponse:
    """Removes a segment, offer or code from the draft (refused while something names it)."""
    if part not in PART_KEYS:
        return _show(404, errors=[f"no such list: {part}"])
    sent_etag = request.form.get("etag", "")
    draft, _ = current_draft()
    entries = [e for e in draft.get(part, []) if e[PART_KEYS[part]] != key]
    content = {**draft, part: entries}
    return _save(content, sent_etag, f"Removed the {PART_NAMES[part]} {key} from the draft.")


def _save(content: dict[str, Any], etag: str, message: str) -> WebResponse:
    try:
        put_draft(content, etag)
    except ValidationFailed as exc:
        return _show(422, errors=catalog_errors(exc.details, content), etag=etag)
    except PreconditionFailed:
        conflict = "The draft was changed by someone else since this page was opened: reload it."
        return _show(412, errors=[conflict], etag=etag)
    return done("studio_web.offers_page", message)


def _preview(game: str, player: str, *, actor: str) -> tuple[dict[str, Any] | None, list[str]]:
    """Each item's list and own prices for ``player`` as the draft would price them."""
    try:
        rules.check_player_id(player)
    except ValidationFailed as exc:
        return None, catalog_errors(exc.details, None)

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        draft, view = offers.preview_view(conn, game, player, actor=actor)
        return {
            "attributes": offers.get_attributes(conn, game, player),
            "rows": [
                {
                    "sku": item["sku"],
                    "name": item["name"],
                    "currency": price["currency"],
                    "list": price["amount"],
                    "yours": view.prices.get(
                        (item["sku"], price["currency"]), (price["amount"], None)
                    ),
                }
                for item in draft["items"]
                if item["sku"] not in view.hidden
                for price in item["prices"]
            ],
            # Items only a segment sees that this player is not in: not in its catalog.
            "hidden": sorted(view.hidden),
        }

    try:
        return with_connection(read), []
    except ValidationFailed as exc:
        return None, ["The draft does not publish as it is:", *catalog_errors(exc.details, None)]


def _bars(by_day: dict[str, int]) -> list[dict[str, Any]]:
    """The last CHART_DAYS days of revenue, each with its bar's height in percent."""
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in range(CHART_DAYS - 1, -1, -1)]
    top = max([by_day.get(day, 0) for day in days] + [1])
    return [
        {"day": day, "value": by_day.get(day, 0), "height": round(100 * by_day.get(day, 0) / top)}
        for day in days
    ]
