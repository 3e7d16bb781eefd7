"""The floors each figure is measured against, and the naive reference, in the same run.

- rate floor: the requests a fetch needs ÷ the rate Clerk allows;
- bare download: the same pages from the same emulator, ``max_concurrency`` at a time,
  bodies read and thrown away (no JSON parsing), with the emulator's rate limit lifted
  so it measures what serving and transport cost;
- load floor: a plain ``COPY`` of the mirror's rows, as Postgres itself prints them,
  into an unindexed table of the same columns (``LIKE``);
- naive reference: row-by-row upserts of a sample, one statement and one commit per row,
  the way a webhook handler writes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass

import httpx
from sqlalchemy.engine import Engine

from sync_pipeline.clerk.client import (
    MAX_PAGE_SIZE,
    MEMBERSHIPS_ENDPOINT,
    ORGANIZATIONS_ENDPOINT,
    USERS_COUNT_ENDPOINT,
    USERS_ENDPOINT,
)
from sync_pipeline.model import ENTITIES

_PAGED = {
    USERS_ENDPOINT: ("/users", {"order_by": "+created_at"}),
    ORGANIZATIONS_ENDPOINT: ("/organizations", {"order_by": "+created_at", "include_members_count": "true"}),
    MEMBERSHIPS_ENDPOINT: ("/organization_memberships", {"order_by": "+created_at"}),
}


def needed_requests(fetch_stats: dict[str, dict]) -> dict[str, int]:
    """Requests per endpoint a full fetch needed: the successful ones (pages, the count)."""
    needed: dict[str, int] = {}
    for stats in fetch_stats.values():
        for endpoint, counters in stats.get("endpoints", {}).items():
            needed[endpoint] = needed.get(endpoint, 0) + int(counters["requests"]) - int(counters["retries"])
    return needed


def rate_floor_seconds(requests: int, requests_per_10s: int) -> float:
    return requests / (requests_per_10s / 10.0)


@dataclass
class DownloadFloor:
    seconds: float
    requests: int
    bytes: int
    statuses: dict[int, int]


def bare_download(base_url: str, secret_key: str, needed: dict[str, int], concurrency: int) -> DownloadFloor:
    """Download the pages a full fetch reads, ``concurrency`` at a time, without parsing them."""
    requests: list[tuple[str, dict[str, str]]] = []
    for endpoint, count in needed.items():
        if endpoint == USERS_COUNT_ENDPOINT:
            requests += [("/users/count", {})] * count
        elif endpoint == USERS_ENDPOINT:
            # Users are read by cursor, and a cursor page costs the same wherever it sits
            # (Clerk's spec): the first page, as often as the fetch read a page of users.
            path, params = _PAGED[endpoint]
            requests += [(path, {**params, "limit": str(MAX_PAGE_SIZE)})] * count
        elif endpoint in _PAGED:
            path, params = _PAGED[endpoint]
            requests += [(path, {**params, "limit": str(MAX_PAGE_SIZE), "offset": str(i * MAX_PAGE_SIZE)}) for i in range(count)]
    statuses: dict[int, int] = {}
    received = 0

    async def main() -> None:
        queue = iter(requests)
        headers = {"Authorization": f"Bearer {secret_key}", "Accept": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=120) as client:

            async def worker() -> None:
                nonlocal received
                for path, params in queue:
                    response = await client.get(path, params=params)
                    body = await response.aread()
                    received += len(body)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(main())
    return DownloadFloor(time.perf_counter() - started, len(requests), received, statuses)


@dataclass
class LoadFloor:
    seconds: dict[str, float]
    rows: dict[str, int]
    bytes: dict[str, int]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def copy_floor(engine: Engine, schema: str, entities: tuple[str, ...] = ENTITIES) -> LoadFloor:
    """``COPY`` each mirror table's rows into an unindexed table ``LIKE`` it; only that COPY is timed.

    The rows are first copied out (``COPY … TO``) into a file, in Postgres' own text
    format, so the timed part is Postgres taking a bulk load, not anything of ours.
    """
    seconds, rows, sizes = {}, {}, {}
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        for entity in entities:
            table = f'"{schema}".floor_{entity}'
            with tempfile.TemporaryFile(dir=os.environ.get("BENCH_TMPDIR")) as spool:
                with connection.cursor() as cursor:
                    with cursor.copy(f'COPY "{schema}".{entity} TO STDOUT') as copy:
                        for chunk in copy:
                            spool.write(chunk)
                    cursor.execute(f"DROP TABLE IF EXISTS {table}")
                    cursor.execute(f'CREATE TABLE {table} (LIKE "{schema}".{entity})')
                connection.commit()
                sizes[entity] = spool.tell()
                spool.seek(0)
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                        while block := spool.read(1 << 20):
                            copy.write(block)
                    rows[entity] = cursor.rowcount
                connection.commit()
                seconds[entity] = time.perf_counter() - started
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {table}")
            connection.commit()
    finally:
        raw.close()
    return LoadFloor(seconds, rows, sizes)


@dataclass
class NaiveReference:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def row_by_row_upserts(engine: Engine, schema: str, sample: int) -> NaiveReference:
    """Upsert ``sample`` users one at a time, each in its own transaction, into a copy of the table.

    The copy (``LIKE … INCLUDING ALL``: the mirror's indexes too) already holds the
    rows, and every upsert changes one, as a ``user.updated`` webhook handler would.
    """
    table = f'"{schema}".naive_users'
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f'CREATE TABLE {table} (LIKE "{schema}".users INCLUDING ALL)')
            cursor.execute(f'INSERT INTO {table} SELECT * FROM "{schema}".users ORDER BY id LIMIT %s', (sample,))
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(
                "SELECT id, primary_email, first_name, last_name, username, image_url, external_id, banned, "
                "public_metadata::text, private_metadata::text, created_at, updated_at, raw::text, raw_digest "
                f"FROM {table} ORDER BY id"
            )
            rows = cursor.fetchall()
        connection.commit()
        sql = (
            f"INSERT INTO {table} AS m (id, primary_email, first_name, last_name, username, image_url, external_id, "
            "banned, public_metadata, private_metadata, created_at, updated_at, raw, raw_digest, synced_at, deleted_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s::jsonb, %s, now(), NULL) "
            "ON CONFLICT (id) DO UPDATE SET primary_email = EXCLUDED.primary_email, first_name = EXCLUDED.first_name, "
            "last_name = EXCLUDED.last_name, username = EXCLUDED.username, image_url = EXCLUDED.image_url, "
            "external_id = EXCLUDED.external_id, banned = EXCLUDED.banned, public_metadata = EXCLUDED.public_metadata, "
            "private_metadata = EXCLUDED.private_metadata, created_at = EXCLUDED.created_at, "
            "updated_at = EXCLUDED.updated_at, raw = EXCLUDED.raw, raw_digest = EXCLUDED.raw_digest, "
            "synced_at = EXCLUDED.synced_at, deleted_at = NULL"
        )
        started = time.perf_counter()
        for row in rows:
            changed = list(row)
            changed[2] = f"{row[2] or ''}~"  # first_name
            changed[13] = "changed"  # raw_digest
            with connection.cursor() as cursor:
                cursor.execute(sql, changed)
            connection.commit()
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")
        connection.commit()
    finally:
        raw.close()
    return NaiveReference(len(rows), seconds)
