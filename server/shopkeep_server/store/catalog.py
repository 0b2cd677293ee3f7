"""Catalogs: one editable draft per game, published as numbered immutable versions."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..errors import NotFound, PreconditionFailed, ValidationFailed
from . import events, offers, risk, rules
from .rules import MAX_AMOUNT, CatalogSchema

_catalog_schema = CatalogSchema()

log = logging.getLogger(__name__)

# Publishing announces the game on this channel (pg_notify, delivered when the publishing
# transaction commits): a server process listening on it knows which version of each game is
# live without a round trip per request (CatalogCache).
LIVE_CHANNEL = "shopkeep_catalog_live"

# A catalog's lists beyond currencies and items (issue 15): a catalog stored before they
# existed has none of them, as loading it fills in.
CATALOG_PARTS = ("products", "segments", "offers", "promo_codes")


def with_parts(content: dict[str, Any]) -> dict[str, Any]:
    # A version published before the risk policy existed has none (null).
    return {"risk": None, **{part: [] for part in CATALOG_PARTS}, **content}


# Every key of a catalog's content: what a draft holds and a version publishes.
CONTENT_KEYS = ("currencies", "items", *CATALOG_PARTS, "risk")


def content_of(version: Mapping[str, Any]) -> dict[str, Any]:
    """A version's (or any catalog document's) content alone, without its summary fields: what
    a draft made from it holds."""
    return {key: version[key] for key in CONTENT_KEYS if key in version}


def validate_catalog(conn: psycopg.Connection, game: str, raw: Any) -> dict[str, Any]:
    """Checks every field and every reference of a catalog; returns it normalized (all
    optional fields present, timestamps in UTC). Raises validation_failed with field paths."""
    data = rules.load(_catalog_schema, raw)
    errors = _entry_errors(data)
    for path, messages in offers.catalog_errors(data).items():
        errors.setdefault(path, []).extend(messages)
    published_scales: dict[str, int] = dict(
        conn.execute(
            "SELECT DISTINCT ON (cc.code) cc.code, cc.scale FROM catalog_currencies cc"
            " JOIN catalog_versions v ON v.id = cc.version_id WHERE v.game_id = %s"
            " ORDER BY cc.code, v.version DESC",
            (game,),
        ).fetchall()
    )
    for index, currency in enumerate(data["currencies"]):
        was = published_scales.get(currency["code"])
        if was is not None and was != currency["scale"]:
            # Stored balances are minor units of the old scale: changing it would change money.
            errors.setdefault(f"currencies.{index}.scale", []).append(
                f"a published currency keeps its scale ({was})"
            )
    if errors:
        raise ValidationFailed(details=errors)
    return _normalized(data)


def _entry_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """Entries that appear twice and references to what the catalog does not hold."""
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    codes: set[str] = set()
    for index, currency in enumerate(data["currencies"]):
        if currency["code"] in codes:
            fail(f"currencies.{index}.code", f"{currency['code']} appears twice")
        codes.add(currency["code"])
    kinds: dict[str, str] = {}
    for index, item in enumerate(data["items"]):
        if item["sku"] in kinds:
            fail(f"items.{index}.sku", f"{item['sku']} appears twice")
        kinds[item["sku"]] = item["kind"]
    for index, item in enumerate(data["items"]):
        for p_index, price in enumerate(item["prices"]):
            if price["currency"] not in codes:
                fail(f"items.{index}.prices.{p_index}.currency", "not a currency of this catalog")
        for c_index, content in enumerate(item["contents"]):
            path = f"items.{index}.contents.{c_index}"
            if "sku" in content:
                kind = kinds.get(content["sku"])
                if kind is None:
                    fail(f"{path}.sku", "not an item of this catalog")
                elif kind == "bundle":
                    fail(f"{path}.sku", "a bundle cannot hold another bundle")
            elif content["currency"] not in codes:
                fail(f"{path}.currency", "not a currency of this catalog")
    _product_errors(data.get("products", []), codes, kinds, fail)
    for path, message in risk.policy_reference_errors(data.get("risk"), codes):
        fail(path, message)
    return errors


def _product_errors(
    products: list[dict[str, Any]],
    codes: set[str],
    kinds: dict[str, str],
    fail: Callable[[str, str], None],
) -> None:
    """Real-money products: unique ids, each store id sold by one product only, and grants
    of this catalog's currencies and items (one entry per currency and per sku)."""
    ids: set[str] = set()
    store_ids: dict[tuple[str, str], str] = {}
    for index, product in enumerate(products):
        path = f"products.{index}"
        if product["id"] in ids:
            fail(f"{path}.id", f"{product['id']} appears twice")
        ids.add(product["id"])
        for store, store_id in product["store_ids"].items():
            other = store_ids.setdefault((store, store_id), product["id"])
            if other != product["id"]:
                fail(f"{path}.store_ids.{store}", f"{store_id} is already product {other}")
        granted_currencies = [c["currency"] for c in product["grants"]["currencies"]]
        for c_index, currency in enumerate(granted_currencies):
            if currency not in codes:
                fail(
                    f"{path}.grants.currencies.{c_index}.currency", "not a currency of this catalog"
                )
        if len(set(granted_currencies)) != len(granted_currencies):
            fail(f"{path}.grants.currencies", "each currency may appear once")
        granted_skus = [i["sku"] for i in product["grants"]["items"]]
        for i_index, sku in enumerate(granted_skus):
            kind = kinds.get(sku)
            if kind is None:
                fail(f"{path}.grants.items.{i_index}.sku", "not an item of this catalog")
            elif kind == "bundle":
                fail(f"{path}.grants.items.{i_index}.sku", "a product grants items, not bundles")
        if len(set(granted_skus)) != len(granted_skus):
            fail(f"{path}.grants.items", "each sku may appear once")


