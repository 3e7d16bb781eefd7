"""The ids a scoped sync names: refused before the run when they cannot be Clerk's, and
reported after it when Clerk does not have them (a typo reads like a no-op otherwise)."""

from __future__ import annotations

from collections.abc import Iterable

from sync_pipeline.clerk.ids import id_problem
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.entities import catalog
from sync_pipeline.model import Snapshot, SyncScope


def check_scope_ids(user_ids: Iterable[str], organization_ids: Iterable[str]) -> None:
    """Raise one line naming the first id given on the command line that cannot be a Clerk id."""
    for flag, ids, example in (("--user-id", user_ids, "user_2x…"), ("--org-id", organization_ids, "org_2x…")):
        for value in ids:
            problem = id_problem(value)
            if problem is not None:
                shown = repr(value if len(value) <= 40 else value[:40] + "…")
                raise ConfigurationError(f"{flag} {shown} cannot be a Clerk id ({problem}): give one like {example}")


def ids_not_in_clerk(scope: SyncScope, clerk: Snapshot) -> dict[str, list[str]]:
    """The ids ``scope`` names (of users, of organizations) that Clerk's snapshot does not hold."""
    return {
        entity.singular: sorted(set(scope.ids_of(entity.name)) - set(clerk.frame(entity.name)["id"].tolist()))
        for entity in catalog.ENTITIES
        if entity.scope_ids
    }
