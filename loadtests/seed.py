"""Seeding a store for a load test, through its HTTP API only.

The steps, the same for the private store of ``loadtests.peak_event`` and for a real
deployment:

1. A game and its HS256 key come from ``shopkeep-server game create ID`` (printed ``kid`` and
   ``secret``); service and studio tokens from ``shopkeep-server token``.
2. Player tokens are signed here with the game's key, as a studio's own login server would
   (one ``shopkeep-server token`` process per player would take minutes for a thousand).
3. The studio token publishes the load-test catalog through the SDK's
   :class:`~shopkeep.studio.StudioClient` (the draft replaced with ``If-Match``, then
   published with the ETag of exactly that draft).
4. The service token grants every player its starting coins, with one idempotency key per
   player, so a seeding interrupted and run again never pays anyone twice.
5. Just before the load starts, :func:`announce_drop` publishes the catalog again with the
   drop's opening time, so the window opens a known number of seconds into the run.

Against a deployment::

    python -m loadtests.seed --host https://store.example --game G --kid K --secret S \\
        --service-token "$SERVICE" --studio-token "$STUDIO" --players 5000 --stock 500 \\
        --drop-in 120 --duration 600 --out seed-dir

writes ``seed-dir/seed.json`` for ``SHOPKEEP_LOADTEST_SEED`` on every Locust machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

from shopkeep import StoreClient
from shopkeep.studio import StudioClient

from .common import CURRENCY, DROP_PRICE, DROP_SKU, START_COINS, Seed, load_catalog

TOKEN_TTL = 6 * 3600
SERVICE_SUB = "loadtest-backend"
STUDIO_SUB = "loadtest-studio"
_SSL = ssl.create_default_context()


class SeedError(RuntimeError):
    """The store refused a seeding step."""


def player_id(index: int) -> str:
    """The id of the ``index``-th load-test player."""
    return f"p-{index:05d}"


def sign_player_token(
    *, game: str, kid: str, secret: str, issuer: str, subject: str, ttl: int = TOKEN_TTL
) -> str:
    """A player token with the claims the store expects (API.md, "Principals and tokens")."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "game": game,
        "role": "player",
        "aud": "shopkeep",
        "iss": issuer,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def parse_game_create(output: str) -> dict[str, str]:
    """The ``key: value`` lines ``shopkeep-server game create`` prints (kid, secret, issuer)."""
    fields: dict[str, str] = {}
    for line in output.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    missing = {"kid", "secret", "issuer"} - fields.keys()
    if missing:
        raise SeedError(f"`game create` printed no {', '.join(sorted(missing))}: {output!r}")
    return fields


def publish_catalog(host: str, studio_token: str, content: dict[str, Any], *, notes: str) -> int:
    """Replace the draft with ``content`` and publish it; returns the new version number.

    Through the SDK's studio client: the draft is read for its ETag, replaced with
    ``If-Match``, and published with the new ETag, so a draft someone changed in between is
    refused (``PreconditionFailed``) rather than published. Any refusal is the SDK's typed
    error; a retry of this function publishes again, which is harmless (same content).
    """
    transport = httpx.HTTPTransport(verify=_SSL)
    with StudioClient(host, studio_token, transport=transport, timeout=30) as studio:
        draft = studio.draft()
        studio.put_draft(content, if_match=draft.etag)
        return studio.publish(notes=notes).version


