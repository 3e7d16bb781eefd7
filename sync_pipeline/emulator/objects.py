"""How the emulator's Clerk objects are put together, whether generated or mutated.

Generated objects are rendered straight to JSON text by :mod:`.generate` (fast); objects
created or changed through the store live as dicts. Everything both kinds need (the
facts the store filters and sorts on, a user's ``public_user_data``, the membership
envelope around an organization and a user, deleted objects, webhook envelopes) is
defined once here, and the tests hold the generator's text to these definitions.

All JSON is compact and keeps Unicode as is (``ensure_ascii=False``), like Clerk's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

EVENT_CLIENT_IP = "192.0.2.10"
EVENT_USER_AGENT = "clerk-emulator"


# One encoder for all: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    return _ENCODER.encode(value)


def unknown_role_name(role: str) -> str:
    """What a membership shows as ``role_name`` for a role key no role of the instance has."""
    return role.removeprefix("org:").replace("_", " ").title()


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


def role_fields_json(key: str, name: str, permission_keys: list[str]) -> str:
    """``"role":…,"role_name":…,"permissions":[…]``: what a membership shows of its role."""
    return f'"role":{to_json(key)},"role_name":{to_json(name)},"permissions":{to_json(permission_keys)}'


def membership_json(
    record: MembershipRecord, role_fields: str, organization_json: str, public_user_data_json: str
) -> str:
    """The membership as Clerk shows it: its role's fields (see :func:`role_fields_json`), the
    whole organization and the member's public data embedded."""
    return (
        f'{{"object":"organization_membership","id":"{record.id}",{role_fields},'
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


def deleted_object(kind: str, object_id: str) -> dict[str, Any]:
    """The DeletedObject of a role, permission or domain (``role.deleted``, ``DELETE /…``)."""
    return {"object": kind, "id": object_id, "deleted": True}


# == roles and permissions =================================================================


@dataclass
class PermissionRecord:
    """A permission of the instance (``type`` ``system`` for Clerk's ``org:sys_…`` ones, else ``user``)."""

    id: str
    key: str
    name: str
    description: str
    type: str
    created_at: int
    updated_at: int

    def shown(self) -> dict[str, Any]:
        return {
            "object": "permission", "id": self.id, "name": self.name, "key": self.key,
            "description": self.description, "type": self.type,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


@dataclass
class RoleRecord:
    """A role of the instance; its permissions by id, in the order they were granted."""

    id: str
    key: str
    name: str
    description: str | None
    is_creator_eligible: bool
    permission_ids: list[str]
    created_at: int
    updated_at: int

    def shown(self, permissions: dict[str, PermissionRecord]) -> dict[str, Any]:
        return {
            "object": "role", "id": self.id, "name": self.name, "key": self.key,
            "description": self.description, "is_creator_eligible": self.is_creator_eligible,
            "permissions": [permissions[p].shown() for p in self.permission_ids],
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


# == invitations and domains ===============================================================


def public_organization_data(organization: dict[str, Any]) -> dict[str, Any]:
    """What invitations and domains embed of their organization."""
    return {
        "id": organization.get("id"),
        "name": organization.get("name"),
        "slug": organization.get("slug"),
        "image_url": organization.get("image_url"),
        "has_image": organization.get("has_image"),
    }


def public_inviter_data(public_user_data: dict[str, Any]) -> dict[str, Any]:
    """An inviter's public data: a member's ``public_user_data`` without ``username`` (the spec's schema)."""
    return {key: value for key, value in public_user_data.items() if key != "username"}


@dataclass
class InvitationRecord:
    """An organization invitation before it is rendered with its organization, inviter and role."""

    id: str
    organization_position: int
    inviter_position: int | None  # a user position; None: sent from the dashboard
    email_address: str
    role: str  # a role key
    status: str  # pending, accepted, revoked, expired
    public_metadata: dict[str, Any]
    private_metadata: dict[str, Any]
    url: str | None
    expires_at: int | None
    created_at: int
    updated_at: int
    accepted_by: str | None = None  # the user id that accepted it (only shown in the event)


def invitation_shown(
    record: InvitationRecord,
    *,
    role_name: str,
    organization: dict[str, Any],
    inviter: dict[str, Any] | None,
    with_organization: bool,
) -> dict[str, Any]:
    """The OrganizationInvitation (``with_organization``: …WithPublicOrganizationData, as the
    instance-wide list and the events show it)."""
    shown = {
        "object": "organization_invitation",
        "id": record.id,
        "email_address": record.email_address,
        "role": record.role,
        "role_name": role_name,
        "organization_id": organization["id"],
        "inviter_id": None if inviter is None else inviter["user_id"],
        "public_inviter_data": None if inviter is None else public_inviter_data(inviter),
        "status": record.status,
        "public_metadata": record.public_metadata,
        "private_metadata": record.private_metadata,
        "url": record.url,
        "expires_at": record.expires_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if with_organization:
        shown["public_organization_data"] = public_organization_data(organization)
    return shown


DOMAIN_ENROLLMENT_MODES = ("manual_invitation", "automatic_invitation", "automatic_suggestion", "enterprise_sso")


@dataclass
class DomainRecord:
    """An organization domain before it is rendered with its organization.

    ``verification`` is the affiliation verification (``verification`` is its deprecated
    alias in the spec, both shown); ``ownership_verification`` the DNS proof. Each a dict
    of Clerk's OrganizationDomainVerification (status, strategy, attempts, expire_at,
    verified_at) or None.
    """

    id: str
    organization_position: int
    name: str
    enrollment_mode: str
    affiliation_email_address: str | None
    verification: dict[str, Any] | None
    ownership_verification: dict[str, Any] | None
    total_pending_invitations: int
    total_pending_suggestions: int
    created_at: int
    updated_at: int

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.get("status") == "verified"


def domain_shown(record: DomainRecord, organization: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "organization_domain",
        "id": record.id,
        "organization_id": organization["id"],
        "name": record.name,
        "enrollment_mode": record.enrollment_mode,
        "affiliation_email_address": record.affiliation_email_address,
        "affiliation_verification": record.verification,
        "ownership_verification": record.ownership_verification,
        "verification": record.verification,
        "total_pending_invitations": record.total_pending_invitations,
        "total_pending_suggestions": record.total_pending_suggestions,
        "public_organization_data": public_organization_data(organization),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
