"""A catalog file with segments, offers, promo codes, locales and an item only a segment sees
(issue 15): pushed, published and pulled back to the same bytes, diffed per offer, and a rule
that does not parse (or a segment the catalog does not hold) refused at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shopkeep.catalog_cli import Exit, main

OFFERS_YAML = """\
# Shopkeep catalog. Amounts are integers in each currency's minor unit.
# Check it with `shopkeep catalog diff FILE`, send it with `shopkeep catalog push FILE`.
currencies:
  - code: COINS
    name: Coins
    scale: 0
items:
  - sku: potion
    name: Health potion
    kind: consumable
    prices:
      - {currency: COINS, amount: 50}
    localized:
      pt-BR:
        name: Poção de vida
        description: Restaura uma vida.
  - sku: starter_chest
    name: Starter chest
    kind: bundle
    prices:
      - {currency: COINS, amount: 30}
    contents:
      - {sku: potion, quantity: 2}
    segment: new_players
segments:
  - {id: new_players, rule: first_seen within 7d}
  - {id: lapsed, rule: last_purchase older_than 30d and not attr.vip = true}
offers:
  - id: starter
    segment: new_players
    sku: potion
    price: {currency: COINS, amount: 10}
    per_player_limit: 1
  - id: weekend
    sku: potion
    discount_percent: 20
    starts_at: '2030-01-05T00:00:00Z'
    ends_at: '2030-01-07T00:00:00Z'
promo_codes:
  - code: STREAM-42
    grant:
      - {currency: COINS, amount: 100}
    segment: lapsed
    budget: 500
"""


def _cli(url: str, token: str, *args: str) -> Result:
    options = ["--server", url, "--token", token]
    return CliRunner().invoke(main, [*options, *args], env={"SHOPKEEP_TOKEN": None})


@pytest.fixture
def studio(live_server):  # type: ignore[no-untyped-def]
    game = live_server.new_game(
        catalog={"currencies": [{"code": "COINS", "name": "Coins", "scale": 0}], "items": []}
    )
    return live_server.url, game.token("studio", "alice")


def test_a_file_with_offers_round_trips_and_diffs_per_offer(
    studio: tuple[str, str], tmp_path: Path
) -> None:
    url, token = studio
    path = tmp_path / "catalog.yaml"
    path.write_text(OFFERS_YAML)
    pushed = _cli(url, token, "catalog", "push", str(path))
    assert pushed.exit_code == Exit.OK, pushed.output
    published = _cli(url, token, "catalog", "publish", "--notes", "offers")
    assert published.exit_code == Exit.OK, published.output
    pulled = _cli(url, token, "catalog", "pull", "--live")
    assert pulled.exit_code == Exit.OK, pulled.output
    assert pulled.stdout == OFFERS_YAML  # the same bytes: nothing lost, nothing added

    assert (
        _cli(url, token, "catalog", "diff", str(path), "--against", "live").stdout.splitlines()[-1]
        == "no differences"
    )
    path.write_text(OFFERS_YAML.replace("    segment: new_players\nsegments:", "segments:"))
    opened = _cli(url, token, "catalog", "diff", str(path), "--against", "live")
    assert opened.exit_code == Exit.OK, opened.output
    assert '      segment: "new_players" -> none' in opened.stdout.splitlines()
    path.write_text(
        OFFERS_YAML.replace("discount_percent: 20", "discount_percent: 25").replace(
            "    budget: 500\n",
            "    budget: 500\n  - code: SPRING\n    offer: weekend\n    budget: 5\n",
        )
    )
    diffed = _cli(url, token, "catalog", "diff", str(path), "--against", "live")
    assert diffed.exit_code == Exit.OK, diffed.output
    assert "  ~ weekend" in diffed.stdout.splitlines()
    assert "      discount_percent: 20 -> 25" in diffed.stdout.splitlines()
    assert diffed.stdout.splitlines()[-1] == "offers: 1 changed; promo_codes: 1 added"


def test_a_rule_that_does_not_parse_is_refused_at_its_line(
    studio: tuple[str, str], tmp_path: Path
) -> None:
    url, token = studio
    path = tmp_path / "catalog.yaml"
    lines = OFFERS_YAML.splitlines(keepends=True)
    assert (
        lines[26]
        == "  - {id: lapsed, rule: last_purchase older_than 30d and not attr.vip = true}\n"
    )
    lines[26] = "  - {id: lapsed, rule: last_purchase older_than 30 and attr.vip = true}\n"
    path.write_text("".join(lines))
    refused = _cli(url, token, "catalog", "push", str(path))
    assert refused.exit_code == Exit.REFUSED
    assert refused.stderr.splitlines() == [
        f"{path}:27: segments[1] (lapsed) rule: column 26: expected a duration such as 7d,"
        " 12h, 30m",
        "error: the request is not valid",
    ]


def test_an_items_unknown_segment_is_refused_at_its_line(
    studio: tuple[str, str], tmp_path: Path
) -> None:
    url, token = studio
    path = tmp_path / "catalog.yaml"
    lines = OFFERS_YAML.splitlines(keepends=True)
    assert lines[23] == "    segment: new_players\n"
    lines[23] = "    segment: old_players\n"
    path.write_text("".join(lines))
    refused = _cli(url, token, "catalog", "push", str(path))
    assert refused.exit_code == Exit.REFUSED
    assert refused.stderr.splitlines() == [
        f"{path}:24: items[1] (starter_chest) segment: not a segment of this catalog",
        "error: the request is not valid",
    ]
