"""A TCP proxy in front of Postgres that can stall the connections open through it.

``stall_open_connections(seconds)`` makes every connection open at that moment forward
nothing for that long, and lose what it carries meanwhile, as a middlebox that dropped
its state would: the driver's query never reaches the server, and without a deadline of
its own the driver waits for the answer forever. Connections opened later pass. Only
loopback: the proxy listens on 127.0.0.1 and forwards to the test's own server.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    black_hole_until: float = 0.0


@dataclass
class StallingProxy:
    target: str | tuple[str, int]
    """A unix socket path, or (host, port)."""
    port: int = 0
    dropped_bytes: int = 0
    connections: int = 0
    _pairs: list[_Pair] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _closed: bool = False

    @classmethod
    def to(cls, database_url: str) -> StallingProxy:
        url = make_url(database_url)
        socket_dir = url.query.get("host")
        if url.host:
            target: str | tuple[str, int] = (url.host, url.port or 5432)
        else:
            target = f"{socket_dir}/.s.PGSQL.{url.port or 5432}"
        return cls(target).start()

    def url_for(self, database_url: str) -> str:
        """``database_url`` through the proxy."""
        url = make_url(database_url)
        query = {k: v for k, v in url.query.items() if k != "host"}
        return url.set(host="127.0.0.1", port=self.port, query=query).render_as_string(hide_password=False)

    def start(self) -> StallingProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="stalling-proxy").start()
        return self

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.connect(self.target)
        return upstream

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.connections += 1
            for source, destination in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, source, destination), daemon=True).start()

    def _pump(self, pair: _Pair, source: socket.socket, destination: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if time.monotonic() < pair.black_hole_until:
                    with self._lock:
                        self.dropped_bytes += len(data)
                    continue
                destination.sendall(data)
        except OSError:
            pass
        finally:
            for end in (pair.client, pair.upstream):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stall_open_connections(self, seconds: float) -> float:
        """Stall every connection open now for ``seconds``; returns when the stall ends (monotonic)."""
        until = time.monotonic() + seconds
        with self._lock:
            for pair in self._pairs:
                pair.black_hole_until = until
        return until

    def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for end in (pair.client, pair.upstream):
                    try:
                        end.close()
                    except OSError:
                        pass