def _normalized(data: dict[str, Any]) -> dict[str, Any]:
    items = []
    for item in data["items"]:
        items.append(
            {
                **item,
                "available_from": rules.format_timestamp(item["available_from"]),
                "available_until": rules.format_timestamp(item["available_until"]),
            }
        )
    return {
        "currencies": data["currencies"],
        "items": items,
        "products": data["products"],
        **offers.normalized_parts(data),
        # `risk` is always there once stored: the policy, or null (left out: no risk limits).
        "risk": data.get("risk"),
    }


# ---------------------------------------------------------------------------------------------
# Draft
# ---------------------------------------------------------------------------------------------


def draft_etag(revision: int) -> str:
    return f'"draft-{revision}"'


def get_draft(conn: psycopg.Connection, game: str) -> tuple[dict[str, Any], str]:
    row = conn.execute("SELECT draft, draft_revision FROM games WHERE id = %s", (game,)).fetchone()
    if row is None:
        raise NotFound("no such game")
    return with_parts(row[0]), draft_etag(row[1])


def put_draft(
    conn: psycopg.Connection, game: str, raw: Any, *, if_match: str
) -> tuple[dict[str, Any], str]:
    """Replaces the whole draft when ``if_match`` is its current ETag (or ``*``)."""
    content = validate_catalog(conn, game, raw)
    with conn.transaction():
        row = conn.execute(
            "SELECT draft_revision FROM games WHERE id = %s FOR UPDATE", (game,)
        ).fetchone()
        if row is None:
            raise NotFound("no such game")
        if not _matches(if_match, row[0]):
            raise PreconditionFailed(
                "the draft was changed since you read it", details={"etag": draft_etag(row[0])}
            )
        revision = conn.execute(
            "UPDATE games SET draft = %s, draft_revision = draft_revision + 1,"
            " draft_updated_at = now() WHERE id = %s RETURNING draft_revision",
            (Jsonb(content), game),
        ).fetchone()
    assert revision is not None
    return content, draft_etag(revision[0])


def _matches(if_match: str, revision: int) -> bool:
    """If-Match semantics: ``*`` or any listed tag equal to the draft's ETag."""
    tags = [tag.strip().removeprefix("W/") for tag in if_match.split(",")]
    return "*" in tags or draft_etag(revision) in tags


# ---------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------


def publish(
    conn: psycopg.Connection,
    game: str,
    *,
    actor: str,
    notes: str = "",
    stock_buckets: int,
    content: dict[str, Any] | None = None,
    if_match: str | None = None,
) -> dict[str, Any]:
    """Publishes the draft (or ``content``) as the next version, live at once. The caller's
    transaction holds it, so a purchase sees the old version or the new one, never a mix.
    With ``if_match`` (the draft's ETag) only that exact draft is published."""
    published = _publish(
        conn,
        game,
        actor=actor,
        notes=notes,
        stock_buckets=stock_buckets,
        content=content,
        if_match=if_match,
    )
    events.emit(conn, game, "catalog.published", published)
    return published


