"""Test data: the shared Clerk fixtures, small hand-built Clerk objects, and frames built from them.

The fixtures are Clerk's example objects from ``../shared/clerk/fixtures``, beside the
repository. A copy lives in ``clerk_fixtures/`` so the suite runs in a clone on its own
(a newcomer's machine has no ``../shared``); ``test_vendored_fixtures`` fails the moment
the copy and the source differ.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from sync_pipeline import model
from sync_pipeline.clerk.normalize import normalize

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "clerk" / "fixtures"
VENDORED_FIXTURES = Path(__file__).resolve().parent / "clerk_fixtures"
FIXTURES = SHARED_FIXTURES if SHARED_FIXTURES.is_dir() else VENDORED_FIXTURES


@cache
def _load(name: str) -> Any:
    path = FIXTURES / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def load(name: str) -> Any:
    """A fixture by file name (``"user"`` or ``"user.json"``), as a fresh deep copy."""
    return copy.deepcopy(_load(name))


def list_users() -> list[dict]:
    return load("list_users_response")  # GET /users answers a bare array


def list_organizations() -> list[dict]:
    return load("list_organizations_response")["data"]


def list_memberships() -> list[dict]:
    return load("list_organization_memberships_response")["data"]


# ------------------------------------------------------------- hand-built objects

T0 = 1_700_000_000_000  # epoch ms


def email_address(address: str, *, id: str | None = None, status: str | None = "verified") -> dict:
    return {
        "id": id or f"idn_{address}",
        "object": "email_address",
        "email_address": address,
        "verification": None if status is None else {"status": status, "strategy": "email_code"},
        "linked_to": [],
    }


def user(id: str, email: str | None = None, **fields: Any) -> dict:
    """A small user; ``email`` becomes its one, primary, verified address."""
    addresses = [email_address(email, id=f"idn_{id}")] if email is not None else []
    obj = {
        "id": id,
        "object": "user",
        "username": None,
        "first_name": "First",
        "last_name": "Last",
        "image_url": f"https://img.example/{id}",
        "external_id": None,
        "primary_email_address_id": addresses[0]["id"] if addresses else None,
        "email_addresses": addresses,
        "public_metadata": {},
        "private_metadata": {},
        "banned": False,
        "created_at": T0,
        "updated_at": T0,
    }
    obj.update(fields)
    return obj


def organization(id: str, **fields: Any) -> dict:
    obj = {
        "object": "organization",
        "id": id,
        "name": f"Org {id}",
        "slug": id.replace("_", "-"),
        "image_url": None,
        "members_count": 1,
        "created_by": None,
        "public_metadata": {},
        "private_metadata": {},
        "created_at": T0,
        "updated_at": T0,
    }
    obj.update(fields)
    return obj


def membership(id: str, organization_id: str, user_id: str, **fields: Any) -> dict:
    obj = {
        "object": "organization_membership",
        "id": id,
        "role": "org:member",
        "permissions": ["org:sys_memberships:read"],
        "public_metadata": {},
        "private_metadata": {},
        "organization": organization(organization_id),
        "public_user_data": {"user_id": user_id, "identifier": f"{user_id}@example.com"},
        "created_at": T0,
        "updated_at": T0,
    }
    obj.update(fields)
    return obj


def permission(id: str, key: str = "org:invoices:read", **fields: Any) -> dict:
    """A Permission as the spec's schema has it (GET /organization_permissions)."""
    obj = {
        "object": "permission",
        "id": id,
        "name": "Read invoices",
        "key": key,
        "description": "May read the organization's invoices.",
        "type": "user",
        "created_at": T0,
        "updated_at": T0,
    }
    obj.update(fields)
    return obj


def role(id: str, key: str = "org:billing", permissions: list[dict] | None = None, **fields: Any) -> dict:
    """A Role (GET /organization_roles): its permissions embedded as whole Permission objects."""
    obj = {
        "object": "role",
        "id": id,
        "name": "Billing",
        "key": key,
        "description": "Manages billing.",
        "is_creator_eligible": False,
        "permissions": permissions if permissions is not None else [permission("perm_1")],
        "created_at": T0,
        "updated_at": T0,
    }
    obj.update(fields)
    return obj


