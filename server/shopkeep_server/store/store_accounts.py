"""Where a game sells for real money: one account per app store, set by the studio.

Each store's settings are a schema here (the one home of their fields). What a studio may read
back is ``settings``; what it must never see again (a service-account key, a publisher key) is
``secrets``, stored apart and only ever named in answers (``secrets_set``). A PUT that leaves a
secret out keeps the stored one, so a studio can change a bundle id without pasting keys again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
from cryptography import x509
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from psycopg.types.json import Jsonb

from ..errors import NotFound, ReceiptInvalid, ValidationFailed
from . import rules
from .rules import STORES

CHARGEBACK_POLICIES = ("debt", "freeze")


def _policy_field() -> fields.String:
    return fields.String(load_default="debt", validate=validate.OneOf(CHARGEBACK_POLICIES))


class AppStoreSettingsSchema(Schema):
    """App Store: transactions are StoreKit 2 JWS, verified offline against these roots."""

    bundle_id = rules.text_field(required=True, min_length=1, max_length=155)
    environment = fields.String(required=True, validate=validate.OneOf(["sandbox", "production"]))
    # Apple's root certificates (PEM), e.g. "Apple Root CA - G3"; a test root for a test store.
    root_certificates = fields.List(
        fields.String(validate=validate.Length(min=1, max=20_000)),
        required=True,
        validate=validate.Length(min=1, max=10),
    )
    # The app's Apple ID: Apple's library needs it in production.
    app_apple_id = rules.StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=1)
    )
    chargeback_policy = _policy_field()

    @validates_schema
    def _roots_and_id(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data["environment"] == "production" and data["app_apple_id"] is None:
            errors["app_apple_id"] = ["required in production"]
        for index, pem in enumerate(data["root_certificates"]):
            try:
                x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                errors[f"root_certificates.{index}"] = ["not a PEM certificate"]
        if errors:
            raise ValidationError(errors)


class GooglePlaySettingsSchema(Schema):
    """Google Play: purchase tokens checked with the Developer API as a service account."""

    package_name = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
    )
    # The service account's JSON key, as downloaded from Google Cloud (a secret).
    service_account = rules.Metadata(metadata={"secret": True})
    # Real-time developer notifications: the Pub/Sub push subscription's authentication, what
    # its OIDC tokens must say (audience, and the service account they are issued for). Left
    # out, the game's notification endpoint refuses every request.
    pubsub_audience = rules.text_field(min_length=1, max_length=2000)
    pubsub_service_account = fields.Email()
    chargeback_policy = _policy_field()

    @validates_schema
    def _key_shape(self, data: dict[str, Any], **_: Any) -> None:
        key = data.get("service_account")
        if key is not None:
            needed = ("client_email", "private_key", "token_uri")
            missing = [name for name in needed if not isinstance(key.get(name), str)]
            if missing:
                raise ValidationError({"service_account": [f"needs {', '.join(missing)}"]})


class SteamPriceSchema(Schema):
    """What Steam charges for one unit: an ISO 4217 currency and its amount in cents."""

    currency = fields.String(required=True, validate=rules.WholeMatch(r"^[A-Z]{3}$"))
    amount = rules.amount_field(required=True)


class SteamSettingsSchema(Schema):
    """Steam: ISteamMicroTxn through the Steam Web API with the publisher key. Steam charges
    what InitTxn says, so the server (never the game) names each product's Steam price."""

    app_id = rules.StrictInteger(required=True, validate=validate.Range(min=1))
    prices = fields.Dict(
        keys=fields.String(validate=rules.WholeMatch(rules.PRODUCT_ID_PATTERN)),
        values=fields.Nested(SteamPriceSchema),
        load_default=dict,
        metadata={"description": "product id -> the price Steam charges for it"},
    )
    # The publisher Web API key (a secret).
    publisher_key = rules.text_field(min_length=1, max_length=200, metadata={"secret": True})
    # ISteamMicroTxnSandbox instead of ISteamMicroTxn (Steam's test payments).
    sandbox = fields.Boolean(load_default=False)
    chargeback_policy = _policy_field()


SETTINGS_SCHEMAS: dict[str, type[Schema]] = {
    "app_store": AppStoreSettingsSchema,
    "google_play": GooglePlaySettingsSchema,
    "steam": SteamSettingsSchema,
}


def secret_fields(store: str) -> tuple[str, ...]:
    """The fields of a store's settings that are never sent back."""
    schema = SETTINGS_SCHEMAS[store]()
    return tuple(name for name, field in schema.fields.items() if field.metadata.get("secret"))


