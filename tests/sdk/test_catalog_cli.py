"""`shopkeep catalog ...` against the live server: the catalog as a file, round trip.

The CLI runs in-process (click's CliRunner) and talks HTTP to the real server (gunicorn), so
everything between the file and the database is the shipped code.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from shopkeep import catalog_diff, catalog_file
from shopkeep.catalog_cli import Exit, main
from shopkeep.studio import StudioClient

SMALL_CATALOG: dict[str, Any] = {
    "currencies": [
        {"code": "COINS", "name": "Coins", "scale": 0, "max_balance": 1_000_000},
        {"code": "GEMS", "name": "Gems", "scale": 0},
    ],
    "items": [
        {
            "sku": "potion",
            "name": "Health potion",
            "kind": "consumable",
            "prices": [{"currency": "COINS", "amount": 50}],
            "tags": ["consumable"],
        },
        {
            "sku": "sword",
            "name": "Sword",
            "kind": "durable",
            "prices": [{"currency": "COINS", "amount": 300}, {"currency": "GEMS", "amount": 3}],
            "metadata": {"damage": 12},
        },
        {
            "sku": "egg",
            "name": "Dragon egg",
            "description": "Limited drop.",
            "kind": "durable",
            "prices": [{"currency": "COINS", "amount": 800}],
            "stock": 10,
            "per_player_limit": 1,
            "available_from": "2020-01-01T00:00:00Z",
            "available_until": "2100-01-01T00:00:00Z",
            "tags": ["limited"],
        },
        {
            "sku": "starter",
            "name": "Starter pack",
            "kind": "bundle",
            "prices": [{"currency": "GEMS", "amount": 5}],
            "contents": [{"sku": "potion", "quantity": 3}, {"currency": "COINS", "amount": 100}],
            "per_player_limit": 1,
        },
    ],
}

# What `pull` writes for SMALL_CATALOG, byte for byte: fixed field order, defaults left out.
SMALL_YAML = """\
# Shopkeep catalog. Amounts are integers in each currency's minor unit.
# Check it with `shopkeep catalog diff FILE`, send it with `shopkeep catalog push FILE`.
currencies:
  - code: COINS
    name: Coins
    scale: 0
    max_balance: 1000000
  - code: GEMS
    name: Gems
    scale: 0
items:
  - sku: potion
    name: Health potion
    kind: consumable
    prices:
      - {currency: COINS, amount: 50}
    tags: [consumable]
  - sku: sword
    name: Sword
    kind: durable
    prices:
      - {currency: COINS, amount: 300}
      - {currency: GEMS, amount: 3}
    metadata:
      damage: 12
  - sku: egg
    name: Dragon egg
    description: Limited drop.
    kind: durable
    prices:
      - {currency: COINS, amount: 800}
    stock: 10
    per_player_limit: 1
    available_from: '2020-01-01T00:00:00Z'
    available_until: '2100-01-01T00:00:00Z'
    tags: [limited]
  - sku: starter
    name: Starter pack
    kind: bundle
    prices:
      - {currency: GEMS, amount: 5}
    contents:
      - {sku: potion, quantity: 3}
      - {currency: COINS, amount: 100}
    per_player_limit: 1
"""


class Cli:
    """`shopkeep --server URL --token T ...`, run in-process."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token

    def __call__(self, *args: str) -> Result:
        options = ["--server", self.url] + (["--token", self.token] if self.token else [])
        return CliRunner().invoke(main, [*options, *args], env={"SHOPKEEP_TOKEN": None})


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _live_potion_price(url: str, player_token: str) -> tuple[int, list[dict[str, Any]]]:
    body = httpx.get(f"{url}/v1/catalog", headers=_auth(player_token)).json()
    potion = next(item for item in body["items"] if item["sku"] == "potion")
    return body["version"], potion["prices"]


@pytest.fixture
def shop(live_server):  # type: ignore[no-untyped-def]
    return live_server.new_game(catalog=SMALL_CATALOG)


@pytest.fixture
def cli(live_server, shop) -> Cli:  # type: ignore[no-untyped-def]
    return Cli(live_server.url, shop.token("studio", "alice"))