def invitation(id: str, organization_id: str = "org_1", **fields: Any) -> dict:
    """An OrganizationInvitationWithPublicOrganizationData, as GET /organization_invitations lists it."""
    obj = {
        "object": "organization_invitation",
        "id": id,
        "email_address": f"{id}@example.com",
        "role": "org:member",
        "role_name": "Member",
        "organization_id": organization_id,
        "inviter_id": "user_1",
        "public_inviter_data": {"user_id": "user_1", "identifier": "user_1@example.com"},
        "status": "pending",
        "public_metadata": {"team": "red"},
        "private_metadata": {"source": "crm"},
        "url": None,
        "expires_at": T0 + 30 * 86_400_000,
        "created_at": T0,
        "updated_at": T0,
        "public_organization_data": {"id": organization_id, "name": f"Org {organization_id}", "slug": "o", "image_url": None, "has_image": False},
    }
    obj.update(fields)
    return obj


def domain(id: str, organization_id: str = "org_1", *, status: str | None = "verified", **fields: Any) -> dict:
    """An OrganizationDomain (GET /organization_domains); ``status`` None: never verified."""
    verification = None if status is None else {"status": status, "strategy": "email_code", "attempts": 1, "expire_at": None}
    obj = {
        "object": "organization_domain",
        "id": id,
        "organization_id": organization_id,
        "name": f"{id}.example.com",
        "enrollment_mode": "automatic_invitation",
        "affiliation_email_address": None,
        "affiliation_verification": verification,
        "verification": verification,
        "total_pending_invitations": 0,
        "total_pending_suggestions": 0,
        "public_organization_data": {"id": organization_id, "name": f"Org {organization_id}", "slug": "o", "image_url": None, "has_image": False},
        "created_at": T0,
        "updated_at": T0,
    }
    obj.update(fields)
    return obj


def example(entity: str, id: str | None = None) -> dict:
    """One object of any described entity, Clerk's shape (the vendored fixtures where they exist)."""
    vendored = {model.USERS: "user", model.ORGANIZATIONS: "organization", model.MEMBERSHIPS: "organization_membership"}
    if entity in vendored:
        obj = load(vendored[entity])
        if id is not None:
            obj["id"] = id
        return obj
    build = {
        "organization_permissions": permission,
        "organization_roles": role,
        "organization_invitations": invitation,
        "organization_domains": domain,
    }[entity]
    return build(id or f"{entity}_1")


# ------------------------------------------------------------------------ frames


def frame(entity: str, objects: list[dict], **kwargs: Any) -> pd.DataFrame:
    """Clerk objects -> a contract frame, through the normalizer."""
    return normalize(entity, objects, **kwargs)


def clerk_snapshot(
    users: list[dict] = (),
    organizations: list[dict] = (),
    memberships: list[dict] = (),
    scope: model.SyncScope | None = None,
    **others: list[dict],
) -> model.Snapshot:
    """Clerk's frames; entities beyond the first three by table name (``organization_roles=[…]``)."""
    lists = {model.USERS: users, model.ORGANIZATIONS: organizations, model.MEMBERSHIPS: memberships, **others}
    return model.Snapshot(
        scope=scope or model.SyncScope(), **{entity: frame(entity, list(objects)) for entity, objects in lists.items()}
    )


def mirror_frame(entity: str, objects: list[dict], deleted: dict[str, int] | None = None) -> pd.DataFrame:
    """The mirror's frame for rows as Clerk had them: no raw, ``deleted_at`` per id (else NA)."""
    rows = frame(entity, objects).drop(columns=["raw"])
    deleted = deleted or {}
    rows["deleted_at"] = pd.array([deleted.get(i) for i in rows["id"]], dtype="Int64")
    return model.conform(rows, entity, mirror=True)


def mirror_snapshot(
    users: list[dict] = (),
    organizations: list[dict] = (),
    memberships: list[dict] = (),
    deleted: dict[str, int] | None = None,
    scope: model.SyncScope | None = None,
    **others: list[dict],
) -> model.Snapshot:
    """``deleted`` maps ids (of any entity) to their ``deleted_at``; the other rows are live.
    Entities beyond the first three by table name, as for :func:`clerk_snapshot`."""
    lists = {model.USERS: users, model.ORGANIZATIONS: organizations, model.MEMBERSHIPS: memberships, **others}
    return model.Snapshot(
        scope=scope or model.SyncScope(),
        **{entity: mirror_frame(entity, list(lists.get(entity, ())), deleted) for entity in model.ENTITIES},
    )