def _publish(
    conn: psycopg.Connection,
    game: str,
    *,
    actor: str,
    notes: str,
    stock_buckets: int,
    content: dict[str, Any] | None,
    if_match: str | None,
) -> dict[str, Any]:
    row = conn.execute(
        "SELECT draft, draft_revision FROM games WHERE id = %s FOR UPDATE", (game,)
    ).fetchone()
    if row is None:
        raise NotFound("no such game")
    if if_match is not None and not _matches(if_match, row[1]):
        raise PreconditionFailed(
            "the draft was changed since you reviewed it", details={"etag": draft_etag(row[1])}
        )
    content = validate_catalog(conn, game, row[0] if content is None else content)
    version_row = conn.execute(
        "INSERT INTO catalog_versions (game_id, version, content, notes, published_by)"
        " SELECT %(game)s, coalesce(max(version), 0) + 1, %(content)s, %(notes)s, %(actor)s"
        " FROM catalog_versions WHERE game_id = %(game)s"
        " RETURNING id, version, published_at",
        {"game": game, "content": Jsonb(content), "notes": notes, "actor": actor},
    ).fetchone()
    assert version_row is not None
    version_id, version, published_at = version_row
    conn.execute(
        "INSERT INTO catalog_currencies (version_id, code, scale, max_balance)"
        " SELECT %s, c.code, c.scale, c.max_balance FROM jsonb_to_recordset(%s)"
        " AS c(code text, scale smallint, max_balance bigint)",
        (version_id, Jsonb(content["currencies"])),
    )
    conn.execute(
        "INSERT INTO catalog_items (version_id, sku, kind, prices, contents, stock,"
        " per_player_limit, available_from, available_until)"
        " SELECT %s, i.sku, i.kind, i.prices, i.contents, i.stock, i.per_player_limit,"
        " i.available_from, i.available_until FROM jsonb_to_recordset(%s) AS i(sku text,"
        " kind text, prices jsonb, contents jsonb, stock bigint, per_player_limit bigint,"
        " available_from timestamptz, available_until timestamptz)",
        (version_id, Jsonb(content["items"])),
    )
    if content["products"]:
        _publish_products(conn, version_id, content["products"])
    offers.publish_parts(conn, game, version_id, content)
    # Stock is live state: created the first time a limited sku is published, then only
    # changed by purchases and restocks; a later version's `stock` does not reset it.
    conn.execute(
        "WITH new_levels AS ("
        "  INSERT INTO stock_levels (game_id, sku, initial, buckets)"
        "  SELECT %(game)s, sku, stock, least(%(buckets)s, greatest(stock, 1))"
        "  FROM catalog_items WHERE version_id = %(version_id)s AND stock IS NOT NULL"
        "  ON CONFLICT DO NOTHING RETURNING game_id, sku, initial, buckets)"
        " INSERT INTO stock_buckets (game_id, sku, bucket, remaining)"
        " SELECT game_id, sku, b, initial / buckets + (b < initial %% buckets)::int"
        " FROM new_levels, generate_series(0, buckets - 1) AS b",
        {"game": game, "buckets": stock_buckets, "version_id": version_id},
    )
    conn.execute("UPDATE games SET live_version_id = %s WHERE id = %s", (version_id, game))
    conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, game))
    return {
        "version": version,
        "notes": notes,
        "published_by": actor,
        "published_at": rules.format_timestamp(published_at),
    }


def _publish_products(
    conn: psycopg.Connection, version_id: int, products: list[dict[str, Any]]
) -> None:
    """The version's real-money products as rows, one per store that sells each."""
    conn.execute(
        "INSERT INTO catalog_products (version_id, store, store_product_id, product_id, grants)"
        " SELECT %s, s.key, s.value, p.id, (p.grants->'currencies') || (p.grants->'items')"
        " FROM jsonb_to_recordset(%s) AS p(id text, store_ids jsonb, grants jsonb),"
        " jsonb_each_text(p.store_ids) AS s",
        (version_id, Jsonb(products)),
    )


def rollback(
    conn: psycopg.Connection, game: str, *, version: int, actor: str, stock_buckets: int
) -> dict[str, Any]:
    """Publishes an earlier version's content as a new version. The draft is left as it is."""
    row = conn.execute(
        "SELECT content FROM catalog_versions WHERE game_id = %s AND version = %s",
        (game, version),
    ).fetchone()
    if row is None:
        raise NotFound(f"no version {version}")
    published = _publish(
        conn,
        game,
        actor=actor,
        notes=f"rollback to version {version}",
        stock_buckets=stock_buckets,
        content=row[0],
        if_match=None,
    )
    events.emit(conn, game, "catalog.rolled_back", {**published, "restored_version": version})
    return published


def list_versions(conn: psycopg.Connection, game: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT v.version, v.notes, v.published_by, v.published_at, v.id = g.live_version_id"
        " FROM catalog_versions v JOIN games g ON g.id = v.game_id"
        " WHERE v.game_id = %s ORDER BY v.version DESC",
        (game,),
    ).fetchall()
    return [
        {
            "version": version,
            "notes": notes,
            "published_by": by,
            "published_at": rules.format_timestamp(at),
            "live": live,
        }
        for version, notes, by, at, live in rows
    ]


