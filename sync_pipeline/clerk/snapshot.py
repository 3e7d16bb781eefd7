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
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync_pipeline.clerk.client import IDS_PER_REQUEST, ClerkClient, FetchResult
from sync_pipeline.clerk.errors import ClerkIncompleteListError
from sync_pipeline.clerk.normalize import FrameBuilder
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS, LiveKeys, Snapshot, SyncScope

# Confirming absences costs a request per 100 users, per organization, and per user (or
# organization) for memberships. Past this many requests for one entity (about 10 s at a
# production key's rate) the absences are not read one by one: they are believed when the
# scan showed no sign of skipping, and the run fails when it did.
MAX_CONFIRM_REQUESTS = 1000


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
    present = pc.is_in(pa.array(ids, type=pa.large_string()), value_set=pa.array(seen, type=pa.large_string()))
    return ids[~present.to_numpy(zero_copy_only=False)]


class _Reader:
    """One read of Clerk: a frame builder per entity, and the report of what it cost."""

    def __init__(self, client: ClerkClient, include_private_metadata: bool) -> None:
        self.client = client
        self.builders = {
            entity: FrameBuilder(entity, include_private_metadata=include_private_metadata)
            for entity in (USERS, ORGANIZATIONS, MEMBERSHIPS)
        }
        self.report = ClerkReadReport()
        self.short_pages: dict[str, int] = {}

    def fetch(self, label: str, entity: str, method: Callable[..., FetchResult], *args) -> FetchResult:
        result = method(*args, on_page=self.builders[entity].add_page)
        self.report.fetch_stats[label] = result.stats.as_dict()
        self.short_pages[entity] = self.short_pages.get(entity, 0) + result.stats.early_short_pages
        return result

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
        users = _not_in(live.users, frames[USERS]["id"]).tolist()
        self._confirm(frames, USERS, users, math.ceil(len(users) / IDS_PER_REQUEST), "users_by_id", client.fetch_users_by_id)
        orgs = _not_in(live.organizations, frames[ORGANIZATIONS]["id"]).tolist()
        self._confirm(frames, ORGANIZATIONS, orgs, len(orgs), "organizations_by_id", client.fetch_organizations_by_id)

        memberships = live.memberships
        missing = memberships[
            ~memberships["id"].isin(frames[MEMBERSHIPS]["id"])
            & memberships["user_id"].isin(frames[USERS]["id"])
            & memberships["organization_id"].isin(frames[ORGANIZATIONS]["id"])
        ]
        of_users, of_orgs = missing["user_id"].unique().tolist(), missing["organization_id"].unique().tolist()
        # One request per user or per organization: whichever names fewer.
        if len(of_users) <= len(of_orgs):
            method, ids, label = client.fetch_memberships_of_users, of_users, "memberships_of_users"
        else:
            method, ids, label = client.fetch_memberships_of_organizations, of_orgs, "memberships_of_organizations"
        self._confirm(frames, MEMBERSHIPS, ids, len(ids), label, method, absent=len(missing))

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
        reader.fetch("users", USERS, client.fetch_users)
        reader.fetch("organizations", ORGANIZATIONS, client.fetch_organizations)
        reader.fetch("organization_memberships", MEMBERSHIPS, client.fetch_memberships)
    else:
        if scope.user_ids:
            reader.fetch("users_by_id", USERS, client.fetch_users_by_id, list(scope.user_ids))
            reader.fetch("memberships_of_users", MEMBERSHIPS, client.fetch_memberships_of_users, list(scope.user_ids))
        if scope.organization_ids:
            reader.fetch("organizations_by_id", ORGANIZATIONS, client.fetch_organizations_by_id, list(scope.organization_ids))
            reader.fetch(
                "memberships_of_organizations",
                MEMBERSHIPS,
                client.fetch_memberships_of_organizations,
                list(scope.organization_ids),
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