def test_pull_edit_diff_push_publish_versions_rollback(
    live_server,  # type: ignore[no-untyped-def]
    shop,
    cli: Cli,
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"

    # pull: the live version, in the file's stable order.
    pulled = cli("catalog", "pull", "--live", "-o", str(path))
    assert pulled.exit_code == Exit.OK, pulled.output
    assert pulled.stderr == f"pulled version 1 (live) into {path}\n"
    assert path.read_text() == SMALL_YAML
    again = cli("catalog", "pull", "--version", "1")
    assert again.exit_code == Exit.OK
    assert again.stdout == SMALL_YAML  # same catalog, same bytes

    # edit: as a person would, in the text.
    path.write_text(
        SMALL_YAML.replace("{currency: COINS, amount: 50}", "{currency: COINS, amount: 60}")
        .replace("    tags: [limited]\n", "    tags: [limited, spring]\n")
        .replace(
            "  - sku: starter\n",
            "  - sku: elixir\n"
            "    name: Elixir\n"
            "    kind: consumable\n"
            "    prices:\n"
            "      - {currency: GEMS, amount: 2}\n"
            "  - sku: starter\n",
        )
    )

    # diff against live: per item and field.
    against_live = cli("catalog", "diff", str(path), "--against", "live")
    assert against_live.exit_code == Exit.OK, against_live.output
    assert against_live.stdout.splitlines() == [
        "--- live version 1",
        f"+++ {path}",
        "items:",
        "  ~ potion",
        "      prices: 50 COINS -> 60 COINS",
        "  ~ egg",
        "      tags: limited -> limited, spring",
        "  + elixir: Elixir, consumable, 2 GEMS",
        "items: 2 changed, 1 added",
    ]
    # The game was published through its draft, so the draft shows the same changes.
    against_draft = cli("catalog", "diff", str(path), "--exit-code")
    assert against_draft.exit_code == Exit.REFUSED
    assert against_draft.stdout.splitlines()[0] == '--- draft "draft-2"'
    assert against_draft.stdout.splitlines()[-1] == "items: 2 changed, 1 added"

    # push: the draft becomes the file.
    pushed = cli("catalog", "push", str(path))
    assert pushed.exit_code == Exit.OK, pushed.output
    assert pushed.stdout.splitlines()[0] == (
        f'pushed {path} to the draft (items: 2 changed, 1 added); draft ETag "draft-3"'
    )
    same = cli("catalog", "diff", str(path), "--exit-code")
    assert same.exit_code == Exit.OK, same.output
    assert same.stdout.splitlines() == ['--- draft "draft-3"', f"+++ {path}", "no differences"]
    assert cli("catalog", "pull").stdout == path.read_text()  # the draft pulls back as written

    # publish: live at once; the player API serves the new price.
    published = cli("catalog", "publish", "--notes", "spring prices")
    assert published.exit_code == Exit.OK, published.output
    assert published.stdout == "published version 2: live now\n"
    player = shop.token("player", "p1")
    assert _live_potion_price(live_server.url, player) == (
        2,
        [{"currency": "COINS", "amount": 60}],
    )

    # versions: newest first, the live one marked.
    listed = cli("catalog", "versions")
    assert listed.exit_code == Exit.OK
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["VERSION", "LIVE", "PUBLISHED", "BY", "NOTES"]
    assert [(r[0], r[1], r[4], r[5:]) for r in rows[1:2]] == [
        ("2", "*", "alice", ["spring", "prices"])
    ]
    assert [(r[0], r[3]) for r in rows[2:]] == [("1", "fixture")]

    # rollback: version 1's content, published again as version 3.
    rolled = cli("catalog", "rollback", "1")
    assert rolled.exit_code == Exit.OK, rolled.output
    assert rolled.stdout == (
        "rolled back: version 3 is live with the content of version 1; the draft is unchanged\n"
    )
    assert _live_potion_price(live_server.url, player) == (
        3,
        [{"currency": "COINS", "amount": 50}],
    )
    missing = cli("catalog", "rollback", "99")
    assert missing.exit_code == Exit.REFUSED
    assert missing.stderr.startswith("error: no version 99 (404 not_found, request ")


def test_a_stale_push_is_refused_and_the_other_edit_is_kept(
    live_server,  # type: ignore[no-untyped-def]
    shop,
    cli: Cli,
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"
    assert cli("catalog", "pull", "--live", "-o", str(path)).exit_code == Exit.OK
    assert cli("catalog", "push", str(path)).exit_code == Exit.OK
    reviewed = cli("catalog", "diff", str(path))
    etag = reviewed.stdout.splitlines()[0].removeprefix("--- draft ")
    assert etag == '"draft-3"'

    # Someone else edits the draft (the web page, another CLI) after the review.
    bob = StudioClient(live_server.url, shop.token("studio", "bob"))
    draft = bob.draft()
    theirs = draft.content
    theirs["items"][0]["name"] = "Bob's potion"
    assert bob.put_draft(theirs, if_match=draft.etag).etag == '"draft-4"'

    path.write_text(path.read_text().replace("amount: 50}", "amount: 70}"))
    stale = cli("catalog", "push", str(path), "--if-match", etag)
    assert stale.exit_code == Exit.REFUSED
    assert stale.stderr == (
        'error: the draft was changed by someone else since it was read (it is now "draft-4");'
        " nothing was pushed. Look at it with `shopkeep catalog diff FILE`, then push again.\n"
    )
    after = bob.draft()
    bob.close()
    assert after.etag == '"draft-4"'
    assert after.content["items"][0]["name"] == "Bob's potion"
    assert after.content["items"][0]["prices"] == [{"currency": "COINS", "amount": 50}]

    # Publishing the ETag that was pushed (draft-3) would publish bob's draft unseen: refused.
    stale_publish = cli("catalog", "publish", "--if-match", '"draft-3"', "--notes", "mine")
    assert stale_publish.exit_code == Exit.REFUSED
    assert stale_publish.stderr == (
        'error: the draft was changed by someone else since it was read (it is now "draft-4");'
        " nothing was published. Look at it with `shopkeep catalog diff FILE`, then publish"
        " again.\n"
    )
    assert [line.split()[0] for line in cli("catalog", "versions").stdout.splitlines()] == [
        "VERSION",
        "1",
    ]
    both = cli("catalog", "publish", "--if-match", '"draft-4"', "--any-draft")
    assert both.exit_code == Exit.USAGE
    # Without --if-match, the draft as read now (bob's), with its changes shown first.
    published = cli("catalog", "publish", "--notes", "bob's name")
    assert published.exit_code == Exit.OK, published.output
    assert published.stderr == 'publishing draft "draft-4" (items: 1 changed)\n'
    assert published.stdout == "published version 2: live now\n"


def test_a_broken_file_is_refused_with_its_line(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    lines = SMALL_YAML.splitlines(keepends=True)
    # Line 16 holds potion's price, line 23 sword's GEMS price (1-based).
    assert lines[15] == "      - {currency: COINS, amount: 50}\n"
    assert lines[22] == "      - {currency: GEMS, amount: 3}\n"
    lines[15] = "      - {currency: COINS, amount: -5}\n"
    lines[22] = "      - {currency: RUBY, amount: 3}\n"
    path.write_text("".join(lines))

    # The store checks the fields first, then references (which only it can check); the CLI
    # shows each problem at its line, with the item's sku.
    refused = cli("catalog", "push", str(path))
    assert refused.exit_code == Exit.REFUSED
    assert refused.stderr.splitlines() == [
        f"{path}:16: items[0] (potion) prices[0].amount: Must be greater than or equal to 0"
        " and less than or equal to 9007199254740991.",
        "error: the request is not valid",
    ]
    lines[15] = "      - {currency: COINS, amount: 5}\n"
    path.write_text("".join(lines))
    unknown = cli("catalog", "push", str(path))
    assert unknown.exit_code == Exit.REFUSED
    assert unknown.stderr.splitlines() == [
        f"{path}:23: items[1] (sword) prices[1].currency: not a currency of this catalog",
        "error: the request is not valid",
    ]
    lines[15] = "      - {currency: COINS, amount: -5}\n"
    path.write_text("".join(lines))

    # diff runs the same field rules before comparing.
    diffed = cli("catalog", "diff", str(path))
    assert diffed.exit_code == Exit.REFUSED
    assert diffed.stderr.splitlines() == [
        f"{path}:16: items[0] (potion) prices[0].amount: Must be greater than or equal to 0"
        " and less than or equal to 9007199254740991."
    ]

    # Not YAML at all: the parser's line.
    path.write_text("currencies: []\nitems:\n  - sku: potion\n    prices: [\n")
    broken = cli("catalog", "push", str(path))
    assert broken.exit_code == Exit.REFUSED
    assert broken.stderr.startswith(f"{path}:5: YAML: ")

    # Two keys the same: YAML would keep the last silently; the file is refused instead.
    path.write_text("currencies: []\nitems: []\nitems: []\n")
    twice = cli("catalog", "push", str(path))
    assert twice.exit_code == Exit.REFUSED
    assert twice.stderr == f"{path}:3: 'items' appears twice in the same mapping\n"

    # JSON files point at their lines the same way.
    json_path = tmp_path / "catalog.json"
    document = catalog_file.dumps(SMALL_CATALOG, "json").replace('"amount": 800', '"amount": 8.5')
    json_path.write_text(document)
    line = document[: document.index('"amount": 8.5')].count("\n") + 1
    refused_json = cli("catalog", "push", str(json_path))
    assert refused_json.exit_code == Exit.REFUSED
    assert refused_json.stderr.splitlines()[0] == (
        f"{json_path}:{line}: items[2] (egg) prices[0].amount: Not a valid integer."
    )


def test_json_pull_and_yaml_scalars(live_server, shop, cli: Cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    json_path = tmp_path / "catalog.json"
    assert cli("catalog", "pull", "--live", "-o", str(json_path)).exit_code == Exit.OK
    with StudioClient(live_server.url, shop.token("studio", "alice")) as studio:
        stored = studio.validate(SMALL_CATALOG)
    assert json.loads(json_path.read_text()) == catalog_file.ordered_catalog(stored)
    # YAML 1.2 scalars: `on` and an unquoted date stay text, as in the JSON twin.
    loaded = catalog_file.loads("currencies: []\nitems: []\nx: [on, 2025-01-01, 1_000, 010]\n")
    assert loaded.data["x"] == ["on", "2025-01-01", 1000, "010"]


def test_exit_codes_for_auth_usage_and_an_unreachable_store(
    live_server,  # type: ignore[no-untyped-def]
    shop,
) -> None:
    no_token = Cli(live_server.url, None)("catalog", "versions")
    assert no_token.exit_code == Exit.AUTH
    assert no_token.stderr.startswith("error: no token: pass --token or set SHOPKEEP_TOKEN")

    player = Cli(live_server.url, shop.token("player", "p1"))("catalog", "versions")
    assert player.exit_code == Exit.AUTH
    assert player.stderr == "error: this needs the studio role, not player (use a studio token)\n"

    forged = Cli(live_server.url, "not-a-token")("catalog", "versions")
    assert forged.exit_code == Exit.AUTH
    assert forged.stderr.startswith("error: the store refused the token: malformed token.")

    usage = Cli(live_server.url, shop.token("studio", "alice"))("catalog", "rollback", "zero")
    assert usage.exit_code == Exit.USAGE

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, never listening: connections are refused
        down = Cli(f"http://127.0.0.1:{closed_port}", "token")("catalog", "versions")
    assert down.exit_code == Exit.UNREACHABLE
    assert down.stderr.startswith(
        f"error: cannot reach the store at http://127.0.0.1:{closed_port}"
    )


def test_a_purchase_during_a_publish_pays_the_price_it_was_shown_or_gets_price_changed(
    live_server,  # type: ignore[no-untyped-def]
    shop,
    cli: Cli,
    tmp_path: Path,
) -> None:
    """Buyers read the live catalog and buy with expected_price while the CLI publishes new
    prices. Each purchase is checked against one immutable version in one transaction, so it
    is charged exactly the price the buyer saw, from the version the buyer saw, or refused
    with price_changed naming the price of the version it met; never anything in between."""
    url = live_server.url
    prices = {1: 50}
    buyers = [f"racer-{i}" for i in range(4)]
    for player_id in buyers:
        shop.grant(player_id, "COINS", 100_000)
    results: dict[str, list[tuple[int, int, httpx.Response]]] = {p: [] for p in buyers}
    start = threading.Event()

    def buy(player_id: str) -> None:
        headers = _auth(shop.token("player", player_id))
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            start.wait()
            for _ in range(15):
                live = client.get("/v1/catalog").json()
                potion = next(i for i in live["items"] if i["sku"] == "potion")
                shown = potion["prices"][0]["amount"]
                expected = {"currency": "COINS", "amount": shown}
                response = client.post(
                    "/v1/purchases",
                    json={"sku": "potion", "expected_price": expected},
                    headers={"Idempotency-Key": f"race-{uuid.uuid4()}"},
                )
                results[player_id].append((live["version"], shown, response))

    threads = [threading.Thread(target=buy, args=(p,)) for p in buyers]
    for thread in threads:
        thread.start()
    path = tmp_path / "catalog.yaml"
    assert cli("catalog", "pull", "--live", "-o", str(path)).exit_code == Exit.OK
    start.set()
    price = 50
    for _ in range(5):
        text = path.read_text()
        path.write_text(text.replace(f"amount: {price}}}", f"amount: {price + 5}}}", 1))
        price += 5
        assert cli("catalog", "push", str(path)).exit_code == Exit.OK
        published = cli("catalog", "publish", "--notes", f"potion at {price}")
        assert published.exit_code == Exit.OK, published.output
        prices[int(published.stdout.split()[2].rstrip(":"))] = price
    for thread in threads:
        thread.join()
    assert prices == {1: 50, 2: 55, 3: 60, 4: 65, 5: 70, 6: 75}

    charged: dict[str, int] = {}
    for player_id, attempts in results.items():
        assert len(attempts) == 15
        charged[player_id] = 0
        for seen_version, shown, response in attempts:
            assert prices[seen_version] == shown
            body = response.json()
            if response.status_code == 201:
                purchase = body["purchase"]
                assert purchase["price"] == {"currency": "COINS", "amount": shown}
                assert purchase["catalog_version"] == seen_version  # prices differ per version
                charged[player_id] += shown
            else:
                assert response.status_code == 409, body
                error = body["error"]
                assert error["code"] == "price_changed"
                assert error["details"]["expected"] == {"currency": "COINS", "amount": shown}
                met = error["details"]["catalog_version"]
                assert met > seen_version
                assert error["details"]["current"] == {"currency": "COINS", "amount": prices[met]}

    # The money matches what each purchase said: nothing charged twice or at another price.
    for player_id in buyers:
        headers = _auth(shop.token("player", player_id))
        wallet = httpx.get(f"{url}/v1/wallet", headers=headers).json()
        coins = next(b["amount"] for b in wallet["balances"] if b["currency"] == "COINS")
        assert coins == 100_000 - charged[player_id]
        bought = httpx.get(f"{url}/v1/purchases?limit=200", headers=headers).json()["purchases"]
        assert sum(p["price"]["amount"] for p in bought) == charged[player_id]

    # After the last publish, a buyer still showing the first price is told, not charged.
    headers = {**_auth(shop.token("player", "late")), "Idempotency-Key": f"late-{uuid.uuid4()}"}
    shop.grant("late", "COINS", 1000)
    late = httpx.post(
        f"{url}/v1/purchases",
        json={"sku": "potion", "expected_price": {"currency": "COINS", "amount": 50}},
        headers=headers,
    )
    assert late.status_code == 409
    assert late.json()["error"]["details"] == {
        "expected": {"currency": "COINS", "amount": 50},
        "current": {"currency": "COINS", "amount": 75},
        "catalog_version": 6,
    }


def test_the_example_in_the_docs_is_a_catalog_the_store_publishes(
    live_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "studio.md"
    section = docs.read_text().split("## The catalog file", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    items = catalog_file.loads(example).data["items"]
    kinds = ["consumable", "consumable", "durable", "bundle", "durable"]
    assert [i["kind"] for i in items] == kinds
    path = tmp_path / "catalog.yaml"
    path.write_text(example)
    shop = live_server.new_game()
    cli = Cli(live_server.url, shop.token("studio", "docs"))
    pushed = cli("catalog", "push", str(path))
    assert pushed.exit_code == Exit.OK, pushed.output
    published = cli("catalog", "publish", "--notes", "the docs' example")
    assert published.stdout == "published version 2: live now\n"
    live = httpx.get(f"{live_server.url}/v1/catalog", headers=_auth(shop.token("player", "p1")))
    starter = next(i for i in live.json()["items"] if i["sku"] == "starter_pack")
    assert starter["contents"] == [
        {"sku": "potion", "quantity": 3},
        {"currency": "GEMS", "amount": 20},
    ]


# ---------------------------------------------------------------------------------------------
# Money as people read it
# ---------------------------------------------------------------------------------------------

PRICED_CATALOG: dict[str, Any] = {
    "currencies": [
        {"code": "COINS", "name": "Coins", "scale": 0},
        {"code": "USD", "name": "US dollar", "scale": 4, "max_balance": 1_000_000},
    ],
    "items": [
        {
            "sku": "tip",
            "name": "Tip",
            "kind": "consumable",
            "prices": [{"currency": "USD", "amount": 150}],
        },
        {
            "sku": "pack",
            "name": "Pack",
            "kind": "bundle",
            "prices": [{"currency": "COINS", "amount": 500}, {"currency": "USD", "amount": 9}],
            "contents": [{"sku": "tip", "quantity": 2}, {"currency": "USD", "amount": 10_000}],
        },
        {
            "sku": "old",
            "name": "Old sword",
            "kind": "durable",
            "prices": [{"currency": "USD", "amount": 19_900}],
        },
    ],
}


def _edited_priced_catalog() -> dict[str, Any]:
    edited = json.loads(json.dumps(PRICED_CATALOG))
    edited["currencies"][1]["max_balance"] = 2_500_000
    edited["items"][0]["prices"][0]["amount"] = 175
    edited["items"][1]["contents"][1]["amount"] = 12_345
    edited["items"][2] = {
        "sku": "big_tip",
        "name": "Big tip",
        "kind": "consumable",
        "prices": [{"currency": "USD", "amount": 1_990_000}, {"currency": "COINS", "amount": 7}],
    }
    return edited


PRICED_DIFF = [
    "currencies:",
    "  ~ USD",
    "      max_balance: 100.0000 USD (1000000) -> 250.0000 USD (2500000)",
    "items:",
    "  ~ tip",
    "      prices: 0.0150 USD (150) -> 0.0175 USD (175)",
    "  ~ pack",
    "      contents: 2 x tip, 1.0000 USD (10000) -> 2 x tip, 1.2345 USD (12345)",
    "  + big_tip: Big tip, consumable, 199.0000 USD (1990000), 7 COINS",
    "  - old: Old sword, durable, 1.9900 USD (19900)",
    "items: 2 changed, 1 added, 1 removed; currencies: 1 changed",
]


def test_a_diff_prints_amounts_in_major_units_with_the_minor_units_beside() -> None:
    changes = catalog_diff.diff_catalogs(PRICED_CATALOG, _edited_priced_catalog())
    lines = catalog_diff.format_diff(changes, before="live version 1", after="catalog.yaml")
    assert lines == ["--- live version 1", "+++ catalog.yaml", *PRICED_DIFF]


def test_format_money_is_exact_and_says_when_it_has_no_scale() -> None:
    scales = {"USD": 4, "COINS": 0, "NANO": 9}
    assert catalog_diff.format_money(150, "USD", scales) == "0.0150 USD (150)"
    assert catalog_diff.format_money(0, "USD", scales) == "0.0000 USD (0)"
    assert catalog_diff.format_money(50, "COINS", scales) == "50 COINS"
    # 2**53 - 1 at scale 9: every digit kept (a float would round the last ones).
    assert catalog_diff.format_money(9_007_199_254_740_991, "NANO", scales) == (
        "9007199.254740991 NANO (9007199254740991)"
    )
    assert catalog_diff.format_money(150, "RUBY", scales) == "150 RUBY (minor units)"
    assert catalog_diff.format_money("lots", "USD", scales) == '"lots" USD'
    assert catalog_diff.format_value("prices", [{"currency": "USD", "amount": 5}]) == "5 USD"


def test_the_cli_diff_of_a_priced_catalog(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shop = live_server.new_game(catalog=PRICED_CATALOG)
    cli = Cli(live_server.url, shop.token("studio", "alice"))
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(_edited_priced_catalog()))
    diffed = cli("catalog", "diff", str(path), "--against", "live")
    assert diffed.exit_code == Exit.OK, diffed.output
    assert diffed.stdout.splitlines() == ["--- live version 1", f"+++ {path}", *PRICED_DIFF]


# A risk policy as `pull` writes it under SMALL_YAML (docs/api.md, "Risk").
RISK_YAML = """\
risk:
  spend_limits:
    - currency: COINS
      window_seconds: 3600
      max_count: 2
  tiers:
    - name: new
      while_younger_than_seconds: 3600
      limited_items: false
"""


def test_a_risk_policy_is_pulled_diffed_pushed_and_published_from_the_file(
    live_server,  # type: ignore[no-untyped-def]
    shop,
    cli: Cli,
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"
    assert cli("catalog", "pull", "-o", str(path)).exit_code == Exit.OK
    assert path.read_text() == SMALL_YAML  # no policy yet: nothing about risk in the file
    path.write_text(SMALL_YAML + RISK_YAML)

    diffed = cli("catalog", "diff", str(path))
    assert diffed.exit_code == Exit.OK, diffed.output
    assert diffed.stdout.splitlines()[2:] == [
        "risk:",
        "  ~ spend_limits",
        "      + COINS: at most 2 per 3600 s",
        "  ~ tiers",
        "      + new: while younger than 3600 s, no limited items",
        "risk policy: spend_limits, tiers changed",
    ]
    pushed = cli("catalog", "push", str(path))
    assert pushed.exit_code == Exit.OK, pushed.output
    assert "(risk policy: spend_limits, tiers changed)" in pushed.stdout
    assert cli("catalog", "pull").stdout == path.read_text()  # the policy pulls back as written
    published = cli("catalog", "publish", "--notes", "limits")
    assert published.exit_code == Exit.OK, published.output

    # The published policy is in force: two purchases an hour.
    shop.grant("p1", "COINS", 1_000)
    headers = _auth(shop.token("player", "p1"))
    answers = [
        httpx.post(
            f"{live_server.url}/v1/purchases",
            json={"sku": "potion"},
            headers={**headers, "Idempotency-Key": f"cli-risk-{uuid.uuid4()}"},
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 409]
    assert answers[2].json()["error"]["details"]["rule"] == "spend_limit"
    live = cli("catalog", "pull", "--live")
    assert live.stdout == SMALL_YAML + RISK_YAML

    # An invalid policy is refused at its line, as any field of the file.
    lines = (SMALL_YAML + RISK_YAML).splitlines(keepends=True)
    window_line = lines.index("      window_seconds: 3600\n") + 1
    currency_line = lines.index("    - currency: COINS\n") + 1
    path.write_text(
        "".join(lines).replace("window_seconds: 3600\n      max", "window_seconds: 0\n      max")
    )
    refused = cli("catalog", "push", str(path))
    assert refused.exit_code == Exit.REFUSED
    assert refused.stderr.splitlines() == [
        f"{path}:{window_line}: risk.spend_limits[0].window_seconds: Must be greater than or"
        " equal to 1 and less than or equal to 31622400.",
        "error: the request is not valid",
    ]
    path.write_text("".join(lines).replace("    - currency: COINS\n", "    - currency: RUBY\n"))
    unknown = cli("catalog", "diff", str(path))
    assert unknown.exit_code == Exit.REFUSED
    assert unknown.stderr.splitlines() == [
        f"{path}:{currency_line}: risk.spend_limits[0].currency: not a currency of this catalog"
    ]
