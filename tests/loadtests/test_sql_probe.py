"""loadtests.sql_probe buys for real: each purchase it counts is one completed purchase, paid."""

from __future__ import annotations

import re
import uuid

from loadtests.sql_probe import probe
from shopkeep_server import db
from support.games import Game, coins_catalog, coins_item, make_game

PLAYERS = ["probe-1", "probe-2"]


def test_the_probe_line_counts_purchases_it_made(database_url: str) -> None:
    with db.connect(database_url) as conn:
        game: Game = make_game(conn, coins_catalog(coins_item("gem", 7)))
        for player in PLAYERS:
            conn.execute(
                "SELECT status FROM sk_grant(%s, 'fixture', %s, 'fp', 3600, 1000, 'req', %s,"
                " 'seed', 'COINS', 10000, NULL, NULL)",
                (game.id, uuid.uuid4().hex, player),
            )
    line = probe(database_url, game.id, PLAYERS, "gem", 7, count=5)
    assert re.fullmatch(r"gem +\d+\.\d{3} +\d+\.\d{3}", line)
    with db.connect(database_url) as conn:
        bought = conn.execute(
            "SELECT count(*), sum(total_price) FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchone()
        balances = conn.execute(
            "SELECT sum(balance) FROM wallets WHERE game_id = %s", (game.id,)
        ).fetchone()
    assert bought == (55, 385)  # 50 warm-up purchases and the 5 measured, 7 coins each
    assert balances == (2 * 10000 - 385,)
