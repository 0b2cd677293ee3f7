"""Bad input gets its code and changes nothing: balances, ledger, stock, before and after.

The heart of this file is one table of malformed requests (``MALFORMED``): each row is sent to
the app, and the answer must have the row's status and code, the error envelope with exactly
its four keys, the same request id in the body and in ``X-Request-Id``, the field path in
``details`` where the row names one, and not one row of the game's state may have changed.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from shopkeep_server.store.audit import audit
from shopkeep_server.store.rules import MAX_JSON_DEPTH
from support import Game, coins_catalog, coins_item, grant, make_game, new_key, snapshot

MAX = 9_007_199_254_740_991

BAD_QUANTITIES = [-1, 0, 1.5, 1.0, "1", True, None, 1001, MAX + 1, 10**40, [], {}]
BAD_AMOUNTS = [-5, 0, 2.5, 10.0, "100", False, None, MAX + 1, 10**30, -(10**30), [1], {"a": 1}]
OVERFLOWS = [2**53, 2**63, 2**63 - 1 + 2**53, 2**64, -(2**63)]

# What a text field must refuse, by name: C0 controls, DEL, a C1 control, a lone surrogate.
CONTROL_CHARACTERS = {
    "nul": "\x00",
    "bell": "\x07",
    "escape": "\x1b",
    "del": "\x7f",
    "c1-nel": "\x85",
    "lone-surrogate": "\ud800",
}
# One-line fields refuse tab and line breaks as well.
LINE_BREAKS = {"newline": "\n", "tab": "\t", "carriage-return": "\r"}

PURCHASE_ID = "0b6e6c9e-8c55-4a56-9a1e-7d1a3f8e2b10"  # no such purchase: bodies fail first
NO_BODY = object()


@dataclasses.dataclass(frozen=True)
class Bad:
    """One malformed request and the answer it must get."""

    id: str
    method: str
    path: str
    status: int
    code: str
    body: Any = NO_BODY  # sent as JSON
    raw: bytes | None = None  # sent as it is, instead of ``body``
    content_type: str = "application/json"
    auth: str = "role"  # a kind of token: see _authorization
    role: str = "player"
    idempotent: bool = True
    field: str | None = None  # a key ``details`` must have
    headers: tuple[tuple[str, str], ...] = ()


# --- the routes, with a body each that is valid, so a row changes one thing ------------------

PURCHASE = ("POST", "/v1/purchases", "player", {"sku": "potion"})
CONSUME = ("POST", "/v1/inventory/potion/consume", "player", {"quantity": 1})
GRANT = (
    "POST",
    "/v1/players/p1/grants",
    "service",
    {"currency": "COINS", "amount": 5, "reason": "ok"},
)
GRANT_ITEM = (
    "POST",
    "/v1/players/p1/grants",
    "service",
    {"sku": "potion", "quantity": 1, "reason": "ok"},
)
REFUND = ("POST", f"/v1/purchases/{PURCHASE_ID}/refund", "service", {"reason": "ok"})
PUBLISH = ("POST", "/v1/admin/catalog/publish", "studio", {"notes": "ok"})
ROLLBACK = ("POST", "/v1/admin/catalog/rollback", "studio", {"version": 1})
RESTOCK = ("POST", "/v1/admin/stock/dragon_egg", "studio", {"add": 1})
DRAFT = ("PUT", "/v1/admin/catalog/draft", "studio", None)  # body: a catalog, below
WEBHOOK = ("POST", "/v1/admin/webhooks", "studio", {"url": "https://hooks.example.com/in"})
WEBHOOK_ID = "7d1a3f8e-2b10-4a56-9a1e-0b6e6c9e8c55"  # no such webhook: bodies fail first
REDELIVER = ("POST", f"/v1/admin/webhooks/{WEBHOOK_ID}/redeliver", "studio", {"from_event_id": 1})

ROUTES = {
    "purchase": PURCHASE,
    "consume": CONSUME,
    "grant": GRANT,
    "refund": REFUND,
    "publish": PUBLISH,
    "rollback": ROLLBACK,
    "restock": RESTOCK,
    "webhook": WEBHOOK,
    "redeliver": REDELIVER,
}


def _draft(**item_fields: Any) -> dict[str, Any]:
    return coins_catalog(coins_item("apple", 5, **item_fields))


def _draft_at(path: str, value: Any) -> dict[str, Any]:
    """A valid draft with the value at a dotted path replaced (or added)."""
    draft = copy.deepcopy(_draft(description="", tags=["fruit"], metadata={"a": {"b": "c"}}))
    node: Any = draft
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return draft


def _row(
    route: tuple[str, str, str, Any],
    id: str,
    status: int,
    code: str,
    *,
    change: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> Bad:
    method, path, role, valid = route
    if "body" not in extra and "raw" not in extra:
        body = {k: v for k, v in dict(valid or {}).items() if k not in drop}
        body.update(change or {})
        extra["body"] = body
    idempotent = method == "POST"
    extra.setdefault("headers", ())
    if method == "PUT":
        extra["headers"] = (("If-Match", "*"), *extra["headers"])
    return Bad(
        id, method, extra.pop("path", path), status, code, role=role, idempotent=idempotent, **extra
    )


def _table() -> list[Bad]:
    rows: list[Bad] = []
    add = rows.append
    v422, v = 422, "validation_failed"

    # Control characters in every text field a client sends.
    one_line = {**CONTROL_CHARACTERS, **LINE_BREAKS}
    for name, char in one_line.items():
        add(
            _row(
                GRANT,
                f"grant-reason-{name}",
                v422,
                v,
                change={"reason": f"a{char}b"},
                field="reason",
            )
        )
        add(
            _row(
                REFUND,
                f"refund-reason-{name}",
                v422,
                v,
                change={"reason": f"a{char}b"},
                field="reason",
            )
        )
        add(
            _row(
                DRAFT,
                f"draft-item-name-{name}",
                v422,
                v,
                body=_draft_at("items.0.name", f"A{char}"),
                field="items.0.name",
            )
        )
        add(
            _row(
                DRAFT,
                f"draft-tag-{name}",
                v422,
                v,
                body=_draft_at("items.0.tags", [f"t{char}"]),
                field="items.0.tags.0",
            )
        )
        add(
            _row(
                DRAFT,
                f"draft-currency-name-{name}",
                v422,
                v,
                body=_draft_at("currencies.0.name", f"C{char}"),
                field="currencies.0.name",
            )
        )
        add(
            _row(
                DRAFT,
                f"draft-metadata-key-{name}",
                v422,
                v,
                body=_draft_at("items.0.metadata", {f"k{char}": 1}),
                field=f"items.0.metadata.k{char}.key",
            )
        )
    for name, char in CONTROL_CHARACTERS.items():
        # Multi-line text: tab and line breaks pass (see test_multiline_text_keeps_its_lines).
        add(
            _row(
                PUBLISH,
                f"publish-notes-{name}",
                v422,
                v,
                change={"notes": f"n{char}"},
                field="notes",
            )
        )
        add(
            _row(
                DRAFT,
                f"draft-description-{name}",
                v422,
                v,
                body=_draft_at("items.0.description", f"d{char}"),
                field="items.0.description",
            )
        )
        add(
            _row(
                DRAFT,
                f"draft-metadata-value-{name}",
                v422,
                v,
                body=_draft_at("items.0.metadata", {"lore": {"deep": [f"x{char}"]}}),
                field="items.0.metadata.lore.deep.0",
            )
        )

    # Patterns match the whole string: a trailing newline is not part of an id.
    for route, field, value in [
        (PURCHASE, "sku", "potion\n"),
        (PURCHASE, "currency", "COINS\n"),
        (GRANT, "currency", "COINS\n"),
        (GRANT_ITEM, "sku", "potion\n"),
    ]:
        add(
            _row(
                route,
                f"{route[1].split('/')[2]}-{field}-trailing-newline",
                v422,
                v,
                change={field: value},
                field=field,
            )
        )
    add(
        _row(
            PURCHASE,
            "purchase-expected-currency-trailing-newline",
            v422,
            v,
            change={"expected_price": {"currency": "COINS\n", "amount": 1}},
            field="expected_price.currency",
        )
    )
    add(
        _row(
            DRAFT,
            "draft-sku-trailing-newline",
            v422,
            v,
            body=_draft_at("items.0.sku", "apple\n"),
            field="items.0.sku",
        )
    )
    add(
        _row(
            DRAFT,
            "draft-currency-code-trailing-newline",
            v422,
            v,
            body=_draft_at("currencies.0.code", "COINS\n"),
            field="currencies.0.code",
        )
    )
    for name, segment in [
        ("newline", "potion%0A"),
        ("nul", "po%00tion"),
        ("upper", "Potion"),
        ("too-long", "a" * 65),
        ("space", "po%20tion"),
    ]:
        add(
            _row(
                CONSUME,
                f"consume-path-sku-{name}",
                v422,
                v,
                path=f"/v1/inventory/{segment}/consume",
                field="sku",
            )
        )
        add(
            _row(
                RESTOCK,
                f"restock-path-sku-{name}",
                v422,
                v,
                path=f"/v1/admin/stock/{segment}",
                field="sku",
            )
        )
    for name, segment in [
        ("newline", "p1%0A"),
        ("nul", "p%001"),
        ("space", "p%201"),
        ("too-long", "p" * 129),
    ]:
        add(
            _row(
                GRANT,
                f"grant-path-player-{name}",
                v422,
                v,
                path=f"/v1/players/{segment}/grants",
                field="player_id",
            )
        )
    # An encoded slash splits the segment: no route has that shape.
    add(_row(GRANT, "grant-path-player-slash", 404, "not_found", path="/v1/players/p%2F1/grants"))
    add(
        _row(
            REFUND,
            "refund-path-not-a-uuid",
            404,
            "not_found",
            path="/v1/purchases/not-a-uuid/refund",
        )
    )
    add(
        _row(
            REFUND,
            "refund-path-uuid-newline",
            404,
            "not_found",
            path=f"/v1/purchases/{PURCHASE_ID}%0A/refund",
        )
    )

    # Purchase bodies of the wrong shape.
    for name, body, field in [
        ("unknown-colour", {"sku": "potion", "colour": "red"}, "colour"),
        ("sku-number", {"sku": 12}, "sku"),
        ("sku-punctuation", {"sku": "Potion!"}, "sku"),
        ("currency-null", {"sku": "potion", "quantity": 1, "currency": None}, "currency"),
        ("sku-65-chars", {"sku": "a" * 65}, "sku"),
        ("sku-empty", {"sku": ""}, "sku"),
        ("no-sku", {}, "sku"),
        ("currency-lowercase", {"sku": "potion", "currency": "coins"}, "currency"),
        (
            "expected-price-no-amount",
            {"sku": "potion", "expected_price": {"currency": "COINS"}},
            "expected_price.amount",
        ),
        ("expected-price-number", {"sku": "potion", "expected_price": 50}, "expected_price"),
    ]:
        add(_row(PURCHASE, f"purchase-shape-{name}", v422, v, body=body, field=field))
    add(
        _row(
            GRANT,
            "grant-path-player-punctuation",
            v422,
            v,
            path="/v1/players/bad%20id!/grants",
            field="player_id",
        )
    )

    # Wrong types, overflows and floats where an integer is due.
    for value in BAD_QUANTITIES:
        add(
            _row(
                PURCHASE,
                f"purchase-quantity-{value!r}",
                v422,
                v,
                change={"quantity": value},
                field="quantity",
            )
        )
    for value in [0, -1, 1.0, "2", 1001, 2**63]:
        add(
            _row(
                CONSUME,
                f"consume-quantity-{value!r}",
                v422,
                v,
                change={"quantity": value},
                field="quantity",
            )
        )
    for value in BAD_AMOUNTS + OVERFLOWS[1:]:
        add(
            _row(
                GRANT, f"grant-amount-{value!r}", v422, v, change={"amount": value}, field="amount"
            )
        )
    for value in [v for v in BAD_AMOUNTS if not (type(v) is int and v == 0)]:
        add(
            _row(
                PURCHASE,
                f"expected-price-{value!r}",
                v422,
                v,
                change={"expected_price": {"currency": "COINS", "amount": value}},
                field="expected_price.amount",
            )
        )
    for value in [0, -3, 2.0, "5", True, MAX + 1, *OVERFLOWS[1:]]:
        add(_row(RESTOCK, f"restock-add-{value!r}", v422, v, change={"add": value}, field="add"))
    for value in [0, -1, 1.5, "1", None, 2**63]:
        add(
            _row(
                ROLLBACK,
                f"rollback-version-{value!r}",
                v422,
                v,
                change={"version": value},
                field="version",
            )
        )
    for field, value in [
        ("items.0.prices.0.amount", 2.5),
        ("items.0.prices.0.amount", MAX + 1),
        ("items.0.prices.0.amount", "5"),
        ("items.0.stock", 2**63),
        ("items.0.stock", -1),
        ("items.0.per_player_limit", 0),
        ("currencies.0.scale", 10),
        ("currencies.0.scale", 2.0),
        ("currencies.0.max_balance", 2**64),
        ("items.0.kind", "gift"),
        ("items.0.available_from", "yesterday"),
        ("items.0.tags", "fruit"),
        ("items.0.metadata", ["not", "an", "object"]),
        ("items.0.name", ""),
        ("items.0.name", "n" * 201),
        ("items.0.description", "d" * 2001),
    ]:
        add(
            _row(
                DRAFT,
                f"draft-{field}-{value!r}"[:80],
                v422,
                v,
                body=_draft_at(field, value),
                field=field,
            )
        )
    add(
        _row(
            DRAFT,
            "draft-metadata-over-4KiB",
            v422,
            v,
            body=_draft_at("items.0.metadata", {"x": "y" * 5000}),
            field="items.0.metadata",
        )
    )
    add(_row(GRANT, "grant-reason-too-long", v422, v, change={"reason": "r" * 501}, field="reason"))
    add(
        _row(
            PUBLISH, "publish-notes-too-long", v422, v, change={"notes": "n" * 1001}, field="notes"
        )
    )
    add(_row(GRANT, "grant-reason-number", v422, v, change={"reason": 5}, field="reason"))
    add(_row(REFUND, "refund-reason-null", v422, v, change={"reason": None}, field="reason"))

    # Unknown fields, missing fields, empty bodies and bodies that are not objects.
    for key, route in ROUTES.items():
        add(_row(route, f"{key}-unknown-field", v422, v, change={"colour": "red"}, field="colour"))
        add(_row(route, f"{key}-array-body", v422, v, body=[route[3]], field="_schema"))
        add(_row(route, f"{key}-string-body", v422, v, body="potion", field="_schema"))
    for key, route in ROUTES.items():
        if key == "publish":
            continue  # publish has no required field
        required = next(iter(route[3]))
        add(_row(route, f"{key}-missing-{required}", v422, v, drop=(required,), field=required))
        add(_row(route, f"{key}-empty-object", v422, v, body={}))
        add(_row(route, f"{key}-empty-body", v422, v, raw=b""))
    add(_row(GRANT, "grant-money-and-item", v422, v, change={"sku": "potion", "quantity": 1}))
    add(_row(DRAFT, "draft-missing-items", v422, v, body={"currencies": []}, field="items"))
    add(
        _row(
            DRAFT,
            "draft-unknown-item-field",
            v422,
            v,
            body=_draft_at("items.0.colour", "red"),
            field="items.0.colour",
        )
    )
    add(_row(DRAFT, "draft-null-body", v422, v, body=None))

    # Broken JSON, too deep JSON, numbers JSON cannot carry, and other media types.
    broken = {
        "truncated": b'{"sku": "potion"',
        "single-quotes": b"{'sku': 'potion'}",
        "nan": b'{"sku": "potion", "quantity": NaN}',
        "infinity": b'{"sku": "potion", "quantity": Infinity}',
        "minus-infinity": b'{"sku": "potion", "quantity": -Infinity}',
        "float-overflow": b'{"sku": "potion", "quantity": 1e400}',
        "int-of-5000-digits": b'{"sku": "potion", "quantity": ' + b"9" * 5000 + b"}",
        "trailing-comma": b'{"sku": "potion",}',
        "bare-word": b"potion",
        "invalid-utf8": b'{"sku": "\xff\xfe"}',
        "depth-5000": b"[" * 5000 + b"]" * 5000,
        "depth-10000": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        f"depth-{MAX_JSON_DEPTH + 1}": b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    }
    for name, raw in broken.items():
        add(_row(PURCHASE, f"purchase-json-{name}", 400, "bad_request", raw=raw))
    for key in ("grant", "refund", "publish"):
        add(_row(ROUTES[key], f"{key}-json-truncated", 400, "bad_request", raw=b'{"reason": "x'))
    deep_metadata: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        deep_metadata = {"k": deep_metadata}
    add(
        _row(
            DRAFT,
            "draft-metadata-too-deep",
            400,
            "bad_request",
            body=_draft_at("items.0.metadata", deep_metadata),
        )
    )
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ):
        add(
            _row(
                PURCHASE,
                f"purchase-content-type-{ctype.split(';')[0]}",
                415,
                "unsupported_media_type",
                raw=b'{"sku": "potion"}',
                content_type=ctype,
            )
        )
    add(
        _row(
            DRAFT,
            "draft-content-type-yaml",
            415,
            "unsupported_media_type",
            raw=b"currencies: []",
            content_type="application/yaml",
        )
    )
    add(
        _row(
            PURCHASE,
            "purchase-body-over-64KiB",
            413,
            "payload_too_large",
            change={"padding": "x" * 70_000},
        )
    )
    add(
        _row(
            GRANT,
            "grant-body-over-64KiB",
            413,
            "payload_too_large",
            change={"reason": "r" * 70_000},
        )
    )

    # Idempotency keys.
    for name, key in [
        ("15-chars", "k" * 15),
        ("256-chars", "k" * 256),
        ("space", "key with spaces 123"),
        ("non-ascii", "clé-de-idempotence"),
        ("empty", ""),
    ]:
        for route_key in ("purchase", "grant", "publish"):
            add(
                _row(
                    ROUTES[route_key],
                    f"{route_key}-idempotency-key-{name}",
                    400,
                    "idempotency_key_invalid",
                    headers=(("Idempotency-Key", key),),
                )
            )
    for route_key in ROUTES:
        add(
            _row(
                ROUTES[route_key],
                f"{route_key}-idempotency-key-missing",
                400,
                "idempotency_key_missing",
                headers=(("Idempotency-Key", None),),
            )
        )

    # Queries and paths of the reads.
    reads = [
        ("stock-sku-newline", "/v1/stock?sku=apple%0A", "sku.0"),
        ("stock-sku-nul", "/v1/stock?sku=ap%00ple", "sku.0"),
        ("stock-sku-upper", "/v1/stock?sku=Apple", "sku.0"),
        ("stock-101-skus", "/v1/stock?" + "&".join(["sku=a"] * 101), "sku"),
        ("ledger-limit-0", "/v1/wallet/ledger?limit=0", "limit"),
        ("ledger-limit-201", "/v1/wallet/ledger?limit=201", "limit"),
        ("ledger-limit-ten", "/v1/wallet/ledger?limit=ten", "limit"),
        ("ledger-limit-float", "/v1/wallet/ledger?limit=1.5", "limit"),
        ("ledger-cursor-letters", "/v1/wallet/ledger?cursor=abc", "cursor"),
        ("ledger-cursor-negative", "/v1/wallet/ledger?cursor=-1", "cursor"),
        ("ledger-cursor-superscript", "/v1/wallet/ledger?cursor=%C2%B2", "cursor"),
        ("ledger-cursor-nul", "/v1/wallet/ledger?cursor=1%00", "cursor"),
        ("ledger-cursor-19-digits", "/v1/wallet/ledger?cursor=" + "9" * 19, "cursor"),
        ("purchases-limit-negative", "/v1/purchases?limit=-1", "limit"),
    ]
    for name, path, field in reads:
        add(Bad(name, "GET", path, 422, v, field=field, idempotent=False))
    for name, query, field in [
        ("after-letters", "after=abc", "after"),
        ("after-negative", "after=-1", "after"),
        ("after-superscript", "after=%C2%B2", "after"),
        ("after-nul", "after=1%00", "after"),
        ("after-19-digits", "after=" + "9" * 19, "after"),
        ("limit-0", "limit=0", "limit"),
        ("limit-1001", "limit=1001", "limit"),
        ("limit-ten", "limit=ten", "limit"),
        ("type-unknown", "type=purchase.done", "type"),
        ("type-trailing-comma", "type=purchase.completed,", "type"),
        ("type-nul", "type=grant.created%00", "type"),
        ("type-one-bad-of-two", "type=grant.created&type=Grant.Created", "type"),
    ]:
        add(
            Bad(
                f"events-{name}",
                "GET",
                f"/v1/events?{query}",
                422,
                v,
                role="service",
                field=field,
                idempotent=False,
            )
        )
    for name, segment in [("newline", "p1%0A"), ("nul", "p%001"), ("too-long", "p" * 129)]:
        for what in ("wallet", "inventory", "ledger", "purchases"):
            add(
                Bad(
                    f"service-{what}-player-{name}",
                    "GET",
                    f"/v1/players/{segment}/{what}",
                    422,
                    v,
                    role="service",
                    field="player_id",
                    idempotent=False,
                )
            )
    add(
        Bad(
            "purchase-get-not-a-uuid",
            "GET",
            "/v1/purchases/12345",
            404,
            "not_found",
            idempotent=False,
        )
    )
    add(
        Bad(
            "version-not-a-number",
            "GET",
            "/v1/admin/catalog/versions/one",
            404,
            "not_found",
            role="studio",
            idempotent=False,
        )
    )
    add(
        Bad(
            "draft-without-if-match",
            "PUT",
            "/v1/admin/catalog/draft",
            428,
            "precondition_required",
            role="studio",
            idempotent=False,
            body=_draft(),
        )
    )
    add(
        Bad(
            "draft-stale-if-match",
            "PUT",
            "/v1/admin/catalog/draft",
            412,
            "precondition_failed",
            role="studio",
            idempotent=False,
            body=_draft(),
            headers=(("If-Match", '"draft-999999"'),),
        )
    )
    add(Bad("unknown-endpoint", "POST", "/v1/shop", 404, "not_found"))
    add(Bad("wrong-method", "DELETE", "/v1/wallet", 404, "not_found", idempotent=False))

    # Tokens of every kind that must not pass.
    # Webhook endpoints: https, or http to this machine only; known event types, once each.
    for name, url in [
        ("http-remote", "http://hooks.example.com/in"),
        ("http-private-ip", "http://10.0.0.5/in"),
        ("ftp", "ftp://hooks.example.com/in"),
        ("no-scheme", "hooks.example.com/in"),
        ("no-host", "https:///in"),
        ("empty", ""),
        ("fragment", "https://hooks.example.com/in#top"),
        ("bad-port", "https://hooks.example.com:99999/in"),
        ("space", "https://hooks.example.com/a b"),
        ("newline", "https://hooks.example.com/in\n"),
        ("nul", "https://hooks.example.com/\x00"),
        ("too-long", "https://hooks.example.com/" + "a" * 2000),
        ("number", 5),
        ("null", None),
        ("javascript", "javascript:alert(1)"),
        ("localhost-lookalike", "http://localhost.example.com/in"),
    ]:
        add(_row(WEBHOOK, f"webhook-url-{name}", v422, v, change={"url": url}, field="url"))
    for name, types, field in [
        ("not-a-list", "purchase.completed", "types"),
        ("number", [1], "types.0"),
        ("unknown", ["purchase.exploded"], "types.0"),
        ("no-dot", ["purchases"], "types.0"),
        ("upper", ["Purchase.Completed"], "types.0"),
        ("twice", ["purchase.completed", "purchase.completed"], "types"),
        ("too-many", ["purchase.completed"] * 51, "types"),
    ]:
        add(_row(WEBHOOK, f"webhook-types-{name}", v422, v, change={"types": types}, field=field))
    for name, char in one_line.items():
        add(
            _row(
                WEBHOOK,
                f"webhook-description-{name}",
                v422,
                v,
                change={"description": f"d{char}"},
                field="description",
            )
        )
    add(
        _row(
            WEBHOOK,
            "webhook-description-too-long",
            v422,
            v,
            change={"description": "d" * 501},
            field="description",
        )
    )
    for name, change, field in [
        ("from-zero", {"from_event_id": 0}, "from_event_id"),
        ("from-negative", {"from_event_id": -1}, "from_event_id"),
        ("from-float", {"from_event_id": 1.0}, "from_event_id"),
        ("from-string", {"from_event_id": "1"}, "from_event_id"),
        ("from-overflow", {"from_event_id": 2**63}, "from_event_id"),
        ("to-before-from", {"from_event_id": 5, "to_event_id": 4}, "to_event_id"),
        ("range-too-long", {"from_event_id": 1, "to_event_id": 1001}, "to_event_id"),
        ("to-bool", {"to_event_id": True}, "to_event_id"),
    ]:
        add(_row(REDELIVER, f"redeliver-{name}", v422, v, change=change, field=field))
    for route, wrong in [(WEBHOOK, "player"), (WEBHOOK, "service"), (REDELIVER, "service")]:
        add(
            _row(
                route,
                f"{route[1].split('/')[-1]}-webhook-as-{wrong}",
                403,
                "forbidden",
                auth=f"role:{wrong}",
            )
        )
    bad_tokens = [
        "missing", "basic-scheme", "bearer-empty", "garbage", "two-segments", "alg-none",
        "alg-none-uppercase", "expired", "wrong-audience", "no-audience", "wrong-issuer",
        "wrong-key", "other-games-key", "claims-other-game", "unknown-kid", "kid-with-nul",
        "no-exp", "no-sub", "sub-trailing-newline", "sub-with-nul", "sub-too-long",
        "sub-number", "unknown-role", "hs256-header-rs256", "header-nested-5000",
        "payload-not-object", "game-claim-with-nul",
    ]  # fmt: skip
    for kind in bad_tokens:
        add(_row(PURCHASE, f"purchase-token-{kind}", 401, "unauthenticated", auth=kind))
    for kind in ("expired", "wrong-key", "sub-trailing-newline", "alg-none", "other-games-key"):
        add(_row(GRANT, f"grant-token-{kind}", 401, "unauthenticated", auth=kind))
        add(_row(DRAFT, f"draft-token-{kind}", 401, "unauthenticated", auth=kind, body=_draft()))
        add(
            Bad(
                f"wallet-token-{kind}",
                "GET",
                "/v1/wallet",
                401,
                "unauthenticated",
                auth=kind,
                idempotent=False,
            )
        )
    for route, wrong in [
        (PURCHASE, "service"),
        (PURCHASE, "studio"),
        (GRANT, "player"),
        (GRANT, "studio"),
        (REFUND, "player"),
        (PUBLISH, "player"),
        (PUBLISH, "service"),
        (RESTOCK, "service"),
        (DRAFT, "player"),
    ]:
        add(
            _row(
                route,
                f"{route[1].split('/')[-1]}-as-{wrong}",
                403,
                "forbidden",
                auth=f"role:{wrong}",
                body=_draft() if route is DRAFT else route[3],
            )
        )
    for what in ("/v1/wallet", "/v1/inventory", "/v1/purchases"):
        add(
            Bad(
                f"get-{what[4:]}-as-service",
                "GET",
                what,
                403,
                "forbidden",
                auth="role:service",
                idempotent=False,
            )
        )
    return rows


MALFORMED = _table()


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _authorization(kind: str, game: Game, other: Callable[[], Game], role: str) -> str | None:
    """The Authorization header of a kind of token (``role`` for the route's own role)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "p1",
        "game": game.id,
        "role": role,
        "aud": "shopkeep",
        "iss": game.key.issuer,
        "iat": now,
        "exp": now + 600,
    }
    header = {"kid": game.key.kid}
    secret = game.key.secret
    assert secret is not None

    def signed(**changes: Any) -> str:
        body = {k: v for k, v in {**claims, **changes}.items() if v is not None}
        return "Bearer " + jwt.encode(body, secret, algorithm="HS256", headers=header)

    def unsigned(alg: str) -> str:
        return f"Bearer {_segment({'alg': alg, 'kid': game.key.kid})}.{_segment(claims)}."

    if kind == "role":
        return signed()
    if kind.startswith("role:"):
        return signed(role=kind.removeprefix("role:"))
    tokens: dict[str, Callable[[], str | None]] = {
        "missing": lambda: None,
        "basic-scheme": lambda: "Basic cDE6c2VjcmV0",
        "bearer-empty": lambda: "Bearer ",
        "garbage": lambda: "Bearer not.a.token",
        "two-segments": lambda: "Bearer " + ".".join(signed().split()[1].split(".")[:2]),
        "alg-none": lambda: unsigned("none"),
        "alg-none-uppercase": lambda: unsigned("NONE"),
        "expired": lambda: signed(iat=now - 7200, exp=now - 3600),
        "wrong-audience": lambda: signed(aud="someone-else"),
        "no-audience": lambda: signed(aud=None),
        "wrong-issuer": lambda: signed(iss="https://evil.example"),
        "wrong-key": lambda: (
            "Bearer " + jwt.encode(claims, "x" * 64, algorithm="HS256", headers=header)
        ),
        # Signed with another game's key (its kid), claiming this game.
        "other-games-key": lambda: (
            "Bearer "
            + jwt.encode(
                claims, other().key.secret, algorithm="HS256", headers={"kid": other().key.kid}
            )
        ),
        "claims-other-game": lambda: signed(game=other().id),
        "unknown-kid": lambda: (
            "Bearer "
            + jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "nobody-1234"})
        ),
        "kid-with-nul": lambda: (
            "Bearer " + jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "k\x00id"})
        ),
        "no-exp": lambda: signed(exp=None),
        "no-sub": lambda: signed(sub=None),
        "sub-trailing-newline": lambda: signed(sub="p1\n"),
        "sub-with-nul": lambda: signed(sub="p\x001"),
        "sub-too-long": lambda: signed(sub="p" * 129),
        "sub-number": lambda: signed(sub=12345),
        "unknown-role": lambda: signed(role="admin"),
        "hs256-header-rs256": lambda: (
            f"Bearer {_segment({**header, 'alg': 'RS256'})}.{_segment(claims)}.c2ln"
        ),
        "header-nested-5000": lambda: (
            "Bearer "
            + base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).rstrip(b"=").decode()
            + f".{_segment(claims)}.c2ln"
        ),
        "payload-not-object": lambda: (
            f"Bearer {_segment(header | {'alg': 'HS256'})}."
            + base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
            + ".c2ln"
        ),
        "game-claim-with-nul": lambda: (
            "Bearer "
            + jwt.encode(
                {**claims, "game": "g\x00ame"}, secret, algorithm="HS256", headers={"kid": "jw-1"}
            )
        ),
    }
    return tokens[kind]()


