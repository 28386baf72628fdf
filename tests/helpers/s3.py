"""moto's S3 server on 127.0.0.1 that also counts what it serves: requests and body bytes per
object key, so tests can prove an object was read by ranged requests, not downloaded whole."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Served:
    """One request: method, path (``/bucket/key``), Range header, body bytes sent, query."""

    method: str
    path: str
    range: str | None
    body: int
    query: str = ""


@dataclass
class Traffic:
    """Every request the server answered, in order."""

    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, served: Served) -> None:
        with self.lock:
            self.served.append(served)

    def of(self, path: str) -> list[Served]:
        """Requests for one object (``/bucket/key``)."""
        with self.lock:
            return [s for s in self.served if s.path == path]

    def clear(self) -> None:
        with self.lock:
            self.served.clear()


def counting(app: Wsgi, traffic: Traffic) -> Wsgi:
    """``app`` with each response's body bytes counted as they are sent."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        method, path = str(environ["REQUEST_METHOD"]), str(environ.get("PATH_INFO", ""))
        ranged = environ.get("HTTP_RANGE")
        body = app(environ, start_response)
        sent = 0
        try:
            for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            query = str(environ.get("QUERY_STRING", ""))
            traffic.add(Served(method, path, str(ranged) if ranged else None, sent, query))

    return wrapped


class CountingMotoServer(ThreadedMotoServer):
    """:class:`ThreadedMotoServer` whose WSGI app is wrapped by :func:`counting`."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.traffic = Traffic()

    def _server_entry(self) -> None:
        app = counting(DomainDispatcherApplication(create_backend_app), self.traffic)
        # The same server moto's start() builds (threaded), with the counting app.
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()
