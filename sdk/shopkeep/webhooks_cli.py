"""`shopkeep webhooks`: a game's webhook endpoints from the command line.

    shopkeep webhooks add URL [--type T ...] [--description TEXT]
    shopkeep webhooks list
    shopkeep webhooks rotate ID
    shopkeep webhooks disable ID
    shopkeep webhooks enable ID
    shopkeep webhooks delete ID
    shopkeep webhooks deliveries ID [--event N] [--limit N]
    shopkeep webhooks redeliver ID FROM [TO]

Part of the studio command line (:mod:`shopkeep.catalog_cli`: the same ``--server`` and
``--token``, exit codes and error messages); every call is a
:class:`~shopkeep.studio.StudioClient` method.
"""

from __future__ import annotations

import itertools

import click

from .catalog_cli import Settings, _api_errors
from .webhook_endpoints import Webhook


@click.group()
def webhooks() -> None:
    """Webhook endpoints: where the store sends its signed events."""


def _state(hook: Webhook) -> str:
    if hook.enabled:
        return "enabled" if not hook.failed_attempts else f"retrying ({hook.failed_attempts})"
    return f"disabled: {hook.disabled_reason or 'by the studio'}"


def _show_secret(secret: str, what: str) -> None:
    click.echo(f"{what}; its signing secret (shown this once, keep it):")
    click.echo(secret)


@webhooks.command()
@click.argument("url")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="An event type to send (repeat it); none: every type.",
)
@click.option("--description", default="", help="A note for the studio.")
@click.pass_obj
def add(settings: Settings, url: str, types: tuple[str, ...], description: str) -> None:
    """Add an endpoint at URL (https, or http to localhost) for new events."""
    with settings.client() as client, _api_errors(what="webhook"):
        made = client.add_webhook(url, types=types, description=description)
    _show_secret(made.secret, f"added webhook {made.webhook.id} -> {made.webhook.url}")


@webhooks.command(name="list")
@click.pass_obj
def list_webhooks(settings: Settings) -> None:
    """List the endpoints with their state."""
    with settings.client() as client, _api_errors():
        found = client.webhooks()
    if not found:
        click.echo("no webhooks")
        return
    click.echo(f"{'ID':36}  {'DELIVERED':>9}  {'TYPES':24}  {'URL':40}  STATE")
    for hook in found:
        kinds = ",".join(hook.types) or "all"
        click.echo(
            f"{hook.id:36}  {hook.delivered_through:>9}  {kinds:24}  {hook.url:40}  {_state(hook)}"
        )


@webhooks.command()
@click.argument("webhook_id", metavar="ID")
@click.pass_obj
def rotate(settings: Settings, webhook_id: str) -> None:
    """Give ID a new secret; the old one keeps signing for 24 hours."""
    with settings.client() as client, _api_errors():
        rotated = client.rotate_webhook_secret(webhook_id)
    _show_secret(rotated.secret, f"rotated the secret of {webhook_id} (the old one signs 24 h)")


@webhooks.command()
@click.argument("webhook_id", metavar="ID")
@click.pass_obj
def disable(settings: Settings, webhook_id: str) -> None:
    """Stop sending to ID (its events wait)."""
    with settings.client() as client, _api_errors():
        hook = client.disable_webhook(webhook_id)
    click.echo(f"{hook.id}: {_state(hook)}")


@webhooks.command()
@click.argument("webhook_id", metavar="ID")
@click.pass_obj
def enable(settings: Settings, webhook_id: str) -> None:
    """Send to ID again, from the first event it has not had."""
    with settings.client() as client, _api_errors():
        hook = client.enable_webhook(webhook_id)
    click.echo(f"{hook.id}: {_state(hook)}, from event {hook.delivered_through + 1}")


@webhooks.command()
@click.argument("webhook_id", metavar="ID")
@click.pass_obj
def delete(settings: Settings, webhook_id: str) -> None:
    """Delete ID and its delivery log."""
    with settings.client() as client, _api_errors():
        client.delete_webhook(webhook_id)
    click.echo(f"deleted webhook {webhook_id}")


@webhooks.command()
@click.argument("webhook_id", metavar="ID")
@click.option("--event", "event_id", type=click.IntRange(min=1), help="Only this event.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Attempts shown."
)
@click.pass_obj
def deliveries(settings: Settings, webhook_id: str, event_id: int | None, limit: int) -> None:
    """The delivery log of ID, newest first."""
    with settings.client() as client, _api_errors():
        found = list(
            itertools.islice(
                client.webhook_deliveries(webhook_id, limit=min(limit, 200), event_id=event_id),
                limit,
            )
        )
    if not found:
        click.echo("no deliveries yet")
        return
    click.echo(f"{'AT':19}  {'EVENT':>8}  {'TRY':>3}  {'STATUS':>6}  {'MS':>6}  ANSWER")
    for d in found:
        status = str(d.status_code) if d.status_code is not None else "-"
        said = d.error or d.response_excerpt.replace("\n", " ")[:60]
        click.echo(
            f"{d.attempted_at:%Y-%m-%d %H:%M:%S}  {d.event_id:>8}  {d.attempt:>3}"
            f"  {status:>6}  {d.latency_ms:>6}  {said}".rstrip()
        )


@webhooks.command()
@click.argument("webhook_id", metavar="ID")
@click.argument("first", type=click.IntRange(min=1), metavar="FROM")
@click.argument("last", type=click.IntRange(min=1), metavar="[TO]", required=False)
@click.pass_obj
def redeliver(settings: Settings, webhook_id: str, first: int, last: int | None) -> None:
    """Send event FROM (through TO) to ID again."""
    with settings.client() as client, _api_errors(what="redeliver"):
        queued = client.redeliver_webhook(webhook_id, first, last)
    click.echo(f"queued {queued} event(s) to be sent again to {webhook_id}")
