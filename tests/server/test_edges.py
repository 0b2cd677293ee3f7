"""The edges of the real HTTP server (gunicorn): the contract's largest requests fit, what is
past the limits or malformed is answered in the API's envelope with an X-Request-Id, and a
refused body leaves the connection usable. Plus whole-string patterns in SQL, server and SDK."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from shopkeep import money
from shopkeep_server.serving import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_LINE
from shopkeep_server.store import rules
from support import GameHandle, LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_game(live_server: LiveServer) -> GameHandle:
    return live_server.new_game()


def _address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _assert_envelope(status: int, headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["content-type"].startswith("application/json"), (status, headers, body)
    error = json.loads(body)["error"]
    assert error["code"] == code, error
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["request_id"] == headers["x-request-id"] != ""


class RawConnection:
    """One HTTP/1.1 connection on a plain socket: what a client's connection pool reuses."""

    def __init__(self, server: LiveServer) -> None:
        self.sock = socket.create_connection(_address(server), timeout=15)
        self.buffer = b""

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def receive(self) -> tuple[int, dict[str, str], bytes]:
        """The next response; raises ConnectionError when the server closed the connection."""
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _player(game: GameHandle, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {game.token('player', 'edge-player')}", **extra}


# --- the contract's maxima fit; past the limits is answered in the envelope -----------------


def test_stock_query_with_100_skus_of_64_characters(live_server: LiveServer, live_game) -> None:
    skus = [f"{i:02d}" + "x" * 62 for i in range(100)]
    url = f"{live_server.url}/v1/stock?" + "&".join(f"sku={sku}" for sku in skus)
    request_line = f"GET {url.removeprefix(live_server.url)} HTTP/1.1"
    assert 6900 < len(request_line) < LIMIT_REQUEST_LINE
    response = httpx.get(url, headers=_player(live_game))
    assert response.status_code == 200, response.text
    assert response.json() == {"stock": []}


def test_long_valid_bearer_token(live_server: LiveServer, live_game) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "edge-player",
        "game": live_game.id,
        "role": "player",
        "aud": "shopkeep",
        "iss": live_game.key.issuer,
        "iat": now,
        "exp": now + 600,
        # An identity provider's token may carry many claims of its own.
        "groups": [f"group-{i:04d}" for i in range(700)],
    }
    token = jwt.encode(
        claims, live_game.key.secret, algorithm="HS256", headers={"kid": live_game.key.kid}
    )
    assert 8192 < len(token) < LIMIT_REQUEST_FIELD_SIZE - 100
    response = httpx.get(
        f"{live_server.url}/v1/wallet", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "name, path, headers",
    [
        ("request line", "/v1/stock?sku=" + "a" * LIMIT_REQUEST_LINE, {}),
        ("one header", "/v1/wallet", {"Authorization": "Bearer " + "a" * LIMIT_REQUEST_FIELD_SIZE}),
        ("many headers", "/v1/wallet", {f"X-Extra-{i}": "1" for i in range(120)}),
        ("header name", "/v1/wallet", {"Bad Header": "1"}),
    ],
)
def test_past_the_limits_or_malformed_gets_the_envelope(
    live_server: LiveServer, name: str, path: str, headers: dict[str, str]
) -> None:
    connection = RawConnection(live_server)
    try:
        connection.send("GET", path, headers)
        status, response_headers, body = connection.receive()
    finally:
        connection.close()
    assert status == 400, (name, body)
    _assert_envelope(status, response_headers, body, "bad_request")
    assert response_headers["connection"] == "close"


def test_control_character_in_idempotency_key(live_server: LiveServer, live_game) -> None:
    response = httpx.post(
        f"{live_server.url}/v1/purchases",
        json={"sku": "potion"},
        headers=_player(live_game, **{"Idempotency-Key": "edge-key-\x01-0123456789"}),
    )
    assert response.status_code == 400
    _assert_envelope(400, dict(response.headers), response.content, "idempotency_key_invalid")


@pytest.mark.parametrize(
    "path", ["/v1/inventory/po%00tion/consume", "/v1/inventory/potion%0A/consume"]
)
def test_control_character_in_a_sku_path(live_server: LiveServer, live_game, path: str) -> None:
    response = httpx.post(
        f"{live_server.url}{path}",
        json={"quantity": 1},
        headers=_player(live_game, **{"Idempotency-Key": f"edge-{uuid.uuid4()}"}),
    )
    assert response.status_code == 422
    _assert_envelope(422, dict(response.headers), response.content, "validation_failed")
    assert "sku" in response.json()["error"]["details"]


# --- a refused body leaves the connection usable --------------------------------------------


def test_connection_stays_usable_after_413_415_and_400(live_server: LiveServer, live_game) -> None:
    """The body is read and thrown away, so the next request on the connection is understood:
    keep-alive is kept (no close), and the final read succeeds on the same socket."""
    connection = RawConnection(live_server)
    try:
        refusals = [
            (413, "payload_too_large", "application/json", b'{"p": "' + b"x" * 300_000 + b'"}'),
            (415, "unsupported_media_type", "text/plain", b"sku=potion"),
            (400, "bad_request", "application/json", b'{"sku": "potion"'),
            (413, "payload_too_large", "application/json", b"[" + b"1," * 40_000 + b"1]"),
        ]
        for status, code, content_type, body in refusals:
            headers = _player(
                live_game,
                **{"Content-Type": content_type, "Idempotency-Key": f"edge-{uuid.uuid4()}"},
            )
            connection.send("POST", "/v1/purchases", headers, body)
            got, response_headers, response_body = connection.receive()
            assert got == status, response_body
            _assert_envelope(got, response_headers, response_body, code)
            assert response_headers.get("connection", "keep-alive").lower() == "keep-alive"
        connection.send("GET", "/v1/wallet", _player(live_game))
        status, _, body = connection.receive()
        assert status == 200, body
        assert "balances" in json.loads(body)
    finally:
        connection.close()


