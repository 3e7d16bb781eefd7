"""A Clerk stand-in for benchmarks that serves pre-rendered pages, so its CPU is not the floor.

Clerk's servers do not share our two cores; the emulator does, and rendering 500 users
of JSON a page costs it about as much CPU as decoding them costs us. So the benchmark
renders every page once and then measures the sync against bytes served from memory:

1. **record**: the child process holds the real emulator app (``ClerkEmulatorApp`` over
   a ``ClerkStore``, called in process as an ASGI app, no latency, no rate limit). A
   request is answered by it and its answer (status, headers, body) kept under the
   request's path and query, byte for byte. The benchmark records by running the
   sync's own fetch once, so the pages kept are exactly the ones the sync asks for.
2. **serve** (``freeze``): the emulator is no longer called; a request waits the
   fixed latency (20 ms), passes Clerk's rate limit (1,000 per 10 s by default: a 429
   with ``Retry-After`` past it, as the emulator and Clerk answer) and gets the kept
   bytes. A request that was not recorded is a 404 whose message says so, and is
   counted (``stats()["misses"]``): a benchmark never measures the emulator silently.

The users' cursor windows end at the scan's start (``created_at_before=<now>``), so the
URLs of two scans differ unless that clock is pinned: :func:`pin_scan_clock` does that
in the process that runs the sync (the benchmark's doing, not the sync's).

It runs in a process of its own (``spawn``: a clean interpreter, none of our memory, its
own GIL), served by uvicorn with uvloop and httptools, and answers commands on a pipe.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the served child imports this module: it stays free of the client's imports
    from benchmarks.floors import DownloadFloor

BENCH_SECRET_KEY = "sk_live_benchmark"  # an sk_live_ key: Clerk's production limit
DEFAULT_LATENCY_MS = 20.0
DEFAULT_REQUESTS_PER_10S = 1000


def pin_scan_clock(epoch_ms: int) -> None:
    """Pin the users scan's upper bound (``created_at_before``) so every scan asks the same URLs.

    Every user the emulator generated was created before ``epoch_ms`` (pass the time the
    benchmark started), so the pinned bound reads the same users as the moving one.
    """
    from sync_pipeline.clerk import paging

    paging._now_ms = lambda: epoch_ms


def _not_prerendered(key: str) -> bytes:
    import orjson

    message = f"benchmark: {key} was not pre-rendered (the sync asked for a page the record pass did not)"
    return orjson.dumps({"errors": [{"message": message, "long_message": message, "code": "benchmark_not_prerendered", "meta": {}}]})


class PrerenderedApp:
    """The ASGI app of the child: records through the emulator, then serves from memory."""

    def __init__(self, emulator: Any, secret_key: str, latency_ms: float, requests_per_10s: int) -> None:
        from sync_pipeline.emulator.app import SlidingWindowRateLimiter

        self.emulator = emulator
        self.secret_key = secret_key
        self.latency_ms = latency_ms
        self.requests_per_10s = requests_per_10s
        self.recording = True
        self.pages: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
        self.record_order: list[str] = []
        self.limiter = SlidingWindowRateLimiter()
        self.lock = threading.Lock()
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests = 0
        self.responses_429 = 0
        self.misses = 0
        self.missed: list[str] = []
        self.served_bytes = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        query = scope.get("query_string", b"").decode("latin-1")
        key = scope["path"] + ("?" + query if query else "")
        if self.recording:
            status, headers, body = await self._render(scope, receive)
            with self.lock:
                if key not in self.pages:
                    self.record_order.append(key)
                self.pages[key] = (status, headers, body)
            await self._send(send, status, headers, body)
            return
        self.requests += 1
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        if not self._authorized(scope):
            await self._send(send, 401, [(b"content-type", b"application/json")], b'{"errors":[{"code":"authentication_invalid"}]}')
            return
        if self.requests_per_10s:
            wait_s = self.limiter.admit(self.secret_key, self.requests_per_10s, 10.0, time.monotonic())
            if wait_s is not None:
                self.responses_429 += 1
                await self._send(send, 429, [(b"content-type", b"application/json"), (b"retry-after", str(max(1, math.ceil(wait_s))).encode())],
                                 b'{"errors":[{"code":"too_many_requests","message":"Too many requests"}]}')
                return
        page = self.pages.get(key)
        if page is None:
            self.misses += 1
            if len(self.missed) < 20:
                self.missed.append(key)
            await self._send(send, 404, [(b"content-type", b"application/json")], _not_prerendered(key))
            return
        status, headers, body = page
        self.served_bytes += len(body)
        await self._send(send, status, headers, body)

    def _authorized(self, scope: dict) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and token.strip() == self.secret_key
        return False

    async def _render(self, scope: dict, receive: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The emulator's answer to this request, called in process."""
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.emulator(scope, receive, capture)
        headers = [(k, v) for k, v in started.get("headers", []) if k.lower() != b"content-length"]
        return started["status"], headers, b"".join(chunks)

    @staticmethod
    async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _serve(conn: Connection, options: dict[str, Any]) -> None:  # runs in the child
    import socket

    import uvicorn

    from sync_pipeline.emulator.app import ClerkEmulatorApp, EmulatorSettings
    from sync_pipeline.emulator.store import ClerkStore

    store = ClerkStore(options["users"], options["orgs"], options["seed"])
    emulator = ClerkEmulatorApp(store, EmulatorSettings(secret_key=options["secret_key"], latency_ms=0, requests_per_10s=0))
    app = PrerenderedApp(emulator, options["secret_key"], options["latency_ms"], options["requests_per_10s"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="uvloop", http="httptools", lifespan="on", backlog=2048)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    generated = store._generated  # the generated users' ids by position (read only)
    user_ids = [generated.user_id(i) for i in range(0, store.user_count, max(1, store.user_count // options["sample_users"]))]
    conn.send({"base_url": f"http://127.0.0.1:{port}/v1", "user_ids": user_ids[: options["sample_users"]], "counts": {
        "users": store.user_count, "organizations": store.organization_count, "organization_memberships": store.membership_count,
        "organization_permissions": len(store.iter_permissions()), "organization_roles": len(store.iter_roles()),
        "organization_invitations": store.invitation_count, "organization_domains": store.domain_count}})
    lifted: dict[str, Any] = {}  # the emulator's deep-offset settings while a record lifts them
    try:
        while True:
            command, args = conn.recv()
            if command == "stop":
                conn.send(("ok", None))
                return
            if command == "freeze":
                app.recording = False
                _restore_offset_limits(emulator.settings, lifted)
                reply: Any = {"pages": len(app.pages), "bytes": sum(len(p[2]) for p in app.pages.values()),
                              "statuses": _statuses(app.pages)}
            elif command == "record":
                app.recording = True
                if args.get("deep_offsets"):
                    _lift_offset_limits(emulator.settings, lifted)
                reply = None
            elif command == "stats":
                reply = {"requests": app.requests, "responses_429": app.responses_429, "misses": app.misses,
                         "missed": list(app.missed), "served_bytes": app.served_bytes}
            elif command == "reset_stats":
                app.reset_stats()
                reply = None
            elif command == "set_rate":
                app.requests_per_10s = args["requests_per_10s"]
                app.limiter = type(app.limiter)()  # a fresh window: what a floor measures leaves nothing behind
                reply = None
            elif command == "keys":
                reply = list(app.record_order)
            else:
                conn.send(("error", f"unknown command {command!r}"))
                continue
            conn.send(("ok", reply))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# A page deep in an offset walk costs the emulator (and Clerk) more, and past 10,000 users it
# is a 504 (Clerk's spec for GET /users). A record pass for a client that walks offsets that
# deep (dlt as PostHog configures it) lifts both: the page is rendered like any other, and
# served later at the same fixed latency as every page.
_OFFSET_SETTINGS = {"users_offset_ms_per_1000": 0.0, "users_offset_timeout": None,
                    "memberships_offset_ms_per_1000": 0.0, "memberships_offset_timeout": None}


def _lift_offset_limits(settings: Any, lifted: dict[str, Any]) -> None:
    for name, value in _OFFSET_SETTINGS.items():
        lifted.setdefault(name, getattr(settings, name))
        setattr(settings, name, value)


def _restore_offset_limits(settings: Any, lifted: dict[str, Any]) -> None:
    for name, value in lifted.items():
        setattr(settings, name, value)
    lifted.clear()


def _statuses(pages: dict[str, tuple[int, Any, bytes]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for status, _, _ in pages.values():
        out[str(status)] = out.get(str(status), 0) + 1
    return out


@dataclass
class PrerenderedClerk:
    """``with PrerenderedClerk(users, orgs) as clerk:`` record (run a fetch), ``clerk.freeze()``, measure."""

    users: int
    orgs: int
    latency_ms: float = DEFAULT_LATENCY_MS
    requests_per_10s: int = DEFAULT_REQUESTS_PER_10S
    seed: int = 42
    secret_key: str = BENCH_SECRET_KEY
    sample_users: int = 10  # ids handed back for partial runs, spread over the users

    def __enter__(self) -> PrerenderedClerk:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        options = {"users": self.users, "orgs": self.orgs, "seed": self.seed, "secret_key": self.secret_key,
                   "latency_ms": self.latency_ms, "requests_per_10s": self.requests_per_10s,
                   "sample_users": self.sample_users}
        self._process = context.Process(target=_serve, args=(child, options), name="clerk-prerendered", daemon=True)
        self._process.start()
        deadline = time.monotonic() + 120
        while not self._conn.poll(0.2):
            if not self._process.is_alive():
                raise RuntimeError(f"the pre-rendered Clerk exited while starting (exit code {self._process.exitcode})")
            if time.monotonic() > deadline:
                self._process.kill()
                raise RuntimeError("the pre-rendered Clerk did not start within 120 s")
        hello = self._conn.recv()
        self.base_url: str = hello["base_url"]
        self.counts: dict[str, int] = hello["counts"]
        self.user_ids: list[str] = hello["user_ids"]
        self.pid = self._process.pid
        return self

    def _call(self, command: str, **args: Any) -> Any:
        self._conn.send((command, args))
        status, reply = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"pre-rendered Clerk: {command} failed: {reply}")
        return reply

    def freeze(self) -> dict[str, Any]:
        """Stop recording: from now on only recorded pages are served, at the latency and rate."""
        return self._call("freeze")

    def record(self, *, deep_offsets: bool = False) -> None:
        """Record again (the emulator answers, nothing is rate limited): for a run whose pages are not kept yet.

        ``deep_offsets``: until the next freeze, offsets of any depth are answered at once
        (no 504 past 10,000 users, no walk delay), for a client that pages by offset alone.
        """
        self._call("record", deep_offsets=deep_offsets)

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def reset_stats(self) -> None:
        self._call("reset_stats")

    def set_rate(self, requests_per_10s: int) -> None:
        """0 lifts the limit (the bare download); set the benchmark's rate back afterwards."""
        self._call("set_rate", requests_per_10s=requests_per_10s)

    def keys(self) -> list[str]:
        """Every recorded path and query, in the order first asked."""
        return self._call("keys")

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._conn.send(("stop", {}))
            self._conn.poll(15)
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._process.join(timeout=15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


def bare_download(clerk: PrerenderedClerk, keys: list[str], concurrency: int) -> DownloadFloor:
    """Every recorded page once, ``concurrency`` at a time, with httpx, bodies read and dropped.

    The rate limit is lifted for it (the latency stays): what transport and serving cost.
    """
    import httpx

    from benchmarks.floors import DownloadFloor

    origin = clerk.base_url.rsplit("/v1", 1)[0]
    statuses: dict[int, int] = {}
    received = 0

    async def main() -> None:
        nonlocal received
        queue = iter(keys)
        headers = {"Authorization": f"Bearer {clerk.secret_key}"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=origin, headers=headers, limits=limits, timeout=120) as client:

            async def worker() -> None:
                nonlocal received
                for key in queue:
                    response = await client.get(key)  # path and query exactly as recorded
                    received += len(await response.aread())
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    clerk.set_rate(0)
    try:
        started = time.perf_counter()
        asyncio.run(main())
        seconds = time.perf_counter() - started
    finally:
        clerk.set_rate(clerk.requests_per_10s)
    return DownloadFloor(seconds, len(keys), received, statuses)
