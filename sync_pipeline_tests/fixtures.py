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


# ------------------------------------------------------------------------ frames


def frame(entity: str, objects: list[dict], **kwargs: Any) -> pd.DataFrame:
    """Clerk objects -> a contract frame, through the normalizer."""
    return normalize(entity, objects, **kwargs)


def clerk_snapshot(
    users: list[dict] = (),
    organizations: list[dict] = (),
    memberships: list[dict] = (),
    scope: model.SyncScope | None = None,
) -> model.Snapshot:
    return model.Snapshot(
        users=frame(model.USERS, list(users)),
        organizations=frame(model.ORGANIZATIONS, list(organizations)),
        organization_memberships=frame(model.MEMBERSHIPS, list(memberships)),
        scope=scope or model.SyncScope(),
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
) -> model.Snapshot:
    """``deleted`` maps ids (of any entity) to their ``deleted_at``; the other rows are live."""
    return model.Snapshot(
        scope=scope or model.SyncScope(),
        **{
            entity: mirror_frame(entity, list(objects), deleted)
            for entity, objects in zip(model.ENTITIES, (users, organizations, memberships))
        },
    )
