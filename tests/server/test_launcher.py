"""The private-store launcher the tests, the sample game and the load tests share."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shopkeep_server.launcher import StoreServer, StoreStartError

pytestmark = pytest.mark.slow


def test_serves_until_the_block_ends_then_stops(database_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    with StoreServer(database_url=database_url, workers=1, log_path=log_path) as store:
        assert store.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{store.url}/readyz").status_code == 200
        process = store.process
        assert process is not None
    assert store.process is None
    assert process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{store.url}/healthz")
    assert f"Shopkeep serving on {store.url}" in log_path.read_text()


def test_a_store_that_cannot_start_says_why_and_leaves_nothing() -> None:
    store = StoreServer(database_url="postgresql://shopkeep@127.0.0.1:1/nowhere", workers=1)
    with pytest.raises(StoreStartError, match=r"^the store exited \(1\)") as raised:
        store.start()
    assert 'connection to server at "127.0.0.1", port 1 failed' in str(raised.value)
    assert store.process is None
    assert not store.log_path.exists()
    store.stop()  # twice is fine
