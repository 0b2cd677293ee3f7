"""The studio page publishes through the store's If-Match check, as the API does, and builds
its idempotency records like the API (the same fingerprint, so a stored key means the same)."""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

import psycopg

from support import Game, buy, grant, new_key, snapshot

CHANGED_MEANWHILE = (
    "The draft was changed by someone else since this page was loaded, so nothing was "
    "published. Open the catalog again to see their changes."
)


def _value(response: Any, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', response.text)
    assert found is not None, name
    return html.unescape(found.group(1))


def _errors(response: Any) -> list[str]:
    lists = re.findall(r'<ul class="error-list">(.*?)</ul>', response.text, flags=re.S)
    items = [item for entry in lists for item in re.findall(r"<li>([^<]+)</li>", entry)]
    return [html.unescape(item) for item in items]


def _sign_in(client: Any, game: Game) -> str:
    """Signs the test client in to the page as alice; returns the session's CSRF token."""
    form = client.get("/studio/login")
    client.post(
        "/studio/login",
        data={"csrf_token": _value(form, "csrf_token"), "token": game.token("studio", "alice")},
    )
    return _value(client.get("/studio/catalog"), "csrf_token")


def _fingerprint(method: str, path: str, body: Any) -> str:
    """The idempotency fingerprint as stored keys hold it: written out here on purpose, so a
    change of its form (which would stop stored keys from replaying) fails this test."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _stored_fingerprint(conn: psycopg.Connection, game: Game, subject: str, key: str) -> str:
    row = conn.execute(
        "SELECT fingerprint FROM idempotency_keys WHERE game_id = %s AND subject = %s AND key = %s",
        (game.id, subject, key),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_draft_changed_after_the_page_was_loaded_is_not_published(
    client: Any, conn: psycopg.Connection, game: Game
) -> None:
    csrf = _sign_in(client, game)
    review = client.get("/studio/diff")
    reviewed_etag, key = _value(review, "etag"), _value(review, "key")

    # Meanwhile someone else changes the draft through the API.
    studio = game.headers("studio", "bob")
    draft = client.get("/v1/admin/catalog/draft", headers=studio)
    assert draft.headers["ETag"] == reviewed_etag
    theirs = draft.get_json()
    theirs["items"][0]["name"] = "Bob's potion"
    put = client.put(
        "/v1/admin/catalog/draft", json=theirs, headers={**studio, "If-Match": reviewed_etag}
    )
    assert put.status_code == 200
    before = snapshot(conn, game.id)

    form = {"csrf_token": csrf, "key": key, "etag": reviewed_etag, "notes": "reviewed"}
    refused = client.post("/studio/publish", data=form)
    assert refused.status_code == 412
    assert _errors(refused) == [CHANGED_MEANWHILE]
    # Nothing was published, and the refusal is not stored with the key.
    assert snapshot(conn, game.id) == before
    versions = client.get("/v1/admin/catalog/versions", headers=studio).get_json()["versions"]
    assert [v["version"] for v in versions] == [1]
    live = client.get("/v1/catalog", headers=game.headers()).get_json()
    assert (live["version"], live["items"][0]["name"]) == (1, "Health potion")

    # Reviewed again, the same form publishes what is in the draft now.
    fresh_etag = _value(client.get("/studio/diff"), "etag")
    assert fresh_etag == put.headers["ETag"]
    published = client.post("/studio/publish", data={**form, "etag": fresh_etag})
    assert (published.status_code, published.headers["Location"]) == (303, "/studio/catalog")
    live = client.get("/v1/catalog", headers=game.headers()).get_json()
    assert (live["version"], live["items"][0]["name"]) == (2, "Bob's potion")
    assert _stored_fingerprint(conn, game, "alice", key) == _fingerprint(
        "POST", "/studio/publish", {"notes": "reviewed", "etag": fresh_etag}
    )


def test_the_api_and_the_page_build_the_same_idempotency_records(
    client: Any, conn: psycopg.Connection, game: Game
) -> None:
    grant(client, game, "p1", "COINS", 1000)
    key = new_key()
    bought = buy(client, game, "potion", key=key, quantity=2)
    assert bought.status_code == 201
    assert _stored_fingerprint(conn, game, "p1", key) == _fingerprint(
        "POST", "/v1/purchases", {"sku": "potion", "quantity": 2}
    )

    csrf = _sign_in(client, game)
    purchase_id = bought.get_json()["purchase"]["id"]
    page_key = new_key()
    form = {"csrf_token": csrf, "key": page_key, "purchase_id": purchase_id, "reason": "mistake"}
    refunded = client.post("/studio/players/p1/refund", data=form)
    assert refunded.status_code == 303
    assert _stored_fingerprint(conn, game, "alice", page_key) == _fingerprint(
        "POST", "/studio/players/p1/refund", {"purchase_id": purchase_id, "reason": "mistake"}
    )
    # Sent again (a double click), the stored outcome is replayed: one refund, not two.
    before = snapshot(conn, game.id)
    again = client.post("/studio/players/p1/refund", data=form)
    assert again.status_code == 303
    assert snapshot(conn, game.id) == before