def test_a_body_past_the_discard_bound_closes_the_connection_cleanly(
    live_server: LiveServer, live_game
) -> None:
    """A declared body larger than the server will read: the 413 says Connection: close and
    the server closes; the client's next request, on a new connection, succeeds."""
    from shopkeep_server.app import DISCARD_BYTES

    connection = RawConnection(live_server)
    try:
        head = [
            "POST /v1/purchases HTTP/1.1",
            "Host: 127.0.0.1",
            *(f"{k}: {v}" for k, v in _player(live_game).items()),
            f"Idempotency-Key: edge-{uuid.uuid4()}",
            "Content-Type: application/json",
            f"Content-Length: {DISCARD_BYTES + 1}",
        ]
        connection.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"{" * 1000)
        status, headers, body = connection.receive()
        assert status == 413
        _assert_envelope(status, headers, body, "payload_too_large")
        assert headers["connection"] == "close"
        assert connection.closed_by_server()
    finally:
        connection.close()
    again = httpx.get(f"{live_server.url}/v1/wallet", headers=_player(live_game))
    assert again.status_code == 200


def test_httpx_client_with_one_connection_after_413(live_server: LiveServer, live_game) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=live_server.url, limits=limits) as client:
        for _ in range(3):
            refused = client.post(
                "/v1/purchases",
                content=b'{"p": "' + b"x" * 200_000 + b'"}',
                headers=_player(
                    live_game,
                    **{"Content-Type": "application/json", "Idempotency-Key": f"e-{uuid.uuid4()}"},
                ),
            )
            assert refused.status_code == 413
            assert client.get("/v1/wallet", headers=_player(live_game)).status_code == 200


# --- whole-string patterns -------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, valid",
    [
        (rules.SKU_PATTERN, "apple"),
        (rules.CURRENCY_PATTERN, "COINS"),
        (rules.KEY_PATTERN, "k" * 16),
        (rules.ACCOUNT_ID_PATTERN, "bp-rich"),
    ],
)
def test_patterns_take_the_whole_string(pattern: str, valid: str) -> None:
    assert rules.matches(pattern, valid)
    assert not rules.matches(pattern, valid + "\n")
    assert rules.ACCOUNT_ID.match("bp-rich\n") is None  # compiled with \Z: even .match


def test_sdk_currency_codes_take_the_whole_string() -> None:
    with pytest.raises(ValueError):
        money.check_currency_code("COINS\n")
    assert money.check_currency_code("COINS") == "COINS"


def test_sql_checks_treat_dollar_as_the_end_of_the_string(conn: psycopg.Connection) -> None:
    """PostgreSQL's `~` is not newline-sensitive by default: `$` is the end of the string, so
    the CHECK constraints of the migrations refuse a trailing newline as they are."""
    row = conn.execute(r"SELECT E'abc\n' ~ '^[a-z]+$', 'abc' ~ '^[a-z]+$'").fetchone()
    assert row == (False, True)
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute("INSERT INTO games (id, name) VALUES (%s, 'x')", ("newline\n",))


def test_the_wait_for_a_handler_thread_is_measured(live_server: LiveServer) -> None:
    """The HTTP server's workers stamp each request when it is ready to read: the latency
    histogram starts there, and the wait for a thread has a histogram of its own."""
    before = _queue_count(live_server)
    for _ in range(3):
        assert httpx.get(f"{live_server.url}/healthz").status_code == 200
    # /metrics itself is stamped too: at least the three /healthz and this request.
    assert _queue_count(live_server) >= before + 4


def _queue_count(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(r"^shopkeep_http_queue_seconds_count (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return float(found.group(1))


def test_every_worker_serves_a_new_version_as_soon_as_it_is_published(
    live_server: LiveServer, live_game
) -> None:
    """The workers remember which version is live (no round trip per GET /v1/catalog) and
    forget it when a publish commits: no answer after the publish shows the old version."""
    headers = _player(live_game)
    for _ in range(12):  # fresh connections, over both workers: each remembers the version
        with httpx.Client(base_url=live_server.url, headers=headers) as client:
            before = client.get("/v1/catalog").json()["version"]
    studio = {"Authorization": f"Bearer {live_game.token('studio', 'studio-1')}"}
    published = httpx.post(
        f"{live_server.url}/v1/admin/catalog/publish",
        json={"notes": "again"},
        headers={**studio, "Idempotency-Key": f"edge-{uuid.uuid4()}"},
    )
    assert published.status_code == 201, published.text
    assert published.json()["version"] == before + 1
    # Fresh connections land on either worker (one listening socket each): all of them say so.
    for _ in range(12):
        with httpx.Client(base_url=live_server.url, headers=headers) as client:
            assert client.get("/v1/catalog").json()["version"] == before + 1


def test_a_port_something_listens_on_is_refused_before_the_workers_start() -> None:
    """Each worker binds its own socket (SO_REUSEPORT), so serve checks the port first: a port
    held by another program, or by another store sharing it through SO_REUSEPORT, is an exit
    with an error rather than workers failing for ever, or two stores splitting the traffic."""
    from shopkeep_server.serving import check_port_free

    for reuse_port in (False, True):
        with socket.socket() as holder:
            if reuse_port:
                holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            with pytest.raises(SystemExit):
                check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # closed now: free again
