"""`shopkeep stores set/list` and the catalog file's products, against the live server: the
studio configures each store from the command line, secrets never come back, and a catalog
pulled to a file and pushed again keeps its products."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from shopkeep.catalog_cli import Exit, main
from shopkeep_server.sandbox_store import SandboxAppStore
from support import stores as s


def shopkeep(server: Any, token: str, *args: str, env: dict[str, str] | None = None) -> Result:
    options = ["--server", server.url, "--token", token]
    return CliRunner().invoke(main, [*options, *args], env={"SHOPKEEP_TOKEN": None, **(env or {})})


def test_stores_set_and_list_never_show_a_secret(server: Any, tmp_path: Path) -> None:
    game = server.new_game(catalog=s.money_catalog())
    token = game.token("studio", "alice")
    root = tmp_path / "root.pem"
    root.write_text(SandboxAppStore.create().root_pem())
    apple = shopkeep(
        server, token, "stores", "set", "app_store", "--bundle-id", s.BUNDLE_ID,
        "--environment", "sandbox", "--root-certificate", str(root),
    )  # fmt: skip
    assert apple.exit_code == Exit.OK, apple.output
    assert json.loads(apple.stdout)["settings"]["bundle_id"] == s.BUNDLE_ID
    key = tmp_path / "play.json"
    key.write_text(json.dumps(s.FakeGooglePlay().service_account()))
    google = shopkeep(
        server, token, "stores", "set", "google_play", "--package-name", s.PACKAGE_NAME,
        "--service-account", str(key), "--chargeback-policy", "freeze",
    )  # fmt: skip
    assert google.exit_code == Exit.OK, google.output
    steam = shopkeep(
        server, token, "stores", "set", "steam", "--app-id", "480", "--price", "usd_5=USD:499",
        env={"SHOPKEEP_STEAM_PUBLISHER_KEY": "publisher-key-from-the-env"},
    )  # fmt: skip
    assert steam.exit_code == Exit.OK, steam.output
    assert json.loads(steam.stdout)["settings"]["prices"] == {
        "usd_5": {"currency": "USD", "amount": 499}
    }
    listed = shopkeep(server, token, "stores", "list")
    assert listed.exit_code == Exit.OK
    assert "PRIVATE KEY" not in listed.stdout
    assert "publisher-key-from-the-env" not in listed.stdout
    assert '"secrets_set": [\n    "service_account"\n  ]' in listed.stdout
    assert '"chargeback_policy": "freeze"' in listed.stdout
    refused = shopkeep(server, token, "stores", "set", "steam", "--price", "usd_5=USD:free")
    assert refused.exit_code == Exit.USAGE


def test_a_pulled_catalog_keeps_its_products_through_a_push(server: Any, tmp_path: Path) -> None:
    game = server.new_game(catalog=s.money_catalog())
    token = game.token("studio", "alice")
    path = tmp_path / "catalog.yaml"
    pulled = shopkeep(server, token, "catalog", "pull", "--live", "--output", str(path))
    assert pulled.exit_code == Exit.OK, pulled.output
    text = path.read_text()
    assert "products:" in text and "app_store: com.example.usd5" in text
    pushed = shopkeep(server, token, "catalog", "push", str(path))
    assert pushed.exit_code == Exit.OK, pushed.output
    diff = shopkeep(server, token, "catalog", "diff", str(path), "--against", "live")
    assert diff.exit_code == Exit.OK, diff.output
    assert "no differences" in diff.stdout