@dataclasses.dataclass(frozen=True, slots=True)
class StoreAccount:
    """A game's account on one store, secrets included (never rendered as a whole)."""

    game: str
    store: str
    settings: dict[str, Any]
    secrets: dict[str, Any]
    chargeback_policy: str
    poll_cursor: str | None

    def value(self, name: str) -> Any:
        return self.secrets[name] if name in self.secrets else self.settings.get(name)


def check_store(store: str) -> str:
    if store not in STORES:
        raise NotFound(f"no store {store!r}: the stores are {', '.join(STORES)}")
    return store


def put_account(
    conn: psycopg.Connection, game: str, store: str, raw: Any, *, actor: str
) -> dict[str, Any]:
    """Sets a game's account on ``store``; answers it as :func:`describe` does."""
    check_store(store)
    data = rules.load(SETTINGS_SCHEMAS[store](), raw)
    policy = data.pop("chargeback_policy")
    secret_names = secret_fields(store)
    secrets = {name: data.pop(name) for name in secret_names if name in data}
    with conn.transaction():
        if conn.execute("SELECT 1 FROM games WHERE id = %s", (game,)).fetchone() is None:
            raise NotFound("no such game")
        row = conn.execute(
            "SELECT secrets FROM store_accounts WHERE game_id = %s AND store = %s FOR UPDATE",
            (game, store),
        ).fetchone()
        kept = dict(row[0]) if row else {}
        merged = {**kept, **secrets}
        missing = [name for name in secret_names if name not in merged]
        if missing:
            raise ValidationFailed(
                details={name: ["required when the store is first set"] for name in missing}
            )
        conn.execute(
            "INSERT INTO store_accounts (game_id, store, settings, secrets, chargeback_policy,"
            " updated_by) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (game_id, store) DO UPDATE SET settings = EXCLUDED.settings,"
            " secrets = EXCLUDED.secrets, chargeback_policy = EXCLUDED.chargeback_policy,"
            " updated_by = EXCLUDED.updated_by, updated_at = now()",
            (game, store, Jsonb(data), Jsonb(merged), policy, actor),
        )
    return describe(conn, game, store)


_DESCRIBE = (
    "SELECT jsonb_build_object('store', store, 'settings', settings,"
    " 'secrets_set', (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]')"
    "                  FROM jsonb_object_keys(secrets) k),"
    " 'chargeback_policy', chargeback_policy, 'updated_by', updated_by,"
    " 'updated_at', sk_ts(updated_at)) FROM store_accounts"
)


def describe(conn: psycopg.Connection, game: str, store: str) -> dict[str, Any]:
    """A store account as a studio sees it: the settings, and the names of the secrets set."""
    row = conn.execute(_DESCRIBE + " WHERE game_id = %s AND store = %s", (game, store)).fetchone()
    if row is None:
        raise NotFound(f"this game does not sell on {store}")
    found: dict[str, Any] = row[0]
    return found


def list_accounts(conn: psycopg.Connection, game: str) -> list[dict[str, Any]]:
    rows = conn.execute(_DESCRIBE + " WHERE game_id = %s ORDER BY store", (game,)).fetchall()
    return [row[0] for row in rows]


def load_account(conn: psycopg.Connection, game: str, store: str) -> StoreAccount:
    """The account a receipt of ``store`` is checked with; a game that does not sell there
    cannot have a receipt of it (receipt_invalid, reason ``store_not_configured``)."""
    row = conn.execute(
        "SELECT settings, secrets, chargeback_policy, poll_cursor FROM store_accounts"
        " WHERE game_id = %s AND store = %s",
        (game, store),
    ).fetchone()
    if row is None:
        raise ReceiptInvalid(
            f"this game does not sell on {store}",
            details={"reason": "store_not_configured"},
        )
    return StoreAccount(game, store, row[0], row[1], row[2], row[3])


def accounts_on(conn: psycopg.Connection, store: str) -> list[StoreAccount]:
    """Every game's account on ``store`` (the polling jobs read each one)."""
    rows = conn.execute(
        "SELECT game_id, settings, secrets, chargeback_policy, poll_cursor FROM store_accounts"
        " WHERE store = %s ORDER BY game_id",
        (store,),
    ).fetchall()
    return [
        StoreAccount(game, store, s, sec, policy, cursor) for game, s, sec, policy, cursor in rows
    ]


def save_poll_cursor(conn: psycopg.Connection, game: str, store: str, cursor: str) -> None:
    conn.execute(
        "UPDATE store_accounts SET poll_cursor = %s WHERE game_id = %s AND store = %s",
        (cursor, game, store),
    )