def get_version(conn: psycopg.Connection, game: str, version: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT v.version, v.notes, v.published_by, v.published_at, v.id = g.live_version_id,"
        " v.content FROM catalog_versions v JOIN games g ON g.id = v.game_id"
        " WHERE v.game_id = %s AND v.version = %s",
        (game, version),
    ).fetchone()
    if row is None:
        raise NotFound(f"no version {version}")
    number, notes, by, at, live, content = row
    return {
        "version": number,
        "notes": notes,
        "published_by": by,
        "published_at": rules.format_timestamp(at),
        "live": live,
        **with_parts(content),
    }


# ---------------------------------------------------------------------------------------------
# The live catalog, cached per process by version
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LiveCatalog:
    """A published version as served: rendered once, reused by every request."""

    version_id: int
    version: int
    content: dict[str, Any]
    body: bytes
    etag: str  # unquoted; the response quotes it
    # Issue 15: what players are served (store/offers.py), whether the version has offers
    # (then each player's view is priced per request), its locales, and the served catalog
    # rendered per locale (filled as readers ask).
    served: dict[str, Any] = dataclasses.field(default_factory=dict)
    personal: bool = False
    locales: frozenset[str] = frozenset()
    by_locale: dict[str, tuple[dict[str, Any], bytes]] = dataclasses.field(default_factory=dict)
    # Each reader's view rendered once: (locale, the player's own prices, the items hidden from
    # it) -> (body, ETag).
    views: dict[tuple[str, tuple[Any, ...], tuple[str, ...]], tuple[bytes, str]] = (
        dataclasses.field(default_factory=dict)
    )


# Players per process whose profile row is known to exist (a set of short tuples: a few MB).
SEEN_PLAYERS = 100_000


