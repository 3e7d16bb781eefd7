"""The Clerk emulator in a process of its own, so its CPU is never charged to the pipeline.

The child process serves :class:`sync_pipeline.emulator.EmulatorServer` (uvicorn on a
thread) and answers commands on a pipe from its main thread: read its request counters,
lift or restore the rate limit (the bare-download floor), and change data through the
store's mutation API (``update_user`` and friends), exactly as a test or the admin API
would. Commands only run while the pipeline is not fetching.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

BENCH_SECRET_KEY = "sk_live_benchmark"  # an sk_live_ key: Clerk's production limit and client default


def _changed_metadata(tag: str, index: int) -> dict[str, Any]:
    return {"bench": tag, "n": index}


def _serve(conn: Connection, options: dict[str, Any]) -> None:  # runs in the child
    from sync_pipeline.emulator import EmulatorServer

    server = EmulatorServer(
        users=options["users"],
        orgs=options["orgs"],
        seed=options["seed"],
        secret_key=options["secret_key"],
        latency_ms=options["latency_ms"],
        requests_per_10s=options["requests_per_10s"],
    )
    server.start()
    store = server.store
    generated = store._generated  # ids of generated objects by position (read-only use)
    conn.send({"base_url": server.base_url, "admin_url": server.admin_url})
    try:
        while True:
            command, args = conn.recv()
            try:
                if command == "stop":
                    conn.send(None)
                    return
                if command == "stats":
                    stats = server.stats
                    reply: Any = {
                        "requests": stats.requests,
                        "responses_429": stats.too_many_requests,
                        "by_status": {str(k): v for k, v in stats.responses_by_status.items()},
                    }
                elif command == "reset_stats":
                    server.stats.reset()
                    reply = None
                elif command == "set_rate":
                    # With no limit (0) the emulator does not count requests against the window,
                    # so the bare download leaves nothing behind for the pipeline to pay.
                    server.settings.requests_per_10s = args["requests_per_10s"]
                    reply = None
                elif command == "counts":
                    reply = {
                        "users": store.user_count,
                        "organizations": store.organization_count,
                        "organization_memberships": store.membership_count,
                        "organization_permissions": len(store.iter_permissions()),
                        "organization_roles": len(store.iter_roles()),
                        "organization_invitations": store.invitation_count,
                        "organization_domains": store.domain_count,
                    }
                elif command == "change":
                    reply = _change(store, generated, **args)
                else:
                    raise ValueError(f"unknown command {command!r}")
                conn.send(("ok", reply))
            except Exception as error:  # reported to the parent, which raises
                conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        server.stop()


def _every(count: int, share: float, limit: int | None) -> list[int]:
    """Evenly spread positions: ``share`` of ``count`` (or exactly ``limit``)."""
    wanted = limit if limit is not None else max(1, round(count * share))
    wanted = min(wanted, count)
    if wanted <= 0:
        return []
    step = count / wanted
    return sorted({int(i * step + step / 2) for i in range(wanted)})


def _change(store, generated, *, tag: str, users: float = 0.0, organizations: float = 0.0,
            memberships: float = 0.0, user_limit: int | None = None) -> dict[str, list[str]]:
    """Change a share of each kind through the store's mutation API; returns the ids changed.

    Users and organizations get new ``public_metadata`` (organizations: memberships embed
    the organization, so Clerk's own listing shows those memberships changed too, as in
    real Clerk); memberships get a new role.
    """
    changed: dict[str, list[str]] = {"users": [], "organizations": [], "organization_memberships": []}
    if users or user_limit:
        for position in _every(generated.user_count, users, user_limit):
            user_id = generated.user_id(position)
            store.update_user(user_id, public_metadata=_changed_metadata(tag, position))
            changed["users"].append(user_id)
    if organizations:
        for position in _every(generated.organization_count, organizations, None):
            organization_id = generated.organization_id(position)
            store.update_organization(organization_id, public_metadata=_changed_metadata(tag, position))
            changed["organizations"].append(organization_id)
    if memberships:
        for position in _every(generated.memberships.count, memberships, None):
            membership_id = generated.membership_id(position)
            store.update_membership(membership_id, role=f"org:bench_{tag}")
            changed["organization_memberships"].append(membership_id)
    return changed


@dataclass
class EmulatorProcess:
    """Handle on the child: ``with EmulatorProcess(...) as emulator: emulator.base_url``."""

    users: int
    orgs: int
    latency_ms: float
    requests_per_10s: int
    seed: int = 42
    secret_key: str = BENCH_SECRET_KEY

    def __enter__(self) -> EmulatorProcess:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: none of our memory
        self._conn, child = context.Pipe()
        options = {
            "users": self.users,
            "orgs": self.orgs,
            "seed": self.seed,
            "secret_key": self.secret_key,
            "latency_ms": self.latency_ms,
            "requests_per_10s": self.requests_per_10s,
        }
        self._process = context.Process(target=_serve, args=(child, options), name="clerk-emulator", daemon=True)
        self._process.start()
        if not self._conn.poll(120):
            self._process.kill()
            raise RuntimeError("the emulator process did not start within 120 s")
        hello = self._conn.recv()
        self.base_url: str = hello["base_url"]
        self.admin_url: str = hello["admin_url"]
        self.pid = self._process.pid
        return self

    def _call(self, command: str, **args: Any) -> Any:
        self._conn.send((command, args))
        status, reply = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator command {command} failed: {reply}")
        return reply

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def reset_stats(self) -> None:
        self._call("reset_stats")

    def set_rate(self, requests_per_10s: int) -> None:
        """0 lifts the limit (for the bare download); restore the benchmark's rate afterwards."""
        self._call("set_rate", requests_per_10s=requests_per_10s)

    def counts(self) -> dict[str, int]:
        return self._call("counts")

    def change(self, **args: Any) -> dict[str, list[str]]:
        return self._call("change", **args)

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
