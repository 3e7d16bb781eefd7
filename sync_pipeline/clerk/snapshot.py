"""Reading Clerk into contract frames: the client streams pages, the normalizer builds frames.

Pages are normalized as they arrive and their dicts dropped, so memory follows the
compact frames rather than a million parsed JSON objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.clerk.normalize import FrameBuilder
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS, Snapshot, SyncScope


@dataclass
class ClerkReadReport:
    """What reading Clerk took, for run metadata."""

    rows: dict[str, int] = field(default_factory=dict)
    repeats_dropped: dict[str, int] = field(default_factory=dict)
    fetch_stats: dict[str, dict] = field(default_factory=dict)


def read_clerk(client: ClerkClient, scope: SyncScope, *, include_private_metadata: bool = True) -> tuple[Snapshot, ClerkReadReport]:
    """Every user, organization and membership in ``scope``, as Clerk has them now."""
    builders = {entity: FrameBuilder(entity, include_private_metadata=include_private_metadata) for entity in (USERS, ORGANIZATIONS, MEMBERSHIPS)}
    report = ClerkReadReport()

    def fetch(label: str, entity: str, method, *args) -> None:
        result = method(*args, on_page=builders[entity].add_page)
        report.fetch_stats[label] = result.stats.as_dict()

    if scope.is_full:
        fetch("users", USERS, client.fetch_users)
        fetch("organizations", ORGANIZATIONS, client.fetch_organizations)
        fetch("organization_memberships", MEMBERSHIPS, client.fetch_memberships)
    else:
        if scope.user_ids:
            fetch("users_by_id", USERS, client.fetch_users_by_id, list(scope.user_ids))
            fetch("memberships_of_users", MEMBERSHIPS, client.fetch_memberships_of_users, list(scope.user_ids))
        if scope.organization_ids:
            fetch("organizations_by_id", ORGANIZATIONS, client.fetch_organizations_by_id, list(scope.organization_ids))
            fetch(
                "memberships_of_organizations",
                MEMBERSHIPS,
                client.fetch_memberships_of_organizations,
                list(scope.organization_ids),
            )

    frames = {}
    nul_replaced = {}
    for entity, builder in builders.items():
        frames[entity] = builder.frame()
        report.rows[entity] = len(frames[entity])
        report.repeats_dropped[entity] = builder.repeats_dropped
        if builder.nul_replaced_ids:
            nul_replaced[entity] = frozenset(builder.nul_replaced_ids)
    return Snapshot(scope=scope, nul_replaced=nul_replaced, **frames), report