def grant_start_coins(
    host: str, service_token: str, game: str, players: list[str], *, amount: int, threads: int = 16
) -> None:
    """Give every player ``amount`` coins, in parallel, one stable key per (game, player)."""

    def grant(client: StoreClient, player: str) -> None:
        client.grant(
            player,
            currency=CURRENCY,
            amount=amount,
            reason="load test starting coins",
            idempotency_key=f"loadtest-start-{game}-{player}",
        )

    transport = httpx.HTTPTransport(verify=_SSL, limits=httpx.Limits(max_connections=threads))
    with (
        StoreClient(host, service_token, transport=transport, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(threads) as pool,
    ):
        for future in [pool.submit(grant, client, p) for p in players]:
            future.result()


def seed_store(
    host: str,
    *,
    game: str,
    kid: str,
    secret: str,
    issuer: str,
    service_token: str,
    studio_token: str,
    players: int,
    stock: int,
    start_coins: int = START_COINS,
    risk: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Publish the load-test catalog (drop closed for now) and fund ``players`` players;
    returns ``[(player id, token)]``."""
    # The drop's real opening time is set by announce_drop once seeding is done, so slow
    # seeding never eats into the baseline; until then it opens in a day.
    publish_catalog(
        host,
        studio_token,
        load_catalog(time.time() + 86_400, stock, risk=risk),
        notes="load test",
    )
    roster = [
        (
            player_id(i),
            sign_player_token(
                game=game, kid=kid, secret=secret, issuer=issuer, subject=player_id(i)
            ),
        )
        for i in range(players)
    ]
    grant_start_coins(host, service_token, game, [p for p, _ in roster], amount=start_coins)
    return roster


@dataclasses.dataclass(frozen=True, slots=True)
class SeededGame:
    """A game made with the CLI and seeded through the API: its tokens and funded players."""

    game: str
    service_token: str
    studio_token: str
    roster: list[tuple[str, str]]


def create_and_seed(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    host: str,
    *,
    game: str,
    players: int,
    stock: int,
    start_coins: int = START_COINS,
    ttl: int = 21_600,
    risk: dict[str, Any] | None = None,
) -> SeededGame:
    """`shopkeep-server game create` and `token` (through ``cli``) for the game, its service
    and its studio, then :func:`seed_store` through the API: what the runner and the bench
    both do to a private store."""
    created = parse_game_create(cli("game", "create", game).stdout)
    service, studio = (
        cli("token", "--game", game, "--role", role, "--sub", sub, "--ttl", str(ttl)).stdout.strip()
        for role, sub in (("service", SERVICE_SUB), ("studio", STUDIO_SUB))
    )
    roster = seed_store(
        host,
        game=game,
        kid=created["kid"],
        secret=created["secret"],
        issuer=created["issuer"],
        service_token=service,
        studio_token=studio,
        players=players,
        stock=stock,
        start_coins=start_coins,
        risk=risk,
    )
    return SeededGame(game, service, studio, roster)


def announce_drop(
    host: str,
    studio_token: str,
    *,
    stock: int,
    drop_at: float,
    risk: dict[str, Any] | None = None,
) -> int:
    """Publish the catalog again with the drop opening at ``drop_at`` (epoch seconds), the
    risk policy (if any) still on. Stock is live state: this does not reset it."""
    return publish_catalog(
        host, studio_token, load_catalog(drop_at, stock, risk=risk), notes="drop announced"
    )


def plan(
    *,
    host: str,
    game: str,
    service_token: str,
    studio_token: str,
    roster: list[tuple[str, str]],
    stock: int,
    start_in: float,
    baseline_seconds: float,
    duration: float,
    client_timeout: float,
    max_retries: int = 3,
    start_coins: int = START_COINS,
) -> Seed:
    """The run's timetable: the baseline starts ``start_in`` seconds from now, the drop opens
    ``baseline_seconds`` later (on a whole second, as the catalog writes it), and the load
    stops ``duration`` seconds after the baseline started."""
    begin = time.time() + start_in
    drop_at = float(math.ceil(begin + baseline_seconds))
    players = len(roster)
    baseline_users = max(2, players // 10)
    return Seed(
        host=host,
        game=game,
        service_token=service_token,
        studio_token=studio_token,
        players=roster,
        start_coins=start_coins,
        drop_sku=DROP_SKU,
        drop_price=DROP_PRICE,
        stock=stock,
        start_at=begin,
        drop_at=drop_at,
        end_at=begin + duration,
        baseline_users=baseline_users,
        # Ten times the baseline (about a user per player): the spike is the drop's crowd.
        peak_users=baseline_users * 10,
        ramp_seconds=min(5.0, max(1.0, duration / 10)),
        client_timeout=client_timeout,
        max_retries=max_retries,
    )


def main(argv: list[str] | None = None) -> int:
    """Seed a running store (e.g. a real deployment) and write ``OUT/seed.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.seed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", required=True, help="the store's base URL")
    parser.add_argument("--game", required=True)
    parser.add_argument("--kid", required=True, help="the key id `game create` printed")
    parser.add_argument("--secret", required=True, help="the HS256 secret `game create` printed")
    parser.add_argument("--issuer", default="shopkeep")
    parser.add_argument("--service-token", required=True)
    parser.add_argument("--studio-token", required=True)
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--drop-in", type=float, default=60.0,
                        help="seconds from the end of seeding to the drop")  # fmt: skip
    parser.add_argument("--duration", type=float, default=300.0,
                        help="seconds from the end of seeding to the end of the load")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout per attempt")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    roster = seed_store(
        args.host,
        game=args.game,
        kid=args.kid,
        secret=args.secret,
        issuer=args.issuer,
        service_token=args.service_token,
        studio_token=args.studio_token,
        players=args.players,
        stock=args.stock,
    )
    seed = plan(
        host=args.host,
        game=args.game,
        service_token=args.service_token,
        studio_token=args.studio_token,
        roster=roster,
        stock=args.stock,
        start_in=0.0,
        baseline_seconds=args.drop_in,
        duration=args.duration,
        client_timeout=args.timeout,
    )
    announce_drop(args.host, args.studio_token, stock=args.stock, drop_at=seed.drop_at)
    args.out.mkdir(parents=True, exist_ok=True)
    seed.save(args.out / "seed.json")
    json.dump(
        {"seed": str(args.out / "seed.json"), "drop_at": seed.drop_at, "end_at": seed.end_at},
        sys.stdout,
    )
    print()
    return 0


__all__ = [
    "announce_drop",
    "grant_start_coins",
    "main",
    "parse_game_create",
    "plan",
    "publish_catalog",
    "seed_store",
    "sign_player_token",
]

if __name__ == "__main__":
    sys.exit(main())
