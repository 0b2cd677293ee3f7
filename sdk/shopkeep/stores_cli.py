"""``shopkeep stores``: how a game sells for real money on each app store (docs/stores.md).

Only the options given are sent; the server checks them against the store's own fields and
keeps a secret (a Google service-account key, a Steam publisher key) that is left out, so
changing one setting never needs the keys pasted again. Nothing the server answers holds a
secret: ``secrets_set`` only names them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .catalog_cli import Settings, _api_errors
from .studio import StoreAccount

STORES = ("app_store", "google_play", "steam")


def _price(value: str) -> tuple[str, dict[str, Any]]:
    """``PRODUCT=USD:499`` -> (product, {currency, amount in cents})."""
    try:
        product, price = value.split("=", 1)
        currency, amount = price.split(":", 1)
        return product, {"currency": currency, "amount": int(amount)}
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not PRODUCT=CURRENCY:AMOUNT") from exc


def _show(account: StoreAccount) -> None:
    click.echo(
        json.dumps(
            {
                "store": account.store,
                "settings": account.settings,
                "secrets_set": list(account.secrets_set),
                "chargeback_policy": account.chargeback_policy,
                "updated_by": account.updated_by,
            },
            indent=2,
            sort_keys=True,
        )
    )


@click.group()
def stores() -> None:
    """Selling for real money: the game's App Store, Google Play and Steam settings."""


@stores.command("list")
@click.pass_obj
def list_stores(settings: Settings) -> None:
    """The stores the game sells on (secrets are never shown)."""
    with settings.client() as client, _api_errors():
        for account in client.stores():
            _show(account)


@stores.command("set")
@click.argument("store", type=click.Choice(STORES))
@click.option("--bundle-id", help="app_store: the app's bundle id.")
@click.option(
    "--environment",
    type=click.Choice(["sandbox", "production"]),
    help="app_store: which App Store environment the game accepts.",
)
@click.option(
    "--root-certificate",
    "root_certificates",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="app_store: a trusted root certificate (PEM file); repeat for several.",
)
@click.option("--app-apple-id", type=int, help="app_store: the app's Apple ID (production).")
@click.option("--package-name", help="google_play: the app's package name.")
@click.option(
    "--service-account",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="google_play: the service account's JSON key file.",
)
@click.option("--app-id", type=int, help="steam: the app id.")
@click.option(
    "--publisher-key",
    envvar="SHOPKEEP_STEAM_PUBLISHER_KEY",
    help="steam: the publisher Web API key (env SHOPKEEP_STEAM_PUBLISHER_KEY).",
)
@click.option("--sandbox/--no-sandbox", default=None, help="steam: ISteamMicroTxnSandbox.")
@click.option(
    "--price",
    "prices",
    multiple=True,
    help="steam: what Steam charges for a product, PRODUCT=CURRENCY:CENTS; repeat.",
)
@click.option(
    "--chargeback-policy",
    type=click.Choice(["debt", "freeze"]),
    help="What a refund or chargeback of a spent top-up leaves: debt (default) or freeze.",
)
@click.pass_obj
def set_store(
    settings: Settings,
    store: str,
    bundle_id: str | None,
    environment: str | None,
    root_certificates: tuple[Path, ...],
    app_apple_id: int | None,
    package_name: str | None,
    service_account: Path | None,
    app_id: int | None,
    publisher_key: str | None,
    sandbox: bool | None,
    prices: tuple[str, ...],
    chargeback_policy: str | None,
) -> None:
    """Set how the game sells on STORE; prints the settings as the server keeps them."""
    body: dict[str, Any] = {
        "bundle_id": bundle_id,
        "environment": environment,
        "app_apple_id": app_apple_id,
        "package_name": package_name,
        "app_id": app_id,
        "publisher_key": publisher_key,
        "sandbox": sandbox,
        "chargeback_policy": chargeback_policy,
    }
    if root_certificates:
        body["root_certificates"] = [path.read_text() for path in root_certificates]
    if service_account is not None:
        body["service_account"] = json.loads(service_account.read_text())
    if prices:
        body["prices"] = dict(_price(value) for value in prices)
    sent = {name: value for name, value in body.items() if value is not None}
    with settings.client() as client, _api_errors():
        account = client.set_store(store, sent)
    _show(account)
