"""Running the emulator: blocking for the CLI, or in a background thread for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import uvicorn

from sync_pipeline.emulator.app import (
    DEFAULT_SECRET_KEY,
    ClerkEmulatorApp,
    EmulatorSettings,
    EmulatorStats,
)
from sync_pipeline.emulator.faults import FaultInjector
from sync_pipeline.emulator.store import ClerkStore
from sync_pipeline.emulator.webhooks import WebhookDispatcher

DEFAULT_PORT = 8765
_STARTUP_TIMEOUT_S = 30.0


def run_emulator(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    users: int = 5_000,
    orgs: int = 500,
    seed: int = 42,
    secret_key: str = DEFAULT_SECRET_KEY,
    latency_ms: float = 0.0,
    requests_per_10s: int | None = None,
    *,
    cascade_membership_events: bool = False,
    users_in_one_millisecond: int = 0,
    log_level: str = "info",
    access_log: bool = False,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    webhook_options: Mapping[str, Any] | None = None,
    settings: EmulatorSettings | None = None,
) -> None:
    """Serve a Clerk Backend API emulator until interrupted (Ctrl-C). Blocks.

    ``settings``, when given, replaces ``secret_key``, ``latency_ms`` and
    ``requests_per_10s`` with a whole :class:`EmulatorSettings` (deep-offset timeouts, the
    gone-parent answer, the simulated application's share, …).

    The API is at ``http://{host}:{port}/v1`` and answers ``Authorization: Bearer
    {secret_key}``. Data: ``users`` users and ``orgs`` organizations (about one
    membership per user), generated deterministically from ``seed`` (a million users
    start in about a second). ``latency_ms`` delays every answer. ``requests_per_10s`` is
    the rate limit per key: None for Clerk's own (100 per 10 s for ``sk_test_`` keys, 1000
    for ``sk_live_``), 0 for none, else that many. ``cascade_membership_events`` and
    ``users_in_one_millisecond``: see :class:`ClerkStore`. ``access_log`` prints a line per request (off by default: at
    benchmark rates the printing costs more than the serving).

    Webhooks (off by default): with ``webhook_url`` and ``webhook_secret`` (``whsec_`` +
    base64, the signing secret a receiver verifies with), every change to the data (made
    through the admin API at ``http://{host}:{port}/_emulator/``, see
    :mod:`sync_pipeline.emulator.app`) is delivered there as a Svix-signed Clerk webhook,
    from a background thread. ``webhook_options`` go to :class:`WebhookDispatcher`
    (``duplicate_rate``, ``drop_rate``, ``reorder_window``, ``retry_delays``, ``seed``...).
    The secret is never printed.
    """
    if (webhook_url is None) != (webhook_secret is None):
        raise ValueError("webhook_url and webhook_secret go together")
    store = ClerkStore(
        users, orgs, seed,
        cascade_membership_events=cascade_membership_events, users_in_one_millisecond=users_in_one_millisecond,
    )
    settings = settings or EmulatorSettings(secret_key=secret_key, latency_ms=latency_ms, requests_per_10s=requests_per_10s)
    secret_key = settings.secret_key
    app = ClerkEmulatorApp(store, settings)
    dispatcher = None
    if webhook_url is not None and webhook_secret is not None:
        options = {**(webhook_options or {}), "store": store, "background": True}
        dispatcher = WebhookDispatcher(webhook_url, webhook_secret, **options)
    print(
        f"Clerk emulator: http://{host}:{port}/v1 (Bearer {secret_key}), "
        f"{users} users, {orgs} organizations, seed {seed}"
    )
    if dispatcher is not None:
        print(f"Webhooks: delivering every change to {webhook_url} (admin API: http://{host}:{port}/_emulator/)")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, lifespan="off")
    finally:
        if dispatcher is not None:
            dispatcher.close()


class EmulatorServer:
    """A Clerk emulator on 127.0.0.1 and a free port, served from a background thread.

    ::

        with EmulatorServer(users=300, orgs=30) as server:
            httpx.get(f"{server.base_url}/users", headers={"Authorization": f"Bearer {server.secret_key}"})
            server.store.delete_user(...)          # change the data under the client
            server.faults.add(FaultKind.SLOW)      # make the next request hang
            server.settings.latency_ms = 20        # settings apply to the next request
            server.stats.too_many_requests         # what was served
            hooks = server.deliver_webhooks_to("http://127.0.0.1:9000/hooks", "whsec_...")
            httpx.post(f"{server.admin_url}/users", json={"first_name": "Ada"}, headers=...)  # a user.created

    Pass ``store`` to serve an existing :class:`ClerkStore` (``users``, ``orgs``, ``seed``
    ``cascade_membership_events`` and ``users_in_one_millisecond`` are then ignored; see
    :class:`ClerkStore` for those). ``settings`` replaces the settings the other arguments
    would make (every field of :class:`EmulatorSettings`).
    """

    def __init__(
        self,
        store: ClerkStore | None = None,
        *,
        users: int = 5_000,
        orgs: int = 500,
        seed: int = 42,
        secret_key: str = DEFAULT_SECRET_KEY,
        latency_ms: float = 0.0,
        requests_per_10s: int | None = None,
        rate_limit_window_s: float = 10.0,
        cascade_membership_events: bool = False,
        users_in_one_millisecond: int = 0,
        settings: EmulatorSettings | None = None,
    ) -> None:
        self.store = store or ClerkStore(
            users, orgs, seed,
            cascade_membership_events=cascade_membership_events, users_in_one_millisecond=users_in_one_millisecond,
        )
        self.settings = settings or EmulatorSettings(
            secret_key=secret_key,
            latency_ms=latency_ms,
            requests_per_10s=requests_per_10s,
            rate_limit_window_s=rate_limit_window_s,
        )
        self.faults = FaultInjector()
        self.stats = EmulatorStats()
        self.app = ClerkEmulatorApp(self.store, self.settings, self.faults, self.stats)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.webhooks: list[WebhookDispatcher] = []  # closed when the server stops

    @property
    def secret_key(self) -> str:
        return self.settings.secret_key

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:<port>/_emulator``: the admin API (see :mod:`sync_pipeline.emulator.app`)."""
        if self.port is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self.host}:{self.port}/_emulator"

    def deliver_webhooks_to(
        self, url: str, secret: str, *, background: bool = True, **options: Any
    ) -> WebhookDispatcher:
        """Deliver every change to the store from now on to ``url`` as Svix-signed webhooks.

        ``secret`` is the ``whsec_`` signing secret. ``background`` (default) sends from a
        thread as changes happen; ``background=False`` queues them until
        ``dispatcher.flush()``. ``options`` go to :class:`WebhookDispatcher`
        (``duplicate_rate``, ``drop_rate``, ``reorder_window``, ``retry_delays``, ``seed``,
        ``timeout``...). The dispatcher is closed when the server stops.
        """
        dispatcher = WebhookDispatcher(url, secret, store=self.store, background=background, **options)
        self.webhooks.append(dispatcher)
        return dispatcher

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the equivalent of ``https://api.clerk.com/v1``."""
        if self.port is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        # Bind here, not in uvicorn, so the port is known before the thread starts.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        self.port = listener.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            # Let slow-fault requests end quickly on shutdown instead of being waited for.
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name=f"clerk-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Clerk emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        for dispatcher in self.webhooks:
            dispatcher.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