class CatalogCache:
    """Versions are immutable, so a version id (unique, never reused) is a perfect cache key.

    Which version is live is remembered per game too, but only while a connection of this
    process LISTENs on LIVE_CHANNEL (:meth:`listen`, started by each server worker): a publish
    anywhere then makes this process forget the game's live version as soon as it commits,
    and the next request reads it again. Without a listener (an application in a test, a lost
    connection) every request reads the live version from the database, as it always did."""

    def __init__(self, *, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[int, LiveCatalog] = OrderedDict()
        self._lock = threading.Lock()
        self._live: dict[str, tuple[int, int]] = {}  # game -> (version id, version)
        self._listening = False
        # Bumped by every notification and every (re)connection: a live version read before a
        # bump may be out of date and is not remembered.
        self._generation = 0
        # (game, player) whose profile row this process saw made (offers.view_for).
        self._seen: set[tuple[str, str]] = set()

    def listen(self, url: str) -> None:
        """Starts hearing of publishes on a connection of its own (a thread, for good)."""
        _LiveListener(self, url).start()

    def known(self, game: str) -> LiveCatalog | None:
        """The game's live catalog when this process knows it without asking the database."""
        live = self._live.get(game)
        return None if live is None else self.get(live[0])

    def generation(self) -> int:
        return self._generation

    def remember_live(self, game: str, version_id: int, version: int, generation: int) -> None:
        """Remembers the live version read at ``generation``, unless a publish may have been
        heard since (or nothing is listening)."""
        with self._lock:
            if self._listening and self._generation == generation:
                if len(self._live) > 10_000:  # one entry per game: a bound, not a policy
                    self._live.clear()
                self._live[game] = (version_id, version)

    def forget_live(self, game: str) -> None:
        with self._lock:
            self._generation += 1
            self._live.pop(game, None)

    def set_listening(self, listening: bool) -> None:
        with self._lock:
            self._generation += 1
            self._listening = listening
            self._live.clear()

    def seen(self, game: str, player: str) -> bool:
        return (game, player) in self._seen

    def saw(self, game: str, player: str) -> None:
        if len(self._seen) >= SEEN_PLAYERS:
            self._seen.clear()  # a bound on memory: a player forgotten is only written again
        self._seen.add((game, player))

    def get(self, version_id: int) -> LiveCatalog | None:
        with self._lock:
            entry = self._entries.get(version_id)
            if entry is not None:
                self._entries.move_to_end(version_id)
            return entry

    def put(self, entry: LiveCatalog) -> None:
        with self._lock:
            self._entries[entry.version_id] = entry
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def live_version(conn: psycopg.Connection, game: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT g.live_version_id, v.version FROM games g"
        " JOIN catalog_versions v ON v.id = g.live_version_id WHERE g.id = %s",
        (game,),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def live_catalog(conn: psycopg.Connection, game: str, *, cache: CatalogCache) -> LiveCatalog:
    generation = cache.generation()
    live = live_version(conn, game)
    if live is None:
        raise NotFound("this game has no published catalog")
    version_id, version = live
    cache.remember_live(game, version_id, version, generation)
    entry = cache.get(version_id)
    if entry is None:
        # The risk policy is the studio's business, not the players': never served to them.
        row = conn.execute(
            "SELECT content - 'risk' FROM catalog_versions WHERE id = %s", (version_id,)
        ).fetchone()
        assert row is not None
        content = {"version": version, **with_parts(row[0])}
        served = offers.served_content(row[0], version)
        body = json.dumps(served, separators=(",", ":"), ensure_ascii=False).encode()
        entry = LiveCatalog(
            version_id,
            version,
            content,
            body,
            f"v{version_id}",
            served=served,
            personal=offers.is_personal(row[0]),
            locales=frozenset(offers.locales_of(row[0])),
        )
        cache.put(entry)
    return entry


class _LiveListener(threading.Thread):
    """LISTENs on LIVE_CHANNEL for a CatalogCache, reconnecting after a lost connection (and
    the cache reads from the database meanwhile)."""

    def __init__(self, cache: CatalogCache, url: str) -> None:
        super().__init__(name="shopkeep-catalog-listener", daemon=True)
        self.cache = cache
        self.url = url

    def run(self) -> None:
        delay = 1.0
        while True:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute("LISTEN " + LIVE_CHANNEL)
                    self.cache.set_listening(True)
                    delay = 1.0
                    for notification in conn.notifies():
                        self.cache.forget_live(notification.payload)
            except psycopg.Error as exc:
                log.warning("catalog listener: %s (the catalog is read per request meanwhile)", exc)
            finally:
                self.cache.set_listening(False)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


# ---------------------------------------------------------------------------------------------
# Limited stock
# ---------------------------------------------------------------------------------------------


def stock(
    conn: psycopg.Connection, game: str, skus: list[str] | None, *, player: str | None = None
) -> list[dict[str, Any]]:
    """Remaining units of the live catalog's limited items (all of them when skus is None).
    For a ``player``, without the items only a segment it is not in sees (sk_hidden_items, as
    its catalog leaves them out)."""
    rows = conn.execute(
        "SELECT i.sku, sk_stock_remaining(g.id, i.sku) FROM games g"
        " JOIN catalog_items i ON i.version_id = g.live_version_id"
        " WHERE g.id = %(game)s AND i.stock IS NOT NULL"
        " AND (%(skus)s::text[] IS NULL OR i.sku = ANY(%(skus)s))"
        " AND (%(player)s::text IS NULL OR i.sku NOT IN"
        "  (SELECT sk_hidden_items(g.id, %(player)s, g.live_version_id, now())))"
        " ORDER BY i.sku",
        {"game": game, "skus": skus, "player": player},
    ).fetchall()
    return [{"sku": sku, "remaining": remaining} for sku, remaining in rows]


def restock(
    conn: psycopg.Connection, game: str, sku: str, *, add: int, actor: str
) -> dict[str, Any]:
    """Adds units to a limited item, spread evenly over its buckets."""
    if not 1 <= add <= MAX_AMOUNT:
        raise ValidationFailed(details={"add": [f"must be between 1 and {MAX_AMOUNT}"]})
    level = conn.execute(
        "SELECT buckets FROM stock_levels WHERE game_id = %s AND sku = %s FOR UPDATE", (game, sku)
    ).fetchone()
    if level is None:
        raise NotFound(f"{sku} is not a published limited item")
    buckets = level[0]
    conn.execute(
        "UPDATE stock_buckets SET remaining = remaining + %(add)s / %(n)s"
        " + (bucket < %(add)s %% %(n)s)::int WHERE game_id = %(game)s AND sku = %(sku)s",
        {"add": add, "n": buckets, "game": game, "sku": sku},
    )
    conn.execute(
        "INSERT INTO stock_restocks (game_id, sku, added, added_by) VALUES (%s, %s, %s, %s)",
        (game, sku, add, actor),
    )
    remaining = conn.execute("SELECT sk_stock_remaining(%s, %s)", (game, sku)).fetchone()
    assert remaining is not None
    restocked = {"sku": sku, "remaining": remaining[0]}
    events.emit(conn, game, "stock.restocked", {**restocked, "added": add})
    return restocked
