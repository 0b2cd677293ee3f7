"""A player's risk view: the tier the live policy puts it in (or the service set), its freeze,
its recorded risk decisions, and freezing or unfreezing it with a reason (store.risk, once per
key, as the API runs them). Linked from the player support page."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response as WebResponse

from ..errors import ValidationFailed
from ..runtime import with_connection
from ..store import risk, rules
from ..store.inputs import RiskReasonSchema
from . import once
from .forms import catalog_errors
from .page import current_session, done, new_key, render

_FREEZE_ACTIONS = {"freeze": risk.freeze, "unfreeze": risk.unfreeze}
_reason_schema = RiskReasonSchema()


def risk_page(player_id: str) -> WebResponse:
    """The player's tier, freeze and risk events, newest first."""
    return _show(player_id)


def _show(player_id: str, status: int = 200, *, errors: list[str] | None = None) -> WebResponse:
    game = current_session().game
    try:
        rules.check_player_id(player_id)
    except ValidationFailed as exc:
        shown = catalog_errors(exc.details, None)
        return render("studio/risk.html", 422, player_id=player_id, state=None, errors=shown)
    state: dict[str, Any] = with_connection(lambda conn: risk.player_risk(conn, game, player_id))
    return render(
        "studio/risk.html",
        status,
        player_id=player_id,
        state=state,
        errors=errors or [],
        new_key=new_key,
    )


def freeze(player_id: str) -> WebResponse:
    return _change(player_id, "freeze")


def unfreeze(player_id: str) -> WebResponse:
    return _change(player_id, "unfreeze")


def _change(player_id: str, action: str) -> WebResponse:
    rules.check_player_id(player_id)
    try:
        reason = rules.load(_reason_schema, {"reason": request.form.get("reason", "").strip()})[
            "reason"
        ]
    except ValidationFailed as exc:
        return _show(player_id, 422, errors=[f"reason: {m}" for m in exc.details["reason"]])
    session = current_session()
    change = _FREEZE_ACTIONS[action]
    once.run_once(
        request.form.get("key"),
        {"player_id": player_id, "action": action, "reason": reason},
        200,
        lambda conn: change(conn, session.game, player_id, actor=session.subject, reason=reason),
    )
    text = "Frozen" if action == "freeze" else "Unfrozen"
    return done("studio_web.risk_page", f"{text} {player_id}: {reason}", player_id=player_id)
