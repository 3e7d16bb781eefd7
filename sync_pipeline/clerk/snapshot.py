"""Reading Clerk into contract frames: the client streams pages, the normalizer builds frames.

Pages are normalized as they arrive and their dicts dropped, so memory follows the
compact frames rather than a million parsed JSON objects.

A full sync deletes whatever its scan did not return, and offset paging over a list that
changes while it is read can skip rows: a row deleted behind the reader shifts every later
one up an offset, with or without a page coming back short (a row created meanwhile fills
the gap). So before an absence is believed, every id the mirror holds live and the scan
missed is read again by id (100 users a request); what Clerk still has joins the snapshot.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sync_pipeline.clerk.client import IDS_PER_REQUEST, ClerkClient, FetchResult
from sync_pipeline.clerk.errors import ClerkIncompleteListError, ClerkUnavailableError
from sync_pipeline.clerk.normalize import SPILL_DIR_VARIABLE, FrameBuilder
from sync_pipeline.frame_files import dump_object, load_object
from sync_pipeline.entities import catalog
from sync_pipeline.model import ENTITIES, MEMBERSHIPS, ORGANIZATIONS, USERS, LiveKeys, Snapshot, SyncScope
from sync_pipeline.text_columns import is_in

# Confirming absences costs a request per 100 users, per organization, and per user (or
# organization) for memberships. Past this many requests for one entity (about 10 s at a
# production key's rate) the absences are not read one by one: they are believed when the
# scan showed no sign of skipping, and the run fails when it did.
MAX_CONFIRM_REQUESTS = 1000

# Reading pages is CPU-bound Python (decoding and normalizing, ~60 us a row on one core:
# several times the network's share at Clerk's rate limit), and the memberships are about
# as many as the users. From this many users on, a full scan reads the memberships in a
# second process while this one reads the other lists, the rate divided between the two
# by the pages each has to read (:func:`split_rate`); below, starting the process (~2 s)
# costs more than it saves.
PARALLEL_SCAN_MIN_USERS = 50_000


@dataclass
class ClerkReadReport:
    """What reading Clerk took, for run metadata."""

    rows: dict[str, int] = field(default_factory=dict)
    repeats_dropped: dict[str, int] = field(default_factory=dict)
    fetch_stats: dict[str, dict] = field(default_factory=dict)
    # A full scan's absences, by entity: live mirror rows the scan did not return; those a
    # read by id found after all (the scan skipped them); those believed unread (too many).
    absent: dict[str, int] = field(default_factory=dict)
    refound: dict[str, int] = field(default_factory=dict)
    unconfirmed: dict[str, int] = field(default_factory=dict)


def _not_in(ids: pd.Series, seen: pd.Series) -> pd.Series:
    """``ids`` that ``seen`` does not hold (an Arrow hash lookup: a million ids in milliseconds)."""
    if ids.empty:
        return ids
    return ids[~is_in(ids, seen)]


class _Reader:
    """One read of Clerk: a frame builder per entity, and the report of what it cost."""

    def __init__(self, client: ClerkClient, include_private_metadata: bool) -> None:
        self.client = client
        self.builders = {
            entity: FrameBuilder(entity, include_private_metadata=include_private_metadata)
            for entity in ENTITIES
        }
        self.report = ClerkReadReport()
        self.short_pages: dict[str, int] = {}

    def fetch(self, label: str, entity: str, method: Callable[..., FetchResult], *args) -> FetchResult:
        result = method(*args, on_page=self.builders[entity].add_page)
        self.report.fetch_stats[label] = result.stats.as_dict()
        self.short_pages[entity] = self.short_pages.get(entity, 0) + result.stats.early_short_pages
        return result

    def take_scan(self, label: str, entity: str, scan: _ScanInAnotherProcess) -> None:
        frame = load_object(Path(scan.path))  # memory-mapped: the file may go, the mapping stays
        os.unlink(scan.path)
        self.builders[entity].add_frame(frame, repeats_dropped=scan.repeats_dropped, nul_replaced_ids=scan.nul_replaced_ids)
        self.report.fetch_stats[label] = scan.stats
        self.short_pages[entity] = self.short_pages.get(entity, 0) + scan.short_pages

    def members_count(self) -> dict[str, int]:
        """Organization id → members_count, from the organizations read so far."""
        frame = self.builders[ORGANIZATIONS].frame()
        if frame.empty:
            return {}
        counts = frame["members_count"].fillna(0).astype("int64")
        return dict(zip(frame["id"].astype(str), counts.tolist()))

    def frames(self) -> dict[str, pd.DataFrame]:
        frames = {entity: builder.frame() for entity, builder in self.builders.items()}
        for entity, builder in self.builders.items():
            self.report.repeats_dropped[entity] = builder.repeats_dropped
        return frames

    def confirm_absences(self, live: LiveKeys, frames: dict[str, pd.DataFrame]) -> None:
        """Read by id what the mirror holds live and the scan missed; keep what Clerk still has.

        Users and organizations first: a membership whose user or organization is really
        gone goes with it, and is not read again.
        """
        client = self.client
        for entity in catalog.ENTITIES:  # parents first: their confirmed rows decide the children's
            keys = live.frame(entity.name)
            missing = keys[~is_in(keys["id"], frames[entity.name]["id"])]
            for parent in entity.parents:  # a row whose parent is gone goes with it, unread
                missing = missing[is_in(missing[parent.column], frames[parent.entity]["id"])]
            endpoints = entity.endpoints
            by_parent = [
                (p, missing[p.column].dropna().unique().tolist())
                for p in entity.parents
                if any(b.parent_column == p.column for b in endpoints.by_parent)
            ]
            if by_parent:
                # One request per parent row, under whichever parent names fewer.
                parent, ids = min(by_parent, key=lambda found: len(found[1]))
                method = partial(client.fetch_children, entity.name, parent.entity)
                label = f"{entity.singular}s_of_{parent.entity}"
                self._confirm(frames, entity.name, ids, len(ids), label, method, absent=len(missing))
            elif endpoints.ids_filter or endpoints.by_id_path:
                ids = missing["id"].tolist()
                requests = math.ceil(len(ids) / IDS_PER_REQUEST) if endpoints.ids_filter else len(ids)
                method = partial(client.fetch_by_id, entity.name)
                self._confirm(frames, entity.name, ids, requests, f"{entity.name}_by_id", method)
            else:  # nothing reads it otherwise: a short list read whole, its absences believed
                self.report.absent[entity.name] = len(missing)

    def _confirm(self, frames, entity, ids, requests, label, method, *, absent: int | None = None) -> None:  # noqa: ANN001
        absent = len(ids) if absent is None else absent
        self.report.absent[entity] = absent
        if not ids:
            return
        if requests > MAX_CONFIRM_REQUESTS:
            if self.short_pages.get(entity):
                raise ClerkIncompleteListError(
                    label=entity, total_count=None, short_pages=self.short_pages[entity], unconfirmed=absent
                )
            self.report.unconfirmed[entity] = absent
            return
        before = len(frames[entity])
        if self.fetch(f"confirm_{label}", entity, method, ids).stats.rows:
            frames[entity] = self.builders[entity].frame()
        self.report.refound[entity] = len(frames[entity]) - before


@dataclass
class _ScanInAnotherProcess:
    """What a scan run in another process hands back: its frame in a file, and its figures."""

    path: str
    stats: dict
    short_pages: int
    repeats_dropped: int
    nul_replaced_ids: list[str]


def _scan_memberships_into(settings: dict, include_private_metadata: bool, path: str) -> _ScanInAnotherProcess:
    """Runs in the second process: every membership, into a frame file at ``path``."""
    client = ClerkClient(**settings)
    builder = FrameBuilder(MEMBERSHIPS, include_private_metadata=include_private_metadata)
    result = client.fetch_memberships(on_page=builder.add_page)
    dump_object(builder.frame(), Path(path))
    return _ScanInAnotherProcess(
        path, result.stats.as_dict(), result.stats.early_short_pages, builder.repeats_dropped, builder.nul_replaced_ids
    )


def split_rate(requests_per_10s: int, sizes: Mapping[str, int | None], page_size: int) -> tuple[int, int]:
    """The rate for this process and for the memberships' process, in proportion to the pages
    each will read, so that both end together (a list that announced no size counts as one page).

    A fixed half each left this process, with the users, the organizations and the short
    lists (about 290 of 490 pages at 100,000 users), reading for 1.5 s after the memberships
    had finished.
    """
    pages = {entity: max(1, math.ceil((size or 0) / page_size)) for entity, size in sizes.items()}
    there_pages = pages.get(MEMBERSHIPS, 1)
    total = sum(pages.values())
    there = min(requests_per_10s - 1, max(1, round(requests_per_10s * there_pages / total)))
    return max(1, requests_per_10s - there), max(1, there)


def _with_rate(client: ClerkClient, requests_per_10s: int) -> dict:
    """The client's settings, at another request rate."""
    settings = {name: getattr(client, name) for name in type(client).model_fields}
    return {**settings, "requests_per_10s": max(1, requests_per_10s)}


