"""Talking to an emulator over HTTP, as the tests do."""

from __future__ import annotations

from typing import Any

import httpx

from sync_pipeline.emulator import EmulatorServer

# The size of the tests' emulators (conftest.py): small enough to page through quickly.
SMALL_USERS, SMALL_ORGS, SEED = 300, 30, 7


def http_client(server: EmulatorServer, **overrides: Any) -> httpx.Client:
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "headers": {"Authorization": f"Bearer {server.secret_key}", "Clerk-API-Version": "2025-11-10"},
        "timeout": 5.0,
    }
    options.update(overrides)
    return httpx.Client(**options)


def fetch_all(client: httpx.Client, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every row of a list endpoint by limit/offset paging (bare arrays and {data} bodies alike)."""
    rows: list[dict[str, Any]] = []
    while True:
        response = client.get(path, params={**params, "limit": limit, "offset": len(rows)})
        response.raise_for_status()
        body = response.json()
        page = body if isinstance(body, list) else body["data"]
        rows.extend(page)
        if len(page) < limit:
            return rows
