"""Personalized offers on the studio page: the draft's segments, offers and promo codes edited
through the store's put_draft (with the ETag the page was rendered from, refused with the
store's own field paths), a code created from a form, a preview of what one player would see
of the draft, and each offer's sales (purchases and revenue per day, from the purchases
table) drawn as a small chart."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
from flask import request
from werkzeug.wrappers import Response as WebResponse

from ..errors import PreconditionFailed, ValidationFailed
from ..runtime import with_connection
from ..store import catalog, offers, rules
from .forms import catalog_errors
from .overview import current_draft, put_draft
from .page import current_session, done, render, scales

PARTS = ("segments", "offers", "promo_codes")
CHART_DAYS = 14


def offers_page() -> WebResponse:
    """The draft's segments, offers and codes, the preview and the sales figures."""
    return _show()


def _show(
    status: int = 200,
    *,
    errors: list[str] | None = None,
    text: str | None = None,
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
        text=text if text is not None else _parts_text(draft),
        errors=errors or [],
        player=player,
        preview=preview,
        preview_errors=preview_errors,
        sales=[{**row, "bars": _bars(row["by_day"])} for row in state["sales"]],
        usage=state["usage"],
        scales=scales(draft),
    )


def _parts_text(draft: dict[str, Any]) -> str:
    return json.dumps({part: draft.get(part, []) for part in PARTS}, indent=2, ensure_ascii=False)


def save_parts() -> WebResponse:
    """Replaces the draft's segments, offers and codes with the edited JSON."""
    text = request.form.get("parts", "")
    sent_etag = request.form.get("etag", "")
    try:
        parts = json.loads(text)
    except ValueError as exc:
        return _show(422, errors=[f"not JSON: {exc}"], text=text, etag=sent_etag)
    if not isinstance(parts, dict) or set(parts) - set(PARTS):
        message = f"a JSON object with only {', '.join(PARTS)}"
        return _show(422, errors=[message], text=text, etag=sent_etag)
    draft, _ = current_draft()
    content = {**draft, **{part: parts.get(part, []) for part in PARTS}}
    return _save(content, sent_etag, "Saved the segments, offers and codes in the draft.", text)


def create_code() -> WebResponse:
    """Adds a promo code to the draft: it is live once the draft is published."""
    form = request.form
    sent_etag = form.get("etag", "")
    code: dict[str, Any] = {"code": form.get("code", "").strip().upper()}
    budget = form.get("budget", "").strip()
    code["budget"] = int(budget) if budget.isdigit() else budget
    if form.get("offer"):
        code["offer"] = form["offer"]
    else:
        amount = form.get("amount", "").strip()
        code["grant"] = [
            {
                "currency": form.get("currency", ""),
                "amount": int(amount) if amount.isdigit() else amount,
            }
        ]
    if form.get("segment"):
        code["segment"] = form["segment"]
    for name in rules.WINDOW_FIELDS:
        if form.get(name):
            code[name] = form[name]
    draft, _ = current_draft()
    content = {**draft, "promo_codes": [*draft.get("promo_codes", []), code]}
    return _save(
        content, sent_etag, f"Added the code {code['code']} to the draft: publish to make it live."
    )


def _save(content: dict[str, Any], etag: str, message: str, text: str | None = None) -> WebResponse:
    try:
        put_draft(content, etag)
    except ValidationFailed as exc:
        return _show(422, errors=catalog_errors(exc.details, content), text=text, etag=etag)
    except PreconditionFailed:
        conflict = "The draft was changed by someone else since this page was opened: reload it."
        return _show(412, errors=[conflict], text=text, etag=etag)
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
