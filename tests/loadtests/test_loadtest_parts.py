"""The load tests' own parts, without a store: the fault proxy, endpoint names, call records."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtests.common import RecordWriter, endpoint, read_calls, route_name
from loadtests.faultproxy import FaultProxy

UUID = "0b0e7a52-8c1f-4a57-9d43-6f1c2b3a4d5e"


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Echoes each request's body with a count, keep-alive, like the store's JSON answers."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append((self.command, self.path, body))
        payload = json.dumps({"n": len(self.seen), "echo": body.decode()}).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    _Upstream.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_forwards_everything_at_rate_zero(upstream: str) -> None:
    with FaultProxy(upstream, rate=0.0) as proxy, httpx.Client(base_url=proxy.url) as client:
        for n in range(1, 6):
            response = client.post("/v1/players/p-1/grants", json={"amount": n})
            assert response.status_code == 201
            answer = response.json()
            assert answer["n"] == n and json.loads(answer["echo"]) == {"amount": n}
        assert client.get("/healthz").json()["n"] == 6
    assert proxy.stats.forwarded["POST /v1/players/{player_id}/grants"] == 5
    assert proxy.stats.total_dropped == 0


def test_proxy_drops_the_answer_after_the_upstream_acted(upstream: str) -> None:
    with (
        FaultProxy(upstream, rate=1.0, methods={"POST"}) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        assert client.get("/v1/wallet").status_code == 200  # GETs pass: not in `methods`
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v1/purchases", json={"sku": "potion"})
    # The store did get (and answer) the purchase: only its answer was lost.
    assert [(m, p) for m, p, _ in _Upstream.seen] == [
        ("GET", "/v1/wallet"),
        ("POST", "/v1/purchases"),
    ]
    assert proxy.stats.dropped == {"POST /v1/purchases": 1}


def test_proxy_answers_502_when_the_store_is_gone() -> None:
    with FaultProxy("http://127.0.0.1:9", rate=0.0) as proxy:
        response = httpx.get(f"{proxy.url}/healthz")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    assert proxy.stats.upstream_errors == 1


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("POST", "/v1/purchases", "POST /v1/purchases"),
        ("GET", "/v1/stock?sku=dragon_egg", "GET /v1/stock"),
        ("POST", "/v1/players/p-00017/grants", "POST /v1/players/{player_id}/grants"),
        ("GET", "/v1/players/p-00017/wallet", "GET /v1/players/{player_id}/wallet"),
        ("POST", "/v1/inventory/potion/consume", "POST /v1/inventory/{sku}/consume"),
        ("GET", f"/v1/purchases/{UUID}", "GET /v1/purchases/{purchase_id}"),
        ("POST", f"/v1/purchases/{UUID}/refund", "POST /v1/purchases/{purchase_id}/refund"),
    ],
)  # fmt: skip
def test_endpoint_names_are_templated(method: str, path: str, name: str) -> None:
    assert endpoint(method, path) == name


def test_route_names_match_endpoint_names() -> None:
    assert route_name("/v1/players/<string:player_id>/grants") == "/v1/players/{player_id}/grants"
    assert route_name("/v1/purchases/<uuid:purchase_id>") == "/v1/purchases/{purchase_id}"
    assert route_name("/v1/inventory/<sku>/consume") == "/v1/inventory/{sku}/consume"


def test_records_settle_calls_and_skip_a_torn_line(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path)
    body = {"sku": "dragon_egg", "quantity": 1}
    writer.sent("purchase", "key-answered-0001", player="p-1", flow="drop", body=body)
    writer.sent("purchase", "key-answered-0001", player="p-1", flow="drop", body=body)
    writer.final("key-answered-0001", status=201, purchase_id="pid-1", replayed=True)
    writer.sent("purchase", "key-left-open-001", player="p-2", flow="drop", body=body)
    writer.close()
    with writer.path.open("a") as f:
        f.write('{"e": "final", "key": "key-left-open-001", "sta')  # killed mid-write

    calls = read_calls(tmp_path)
    answered, left_open = calls["key-answered-0001"], calls["key-left-open-001"]
    assert (answered.sends, answered.status, answered.replays) == (2, 201, 1)
    assert answered.purchase_ids == {"pid-1"} and answered.succeeded
    assert not left_open.settled and left_open.sends == 1

    left_open.settle(409, "sold_out", None, False, None)
    left_open.settle(201, None, "pid-2", False, None)  # a second, different answer
    assert left_open.status == 409 and left_open.conflicts == [(201, None)]
