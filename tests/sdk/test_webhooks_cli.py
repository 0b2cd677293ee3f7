"""`shopkeep webhooks ...` and StudioClient's webhook calls against the live server: add (the
secret printed once), list, the delivery log of a real delivery, send again, rotate, disable,
enable, delete, and the exit codes of what the store refuses."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from click.testing import CliRunner, Result

from shopkeep import StoreClient
from shopkeep.catalog_cli import Exit, main
from shopkeep.errors import NotFound, ValidationError
from shopkeep.studio import AsyncStudioClient, StudioClient
from support import LiveServer
from support.receiver import Receiver

WAIT_SECONDS = 30.0


def run(server: LiveServer, token: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--server", server.url, "--token", token, "webhooks", *args])


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.1)


def test_the_webhooks_commands_from_add_to_delete(live_server: LiveServer) -> None:
    game = live_server.new_game()
    token = game.token("studio", "designer")
    with Receiver([]) as receiver:
        added = run(live_server, token, "add", receiver.url, "--type", "purchase.completed")
        assert added.exit_code == 0, added.output
        secret = added.output.strip().splitlines()[-1]
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret)
        receiver.secrets.append(secret)
        hook_id = re.search(r"added webhook ([0-9a-f-]{36})", added.output).group(1)  # type: ignore[union-attr]

        listed = run(live_server, token, "list")
        assert listed.exit_code == 0
        assert hook_id in listed.output and "purchase.completed" in listed.output
        assert secret not in listed.output

        game.grant("bob", "COINS", 500)
        with StoreClient(live_server.url, game.token("player", "bob")) as player:
            player.purchase("potion")
        wait_for(lambda: len(receiver.events) == 1, "the purchase's event")
        (event_id,) = receiver.events

        log = run(live_server, token, "deliveries", hook_id)
        assert log.exit_code == 0
        assert re.search(rf"\s{event_id}\s+1\s+200\s", log.output), log.output

        again = run(live_server, token, "redeliver", hook_id, str(event_id))
        assert again.exit_code == 0 and "queued 1 event(s)" in again.output
        wait_for(lambda: receiver.wire == [event_id, event_id], "the event sent again")
        early = run(live_server, token, "redeliver", hook_id, str(event_id + 1000))
        assert early.exit_code == Exit.REFUSED and "not been delivered yet" in early.output

        rotated = run(live_server, token, "rotate", hook_id)
        assert rotated.exit_code == 0
        assert rotated.output.strip().splitlines()[-1] not in (secret, "")

        disabled = run(live_server, token, "disable", hook_id)
        assert disabled.exit_code == 0 and "disabled: disabled by the studio" in disabled.output
        enabled = run(live_server, token, "enable", hook_id)
        assert enabled.exit_code == 0 and f"from event {event_id + 1}" in enabled.output
        deleted = run(live_server, token, "delete", hook_id)
        assert deleted.exit_code == 0
        assert run(live_server, token, "list").output.strip() == "no webhooks"
        gone = run(live_server, token, "delete", hook_id)
        assert gone.exit_code == Exit.REFUSED and "404 not_found" in gone.output


def test_refusals_have_their_exit_codes(live_server: LiveServer) -> None:
    game = live_server.new_game()
    token = game.token("studio", "designer")
    plain_http = run(live_server, token, "add", "http://hooks.example.com/in")
    assert plain_http.exit_code == Exit.REFUSED
    assert "url" in plain_http.output and "https" in plain_http.output
    as_player = run(live_server, game.token("player", "p1"), "list")
    assert as_player.exit_code == Exit.AUTH


def test_studio_client_webhook_calls(live_server: LiveServer) -> None:
    game = live_server.new_game()
    with StudioClient(live_server.url, game.token("studio", "designer")) as studio:
        made = studio.add_webhook("https://hooks.example.com/in", description="backend")
        assert made.secret.startswith("whsec_") and made.secret not in repr(made)
        assert studio.webhooks() == [made.webhook]
        assert studio.webhook(made.webhook.id) == made.webhook
        rotated = studio.rotate_webhook_secret(made.webhook.id)
        assert rotated.webhook.previous_secret_expires_at is not None
        assert studio.disable_webhook(made.webhook.id).disabled_reason == "disabled by the studio"
        assert studio.enable_webhook(made.webhook.id).enabled is True
        assert list(studio.webhook_deliveries(made.webhook.id)) == []
        with pytest.raises(ValidationError) as refused:
            studio.add_webhook("ftp://hooks.example.com/in")
        assert "url" in refused.value.fields
        studio.delete_webhook(made.webhook.id)
        with pytest.raises(NotFound):
            studio.webhook(made.webhook.id)
        with pytest.raises(NotFound):
            studio.webhook(str(uuid.uuid4()))


def test_async_studio_client_webhook_calls(live_server: LiveServer) -> None:
    game = live_server.new_game()

    async def calls() -> None:
        async with AsyncStudioClient(live_server.url, game.token("studio", "designer")) as studio:
            made = await studio.add_webhook(
                "https://hooks.example.com/in", types=["stock.sold_out"]
            )
            assert made.webhook.types == ("stock.sold_out",)
            assert await studio.webhooks() == [made.webhook]
            assert (await studio.disable_webhook(made.webhook.id)).enabled is False
            assert (await studio.enable_webhook(made.webhook.id)).enabled is True
            rotated = await studio.rotate_webhook_secret(made.webhook.id)
            assert rotated.secret != made.secret
            assert [d async for d in studio.webhook_deliveries(made.webhook.id)] == []
            await studio.delete_webhook(made.webhook.id)
            with pytest.raises(NotFound):
                await studio.webhook(made.webhook.id)

    asyncio.run(calls())
