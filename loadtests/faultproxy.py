"""A fault proxy on loopback: answers lost after the store committed.

It forwards HTTP/1.1 requests to the store and, for a share ``rate`` of them, reads the store's
whole response and then closes the client's connection without sending a byte of it. To the
client this is a reset connection on a request that did happen, the case an idempotency key is
for: the SDK re-sends with the same key, and the store must replay the stored answer instead of
selling twice.

Only as much of HTTP/1.1 as the SDK and the store speak: keep-alive, Content-Length and chunked
bodies. One upstream connection per client connection, opened lazily and renewed when idle for
longer than the store's keep-alive (gunicorn closes those, and a request written onto a closing
connection would be lost by the proxy, not dropped on purpose).

Use it from Python (``with FaultProxy(url, rate=0.1) as proxy: proxy.url``) or alone::

    python -m loadtests.faultproxy --upstream http://127.0.0.1:8000 --rate 0.1 --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import random
import sys
import threading
import time
from collections.abc import Collection
from types import TracebackType
from urllib.parse import urlsplit

from .common import endpoint

_LIMIT = 1 << 20  # longest head or chunk-size line we accept (bodies are read by length)
# gunicorn's keepalive in the store is 5 s: renew upstream connections idle for longer than this.
_UPSTREAM_IDLE = 3.0


class _ConnectionGone(Exception):
    """The peer closed the connection between messages (a clean end, not an error)."""


@dataclasses.dataclass
class ProxyStats:
    """What the proxy did, by endpoint (``POST /v1/purchases``)."""

    forwarded: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    dropped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    upstream_errors: int = 0

    @property
    def total_forwarded(self) -> int:
        """Requests the store answered."""
        return sum(self.forwarded.values())

    @property
    def total_dropped(self) -> int:
        """Answers the client never got."""
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly copy."""
        return {
            "forwarded": dict(self.forwarded),
            "dropped": dict(self.dropped),
            "upstream_errors": self.upstream_errors,
        }


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            raise _ConnectionGone from exc
        raise


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    # Relayed verbatim (sizes, extensions and trailers included), so nothing is re-encoded.
    parts = []
    while True:
        line = await reader.readuntil(b"\r\n")
        parts.append(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                parts.append(trailer)
                if trailer == b"\r\n":
                    return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def _read_body(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], *, until_eof: bool
) -> bytes:
    encoding = _header(headers, "transfer-encoding")
    if encoding is not None and "chunked" in encoding.lower():
        return await _read_chunked(reader)
    length = _header(headers, "content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    # A request without a length has no body; a response without one runs to the close.
    return await reader.read() if until_eof else b""


def _wants_close(headers: list[tuple[str, str]]) -> bool:
    return (_header(headers, "connection") or "").lower() == "close"


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``, dropping a share ``rate`` of the responses
    of requests whose method is in ``methods`` (every method when ``None``).

    ``seed`` makes the drop decisions a fixed sequence (their order still follows the order
    requests finish in). Runs its own event loop on a thread between :meth:`start` and
    :meth:`stop`; :attr:`stats` counts what it forwarded and dropped.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        methods: Collection[str] | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {rate}")
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.rate = rate
        self.methods = frozenset(m.upper() for m in methods) if methods is not None else None
        self.stats = ProxyStats()
        self._random = random.Random(seed)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The proxy's base URL (after :meth:`start`)."""
        return f"http://{self._host}:{self._port}"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen and serve on a daemon thread; returns once the port is bound."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self._host, self._port, limit=_LIMIT), loop
        ).result(10)
        self._server = server
        self._port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop listening, close every connection and end the thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- one client connection ------------------------------------------------------------------

    def _drops(self, method: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.rate > 0 and self._random.random() < self.rate

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        last_used = 0.0
        try:
            while True:
                try:
                    head = await _read_head(client_r)
                except _ConnectionGone:
                    return
                request_line, headers = _parse_head(head)
                method, target = [*request_line.split(" "), "", ""][:2]
                body = await _read_body(client_r, headers, until_eof=False)
                name = endpoint(method, target)
                if upstream is not None and time.monotonic() - last_used > _UPSTREAM_IDLE:
                    upstream[1].close()
                    upstream = None
                try:
                    if upstream is None:
                        upstream = await asyncio.open_connection(
                            self.upstream_host, self.upstream_port, limit=_LIMIT
                        )
                    up_r, up_w = upstream
                    up_w.write(head + body)
                    await up_w.drain()
                    response_head = await _read_head(up_r)
                    status_line, response_headers = _parse_head(response_head)
                    status = int(status_line.split(" ", 2)[1])
                    bodiless = method == "HEAD" or status in (204, 304) or status < 200
                    response_body = (
                        b""
                        if bodiless
                        else await _read_body(up_r, response_headers, until_eof=True)
                    )
                except (OSError, asyncio.IncompleteReadError, _ConnectionGone, ValueError):
                    self.stats.upstream_errors += 1
                    await self._bad_gateway(client_w)
                    return
                last_used = time.monotonic()
                self.stats.forwarded[name] += 1
                if self._drops(method):
                    # The store has answered (and committed, for a 2xx): the client never
                    # hears it. Closing without a byte is what a crashed load balancer or a
                    # lost mobile connection looks like to it.
                    self.stats.dropped[name] += 1
                    return
                client_w.write(response_head + response_body)
                await client_w.drain()
                if _wants_close(headers) or _wants_close(response_headers):
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return  # the client went away or spoke something we do not relay
        except asyncio.CancelledError:
            # stop() cancels open connections; end like a closed one, or asyncio's stream
            # callback logs the cancellation as an error.
            return
        finally:
            if upstream is not None:
                upstream[1].close()
            client_w.close()

    @staticmethod
    async def _bad_gateway(client_w: asyncio.StreamWriter) -> None:
        body = json.dumps(
            {"error": {"code": "bad_gateway", "message": "fault proxy: the store did not answer",
                       "details": {}, "request_id": None}}
        ).encode()  # fmt: skip
        client_w.write(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        with contextlib.suppress(OSError):
            await client_w.drain()


def main(argv: list[str] | None = None) -> int:
    """Run a proxy until Ctrl-C, then print what it forwarded and dropped."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.faultproxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--upstream", required=True, help="the store's base URL (http://)")
    parser.add_argument("--rate", type=float, required=True, help="share of responses dropped")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--methods", nargs="*", default=None, help="only these (e.g. POST)")
    args = parser.parse_args(argv)
    proxy = FaultProxy(
        args.upstream, rate=args.rate, seed=args.seed, port=args.port, methods=args.methods
    )
    with proxy:
        print(f"{proxy.url} -> {args.upstream}, dropping {args.rate:.1%}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    print(json.dumps(proxy.stats.as_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