@pytest.fixture
def funded(client, game: Game) -> Game:
    grant(client, game, "p1", "COINS", 1000)
    grant(client, game, "p1", "GEMS", 10)
    return game


def _send(client, conn, game: Game, row: Bad):
    made: list[Game] = []

    def other() -> Game:
        if not made:
            made.append(make_game(conn))
        return made[0]

    headers: dict[str, str] = {}
    authorization = _authorization(row.auth, game, other, row.role)
    if authorization is not None:
        headers["Authorization"] = authorization
    if row.idempotent:
        headers["Idempotency-Key"] = new_key()
    for name, value in row.headers:
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    if row.raw is not None:
        data: bytes | None = row.raw
    elif row.body is NO_BODY:
        data = None
    else:
        data = json.dumps(row.body).encode()
    return client.open(
        row.path,
        method=row.method,
        data=data,
        headers=headers,
        content_type=row.content_type if data is not None else None,
    )


def _assert_envelope(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert error["request_id"] == response.headers["X-Request-Id"] != ""
    return error


def test_the_table_is_large_and_its_ids_unique() -> None:
    assert len(MALFORMED) >= 200
    ids = [row.id for row in MALFORMED]
    assert len(set(ids)) == len(ids), [i for i in ids if ids.count(i) > 1]


@pytest.mark.parametrize("row", MALFORMED, ids=[row.id for row in MALFORMED])
def test_malformed_request(client, conn, funded: Game, row: Bad) -> None:
    before = snapshot(conn, funded.id)
    response = _send(client, conn, funded, row)
    error = _assert_envelope(response, row.status, row.code)
    if row.field is not None:
        assert row.field in error["details"], error["details"]
    assert snapshot(conn, funded.id) == before


def test_multiline_text_keeps_its_lines(client, conn, game: Game) -> None:
    """Descriptions, release notes and metadata strings may hold tab and line breaks."""
    text = "Line one\n\tLine two\r\nLine three"
    draft = _draft(description=text, metadata={"lore": text})
    studio = game.headers("studio", "designer")
    response = client.put(
        "/v1/admin/catalog/draft", json=draft, headers={**studio, "If-Match": "*"}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["items"][0]["description"] == text
    published = client.post(
        "/v1/admin/catalog/publish",
        json={"notes": text},
        headers={**studio, "Idempotency-Key": new_key()},
    )
    assert published.status_code == 201, published.get_json()
    assert published.get_json()["notes"] == text


def test_metadata_may_nest_within_the_bound(client, game: Game) -> None:
    nested: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 4):  # the body, items, the item and metadata are 4 levels
        nested = {"k": nested}
    response = client.put(
        "/v1/admin/catalog/draft",
        json=_draft(metadata=nested),
        headers={**game.headers("studio", "designer"), "If-Match": "*"},
    )
    assert response.status_code == 200, response.get_json()


def test_expected_price_of_zero_is_a_price_not_a_malformed_request(client, funded: Game) -> None:
    response = client.post(
        "/v1/purchases",
        json={"sku": "potion", "expected_price": {"currency": "COINS", "amount": 0}},
        headers=funded.headers(**{"Idempotency-Key": new_key()}),
    )
    # 0 is a valid price (free items); it is simply not this item's price.
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "price_changed"


def test_books_balance_after_bad_input(client, conn, funded: Game) -> None:
    for quantity in BAD_QUANTITIES:
        client.post(
            "/v1/purchases",
            json={"sku": "potion", "quantity": quantity},
            headers=funded.headers(**{"Idempotency-Key": new_key()}),
        )
    assert [v for v in audit(conn) if funded.id in v] == []
