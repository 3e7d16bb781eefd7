"""How the emulator's Clerk objects are put together, whether generated or mutated.

Generated objects are rendered straight to JSON text by :mod:`.generate` (fast); objects
created or changed through the store live as dicts. Everything both kinds need (the
facts the store filters and sorts on, a user's ``public_user_data``, the membership
envelope around an organization and a user, deleted objects, webhook envelopes) is
defined once here, and the tests hold the generator's text to these definitions.

All JSON is compact and keeps Unicode as is (``ensure_ascii=False``), like Clerk's.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

ADMIN_PERMISSIONS = ("org:sys_profile:manage", "org:sys_memberships:read", "org:sys_memberships:manage")
# role -> (role_name, permissions). A role outside this table (a custom one given through
# the mutation API) gets a name derived from its key and no permissions.
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "org:admin": ("Admin", ADMIN_PERMISSIONS),
    "org:member": ("Member", ("org:sys_memberships:read",)),
    "org:billing_manager": ("Billing Manager", ("org:sys_memberships:read", "org:billing:manage")),
    "org:viewer": ("Viewer", ()),
    "admin": ("Admin", ADMIN_PERMISSIONS),  # instances created before custom roles existed
    "basic_member": ("Member", ("org:sys_memberships:read",)),
}

EVENT_CLIENT_IP = "192.0.2.10"
EVENT_USER_AGENT = "clerk-emulator"


# One encoder for all: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    return _ENCODER.encode(value)


def role_name_and_permissions(role: str) -> tuple[str, list[str]]:
    if role in ROLES:
        name, permissions = ROLES[role]
        return name, list(permissions)
    return role.removeprefix("org:").replace("_", " ").title(), []


class UserFacts(NamedTuple):
    """What ``GET /users`` filters and sorts on, for one user."""

    id: str
    email_addresses: tuple[str, ...]
    primary_email_address: str | None
    phone_numbers: tuple[str, ...]
    username: str | None
    first_name: str | None
    last_name: str | None
    external_id: str | None
    created_at: int
    updated_at: int
    last_active_at: int | None
    last_sign_in_at: int | None


class OrganizationFacts(NamedTuple):
    """What ``GET /organizations`` filters and sorts on, for one organization."""

    id: str
    name: str
    slug: str
    created_at: int


def _primary(items: list[dict[str, Any]], primary_id: str | None, key: str) -> str | None:
    return next((item.get(key) for item in items if item.get("id") == primary_id), None)


def user_facts(user: dict[str, Any]) -> UserFacts:
    # .get throughout, lists read through _objects: a user planted verbatim
    # (ClerkStore.plant_user) may lack documented fields or hold null in them, and must
    # still be listed.
    emails = _objects(user.get("email_addresses"))
    return UserFacts(
        id=user.get("id"),
        email_addresses=tuple(item.get("email_address") for item in emails),
        primary_email_address=_primary(emails, user.get("primary_email_address_id"), "email_address"),
        phone_numbers=tuple(item.get("phone_number") for item in _objects(user.get("phone_numbers"))),
        username=user.get("username"),
        first_name=user.get("first_name"),
        last_name=user.get("last_name"),
        external_id=user.get("external_id"),
        created_at=user.get("created_at"),
        updated_at=user.get("updated_at"),
        last_active_at=user.get("last_active_at"),
        last_sign_in_at=user.get("last_sign_in_at"),
    )


def _objects(items: Any) -> list[dict[str, Any]]:
    """The dicts of a list field (email_addresses, phone_numbers); nothing for null or odd values."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def organization_facts(organization: dict[str, Any]) -> OrganizationFacts:
    return OrganizationFacts(
        id=organization.get("id"),
        name=organization.get("name"),
        slug=organization.get("slug"),
        created_at=organization.get("created_at"),
    )


def user_identifier(user: dict[str, Any]) -> str:
    """What Clerk shows for a member: primary e-mail, else primary phone, else username."""
    return (
        _primary(_objects(user.get("email_addresses")), user.get("primary_email_address_id"), "email_address")
        or _primary(_objects(user.get("phone_numbers")), user.get("primary_phone_number_id"), "phone_number")
        or user.get("username")
        or ""
    )


def public_user_data(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": user.get("id"),
        "first_name": user.get("first_name"),
        "last_name": user.get("last_name"),
        "image_url": user.get("image_url"),
        "has_image": user.get("has_image"),
        "identifier": user_identifier(user),
        "username": user.get("username"),
    }


def organization_with_members_count(organization: dict[str, Any], members_count: int) -> dict[str, Any]:
    """The organization with ``members_count`` where Clerk puts it (right after ``has_image``)."""
    shaped: dict[str, Any] = {}
    for key, value in organization.items():
        shaped[key] = value
        if key == "has_image":
            shaped["members_count"] = members_count
    return shaped


@dataclass
class MembershipRecord:
    """A membership before it is rendered with its (current) organization and user."""

    id: str
    organization_position: int
    user_position: int
    role: str
    public_metadata: dict[str, Any] = field(default_factory=dict)
    private_metadata: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


@functools.lru_cache(maxsize=256)
def _role_json(role: str) -> str:
    """``"role":…,"role_name":…,"permissions":[…]`` for a role (few roles, many memberships)."""
    role_name, permissions = role_name_and_permissions(role)
    return f'"role":{to_json(role)},"role_name":{to_json(role_name)},"permissions":{to_json(permissions)}'


def membership_json(record: MembershipRecord, organization_json: str, public_user_data_json: str) -> str:
    """The membership as Clerk shows it: the whole organization and the member's public data embedded."""
    return (
        f'{{"object":"organization_membership","id":"{record.id}",{_role_json(record.role)},'
        f'"public_metadata":{to_json(record.public_metadata)},"private_metadata":{to_json(record.private_metadata)},'
        f'"organization":{organization_json},"public_user_data":{public_user_data_json},'
        f'"created_at":{record.created_at},"updated_at":{record.updated_at}}}'
    )


def deleted_user(user: dict[str, Any]) -> dict[str, Any]:
    return {"object": "user", "id": user["id"], "deleted": True, "external_id": user["external_id"]}


def deleted_organization(organization: dict[str, Any]) -> dict[str, Any]:
    return {"object": "organization", "id": organization["id"], "slug": organization["slug"], "deleted": True}


def event_envelope(event_type: str, data: dict[str, Any], timestamp_ms: int, instance_id: str) -> dict[str, Any]:
    """A webhook event as Svix would deliver it (keys in the fixtures' order)."""
    return {
        "data": data,
        "object": "event",
        "type": event_type,
        "timestamp": timestamp_ms,
        "event_attributes": {"http_request": {"client_ip": EVENT_CLIENT_IP, "user_agent": EVENT_USER_AGENT}},
        "instance_id": instance_id,
    }
