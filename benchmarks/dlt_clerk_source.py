"""dlt's REST API source, configured as PostHog configures its Clerk source (needs ``.[bench-dlt]``).

What PostHog's Clerk source does (PostHog's data warehouse, ``sources/clerk``), written
again here as dlt configuration, not copied:

- one resource per Clerk list: ``/users`` (a bare JSON array), ``/organizations`` and
  ``/organization_memberships`` (``{"data": [...], "total_count": n}``): the three lists
  ``sync-pipeline sync`` mirrors (PostHog also reads ``/invitations``, which we do not mirror);
- 100 a page (``limit=100``; Clerk allows 500), paged by ``offset`` alone: the first request
  carries no offset, each next one the number of rows read so far, and a page shorter
  than the limit is the last;
- ``write_disposition="replace"`` on primary key ``id``: every run reloads every row,
  with no diff against what is there and nothing marked deleted;
- Clerk's millisecond timestamps divided down to seconds on every row.

PostHog writes the rows to Delta tables through its own writer; here dlt's own pipeline
loads them into the benchmark's PostgreSQL (dlt's default for it, ``insert_values``), in a
dataset (schema) of their own. Where PostHog's configuration says nothing that applies here,
two choices in dlt's favour by default: the three lists are read at the same time
(PostHog syncs each list as a job of its own, and the jobs of one source run side by
side), and nested values (e-mail addresses, metadata) stay JSON columns
(``max_table_nesting=0``), one table per list as in PostHog and in our mirror.
``--dlt-defaults`` takes dlt's own defaults instead: the lists one after another in one
pipeline, nested lists unpacked into child tables.

As a child of the benchmark (:mod:`benchmarks.dlt_side_by_side`):

    python -m benchmarks.dlt_clerk_source --base-url URL --database-url URL --dataset NAME --out FILE [--record]

with the key in ``CLERK_SECRET_KEY``. ``--record`` only walks the three lists (no pipeline),
so that the pre-rendered stand-in records exactly the URLs dlt asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

started = time.perf_counter()

# dlt sends anonymous usage data unless told not to; a benchmark stays on this machine.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.sources.helpers.requests import Request, Response  # noqa: E402
from dlt.sources.helpers.rest_client.paginators import BasePaginator  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

PAGE_SIZE = 100
# resource (table) name → (path, where the rows are in the answer: None for a bare array)
ENDPOINTS: dict[str, tuple[str, str | None]] = {
    "users": ("/users", None),
    "organizations": ("/organizations", "data"),
    "organization_memberships": ("/organization_memberships", "data"),
}
# The fields PostHog's source turns from Clerk's milliseconds into seconds.
MILLISECOND_FIELDS = (
    "created_at", "updated_at", "last_sign_in_at", "last_active_at", "mfa_enabled_at", "mfa_disabled_at",
    "password_last_updated_at", "legal_accepted_at", "expires_at",
)


class OffsetUntilShortPage(BasePaginator):
    """``offset`` advanced by the rows each page held; a page shorter than ``limit`` ends it.

    dlt's own ``OffsetPaginator`` sends ``offset=0`` first and stops on an empty page or a
    total; Clerk's ``/users`` has no total, and PostHog pages as here.
    """

    def __init__(self, limit: int = PAGE_SIZE) -> None:
        super().__init__()
        self.limit = limit
        self.offset = 0

    def init_request(self, request: Request) -> None:
        self.offset = 0
        self._has_next_page = True

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        rows = len(data or [])  # the rows dlt already decoded (PostHog decodes the body a second time)
        self.offset += rows
        self._has_next_page = rows >= self.limit

    def update_request(self, request: Request) -> None:
        if self.offset:
            request.params = {**(request.params or {}), "offset": self.offset}


def seconds_not_milliseconds(row: dict[str, Any]) -> dict[str, Any]:
    for name in MILLISECOND_FIELDS:
        value = row.get(name)
        if value is not None:
            row[name] = value // 1000
    return row


def clerk_rest_api_config(base_url: str, secret_key: str, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """The REST API source's configuration: ``base_url`` ends with ``/v1``, as Clerk's does."""
    resources = []
    for name, (path, data_selector) in ENDPOINTS.items():
        endpoint: dict[str, Any] = {"path": path, "params": {"limit": page_size}, "paginator": OffsetUntilShortPage(page_size)}
        if data_selector:
            endpoint["data_selector"] = data_selector
        resources.append({
            "name": name,
            "table_name": name,
            "primary_key": "id",
            "write_disposition": "replace",
            "endpoint": endpoint,
            "processing_steps": [{"map": seconds_not_milliseconds}],
        })
    return {
        "client": {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": secret_key},
            "headers": {"Content-Type": "application/json"},
        },
        "resources": resources,
    }


def clerk_source(base_url: str, secret_key: str, *, dlt_defaults: bool = False) -> Any:
    """The source: the lists read in parallel threads, nested values as JSON columns, unless
    ``dlt_defaults`` (one list after another, nested lists into child tables)."""
    config = clerk_rest_api_config(base_url, secret_key)
    if dlt_defaults:
        return rest_api_source(config, name="clerk")
    return rest_api_source(config, name="clerk", max_table_nesting=0, parallelized=True)


def _credentials(database_url: str) -> Any:
    """dlt's credentials for the benchmark's URL; dlt insists on a password, which a URL for a
    server that trusts local connections (ours: ``postgresql://postgres@127.0.0.1/test``) has not."""
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = PostgresCredentials()
    credentials.parse_native_representation(database_url)
    if credentials.password is None:
        credentials.password = ""
    return credentials


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dlt_clerk_source")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--record", action="store_true", help="only walk the lists (the stand-in's record pass)")
    parser.add_argument("--dlt-defaults", action="store_true", help="lists one after another, nested lists into child tables")
    args = parser.parse_args(argv)
    secret_key = os.environ["CLERK_SECRET_KEY"]
    imported = time.perf_counter()
    report: dict[str, Any] = {"imports_seconds": imported - started}
    source = clerk_source(args.base_url, secret_key, dlt_defaults=args.dlt_defaults)
    if args.record:
        report["rows_read"] = {name: sum(1 for _ in source.resources[name]) for name in ENDPOINTS}
    else:
        with tempfile.TemporaryDirectory(prefix="bench-dlt-") as pipelines_dir:
            pipeline = dlt.pipeline(
                pipeline_name="clerk_as_posthog", pipelines_dir=pipelines_dir, dataset_name=args.dataset,
                destination=dlt.destinations.postgres(credentials=_credentials(args.database_url)),
            )
            phases = {}
            mark = time.perf_counter()
            for phase in ("extract", "normalize", "load"):
                if phase == "extract":
                    pipeline.extract(source)
                elif phase == "normalize":
                    pipeline.normalize()
                else:
                    pipeline.load(raise_on_failed_jobs=True)
                now = time.perf_counter()
                phases[phase] = now - mark
                mark = now
            report["phases_seconds"] = phases
            normalize_info = pipeline.last_trace.last_normalize_info
            report["rows_normalized"] = {k: v for k, v in normalize_info.row_counts.items() if not k.startswith("_dlt")}
            report["dlt_version"] = dlt.__version__
    import resource

    report["max_rss_mb_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
