"""The studio page's blueprint: every URL, hook and error page of /studio, wired in one place.

Each page lives in a module of its own: signin (sign in and out, the session of a request),
overview (the catalog page and changes made from it), editing (one item or currency),
publishing (review, publish, history, roll back), support (players and refunds) and
webhooks (endpoints, their secrets and delivery log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint

from . import editing, offers, overview, page, publishing, risk, signin, support, webhooks

blp = Blueprint(
    "studio_web",
    __name__,
    url_prefix="/studio",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

GET, POST, FORM = ("GET",), ("POST",), ("GET", "POST")

# (rule, endpoint, view, methods): endpoints are what templates pass to url_for.
ROUTES: tuple[tuple[str, str, Callable[..., Any], tuple[str, ...]], ...] = (
    ("/", "index", signin.index, GET),
    ("/login", "login", signin.login, FORM),
    ("/logout", "logout", signin.logout, POST),
    ("/catalog", "catalog_page", overview.catalog_page, GET),
    ("/items/<sku>/remove", "remove_item", overview.remove_item, POST),
    ("/currencies/<code>/remove", "remove_currency", overview.remove_currency, POST),
    ("/draft/reset", "reset_draft", overview.reset_draft, POST),
    ("/stock/<sku>", "restock", overview.restock, POST),
    ("/new-item", "new_item", editing.edit_item, FORM),
    ("/items/<sku>", "edit_item", editing.edit_item, FORM),
    ("/new-currency", "new_currency", editing.edit_currency, FORM),
    ("/currencies/<code>", "edit_currency", editing.edit_currency, FORM),
    ("/diff", "diff_page", publishing.diff_page, GET),
    ("/publish", "publish", publishing.publish, POST),
    ("/versions", "versions_page", publishing.versions_page, GET),
    ("/versions/<int:version>", "version_page", publishing.version_page, GET),
    ("/rollback", "rollback", publishing.rollback, POST),
    ("/players", "player_page", support.player_page, GET),
    ("/players/<player_id>/refund", "refund", support.refund, POST),
    ("/webhooks", "webhooks_page", webhooks.webhooks_page, GET),
    ("/webhooks/add", "add_webhook", webhooks.add_webhook, POST),
    ("/webhooks/<webhook_id>", "webhook_page", webhooks.webhook_page, GET),
    ("/webhooks/<webhook_id>/rotate", "rotate_webhook_secret", webhooks.rotate_secret, POST),
    ("/webhooks/<webhook_id>/disable", "disable_webhook", webhooks.disable, POST),
    ("/webhooks/<webhook_id>/enable", "enable_webhook", webhooks.enable, POST),
    ("/webhooks/<webhook_id>/delete", "delete_webhook", webhooks.delete, POST),
    ("/webhooks/<webhook_id>/redeliver", "redeliver_webhook", webhooks.redeliver, POST),
    ("/offers", "offers_page", offers.offers_page, GET),
    ("/offers/new-segment", "new_segment", offers.segment_page, FORM),
    ("/offers/segments/<key>", "edit_segment", offers.segment_page, FORM),
    ("/offers/new-offer", "new_offer", offers.offer_page, FORM),
    ("/offers/offers/<key>", "edit_offer", offers.offer_page, FORM),
    ("/offers/new-code", "new_code", offers.code_page, FORM),
    ("/offers/promo_codes/<key>", "edit_code", offers.code_page, FORM),
    ("/offers/<part>/<key>/remove", "remove_offer_part", offers.remove_part, POST),
    ("/players/<player_id>/risk", "risk_page", risk.risk_page, GET),
    ("/players/<player_id>/freeze", "freeze", risk.freeze, POST),
    ("/players/<player_id>/unfreeze", "unfreeze", risk.unfreeze, POST),
)

for rule, endpoint, view, methods in ROUTES:
    blp.add_url_rule(rule, endpoint, view, methods=list(methods))

blp.before_request(signin.load_session)
blp.after_request(page.security_headers)
blp.register_error_handler(Exception, page.error_page)
blp.context_processor(page.template_helpers)