def _can_scan_elsewhere(client: ClerkClient) -> bool:
    # A test's fake transport or shortened rate window would not reach another process.
    return client._transport is None and client._rate_window_seconds == 10.0


def read_clerk(
    client: ClerkClient,
    scope: SyncScope,
    *,
    include_private_metadata: bool = True,
    mirror_live_keys: Callable[[], LiveKeys] | None = None,
) -> tuple[Snapshot, ClerkReadReport]:
    """Every user, organization and membership in ``scope``, as Clerk has them now.

    For a full scope, ``mirror_live_keys`` gives the ids the mirror holds live, and each
    one the scan did not return is read again by id before it is believed gone.
    """
    reader = _Reader(client, include_private_metadata)
    if scope.is_full:
        # The user count decides whether a second process is worth it (the users scan then
        # starts from it rather than ask again); only then are the other lists' sizes asked,
        # to divide the rate, so a small instance pays no request for them.
        users, elsewhere = None, False
        if _can_scan_elsewhere(client):
            sizes, asked = client.fetch_list_sizes([USERS])
            users = sizes[USERS]
            stats = asked.stats
            elsewhere = users >= PARALLEL_SCAN_MIN_USERS
            if elsewhere:
                others, asked = client.fetch_list_sizes([e for e in ENTITIES if e != USERS])
                sizes.update(others)
                stats = stats.merge(asked.stats)
            reader.report.fetch_stats["list_sizes"] = stats.as_dict()
        with ExitStack() as stack:
            memberships = None
            if elsewhere:
                here, there = split_rate(client.rate_limit_per_10s, sizes, client.page_size)
                memberships = _start_memberships_elsewhere(client, include_private_metadata, stack, there)
                client = ClerkClient(**_with_rate(client, here))
            reader.fetch("users", USERS, partial(client.fetch_users, total_count=users))
            # Organizations before memberships: their members_count lets a membership scan
            # whose deep offsets time out read the rest per organization.
            reader.fetch("organizations", ORGANIZATIONS, client.fetch_organizations)
            # The other lists are short (a few per organization, a few roles) and read by offset.
            for entity in catalog.ENTITIES:
                if entity.name not in (USERS, ORGANIZATIONS, MEMBERSHIPS):
                    reader.fetch(entity.name, entity.name, partial(client.fetch_list, entity.name))
            members = partial(client.fetch_memberships, members_count=reader.members_count())
            if memberships is None:
                reader.fetch("organization_memberships", MEMBERSHIPS, members)
            else:
                try:
                    scanned = memberships.get()
                except ClerkUnavailableError:
                    # The other process had no organizations to fall back on: read here, where they are.
                    reader.fetch("organization_memberships", MEMBERSHIPS, members)
                else:
                    reader.take_scan("organization_memberships", MEMBERSHIPS, scanned)
    else:
        # What the mirror's scope filter covers (mirror.snapshot._scope_filter): the rows the
        # scope names, and every child of them, each parent's children in its own list.
        for entity in catalog.ENTITIES:
            ids = list(scope.ids_of(entity.name))
            if not ids:
                continue
            reader.fetch(f"{entity.name}_by_id", entity.name, partial(client.fetch_by_id, entity.name), ids)
            # The parents just read exist: an empty list of children under one is believed.
            found = reader.builders[entity.name].frame()["id"].tolist()
            for child, parent in catalog.children_of(entity.name):
                if parent not in catalog.scoping_parents(child):
                    continue  # its list under this parent is not the whole picture
                reader.fetch(
                    f"{child.singular}s_of_{entity.name}",
                    child.name,
                    partial(client.fetch_children, child.name, entity.name, known_parents=found),
                    ids,
                )

    frames = reader.frames()
    if scope.is_full and mirror_live_keys is not None:
        reader.confirm_absences(mirror_live_keys(), frames)

    report = reader.report
    nul_replaced = {}
    for entity, builder in reader.builders.items():
        report.rows[entity] = len(frames[entity])
        if builder.nul_replaced_ids:
            nul_replaced[entity] = frozenset(builder.nul_replaced_ids)
    return Snapshot(scope=scope, nul_replaced=nul_replaced, **frames), report


def _start_memberships_elsewhere(client: ClerkClient, include_private_metadata: bool, stack: ExitStack, requests_per_10s: int):  # noqa: ANN201
    """Start the membership scan in a second process at ``requests_per_10s``.

    The process is killed when ``stack`` closes, so a failure here (a revoked key on the
    users) does not wait for the memberships to finish.
    """
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="clerk-scan-", dir=os.environ.get(SPILL_DIR_VARIABLE)))
    # spawn, not fork: this process may hold threads (Dagster's, the mirror read) and an event loop.
    pool = multiprocessing.get_context("spawn").Pool(processes=1)
    stack.callback(pool.join)
    stack.callback(pool.terminate)
    settings = _with_rate(client, requests_per_10s)
    return pool.apply_async(_scan_memberships_into, (settings, include_private_metadata, str(Path(directory) / "memberships.frames")))
