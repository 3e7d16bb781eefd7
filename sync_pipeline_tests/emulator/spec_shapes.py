"""The keys of Clerk's objects as the Backend API spec (bapi/2025-11-10.yml, ``components.schemas``) lists them.

Transcribed from the spec (clerk/openapi-specs): ``properties`` and ``required`` of each
schema. The tests hold the emulator's objects to them: every key is one the spec names
(the schemas say ``additionalProperties: false``) and every required one is there.
"""

from __future__ import annotations

import re
from typing import Any

PERMISSION_KEYS = {"object", "id", "name", "key", "description", "type", "created_at", "updated_at"}
PERMISSION_REQUIRED = PERMISSION_KEYS
ROLE_KEYS = {
    "object", "id", "name", "key", "description", "is_creator_eligible", "permissions", "created_at", "updated_at",
}
ROLE_REQUIRED = ROLE_KEYS
INVITATION_KEYS = {
    "object", "id", "email_address", "role", "role_name", "organization_id", "inviter_id", "public_inviter_data",
    "status", "public_metadata", "private_metadata", "url", "expires_at", "created_at", "updated_at",
}
INVITATION_REQUIRED = {
    "object", "id", "email_address", "role", "role_name", "public_metadata", "url", "expires_at", "created_at",
    "updated_at", "inviter_id", "public_inviter_data",
}
# OrganizationInvitationWithPublicOrganizationData: the instance-wide list.
INVITATION_WITH_ORGANIZATION_KEYS = INVITATION_KEYS | {"public_organization_data"}
PUBLIC_INVITER_DATA_KEYS = {"user_id", "first_name", "last_name", "image_url", "has_image", "identifier"}
PUBLIC_ORGANIZATION_DATA_KEYS = {"id", "name", "slug", "image_url", "has_image"}
DOMAIN_KEYS = {
    "object", "id", "organization_id", "name", "enrollment_mode", "affiliation_email_address",
    "affiliation_verification", "ownership_verification", "verification", "total_pending_invitations",
    "total_pending_suggestions", "public_organization_data", "created_at", "updated_at",
}
DOMAIN_REQUIRED = DOMAIN_KEYS - {"public_organization_data"}
DOMAIN_VERIFICATION_KEYS = {"status", "strategy", "attempts", "expire_at", "verified_at"}
DOMAIN_ENROLLMENT_MODES = {"manual_invitation", "automatic_invitation", "automatic_suggestion", "enterprise_sso"}
DELETED_OBJECT_KEYS = {"object", "id", "slug", "deleted", "external_id"}

CLERK_ID = r"[0-9A-Za-z]{27}"


def has_id(obj: dict[str, Any], prefix: str) -> bool:
    return re.fullmatch(f"{prefix}{CLERK_ID}", obj["id"]) is not None


def check_keys(obj: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    assert set(obj) <= allowed, f"keys the spec does not name: {set(obj) - allowed}"
    assert required <= set(obj), f"required keys missing: {required - set(obj)}"


def check_permission(permission: dict[str, Any]) -> None:
    check_keys(permission, PERMISSION_KEYS, PERMISSION_REQUIRED)
    assert permission["object"] == "permission" and has_id(permission, "perm_")
    assert permission["type"] in ("system", "user")
    assert permission["key"].startswith("org:sys_") == (permission["type"] == "system")
    assert permission["updated_at"] >= permission["created_at"] > 10**12


def check_role(role: dict[str, Any]) -> None:
    check_keys(role, ROLE_KEYS, ROLE_REQUIRED)
    assert role["object"] == "role" and has_id(role, "role_")
    assert isinstance(role["is_creator_eligible"], bool)
    for permission in role["permissions"]:
        check_permission(permission)
    assert role["updated_at"] >= role["created_at"] > 10**12


def check_invitation(invitation: dict[str, Any], *, with_organization: bool) -> None:
    allowed = INVITATION_WITH_ORGANIZATION_KEYS if with_organization else INVITATION_KEYS
    check_keys(invitation, allowed, INVITATION_REQUIRED)
    assert ("public_organization_data" in invitation) == with_organization
    assert invitation["object"] == "organization_invitation" and has_id(invitation, "orginv_")
    assert invitation["status"] in ("pending", "accepted", "revoked", "expired")
    assert invitation["organization_id"].startswith("org_")
    if invitation["inviter_id"] is None:
        assert invitation["public_inviter_data"] is None
    else:
        assert set(invitation["public_inviter_data"]) == PUBLIC_INVITER_DATA_KEYS
        assert invitation["public_inviter_data"]["user_id"] == invitation["inviter_id"]
    if with_organization:
        assert set(invitation["public_organization_data"]) == PUBLIC_ORGANIZATION_DATA_KEYS
        assert invitation["public_organization_data"]["id"] == invitation["organization_id"]
    assert invitation["expires_at"] > invitation["created_at"] and invitation["updated_at"] >= invitation["created_at"]


def check_domain(domain: dict[str, Any]) -> None:
    check_keys(domain, DOMAIN_KEYS, DOMAIN_REQUIRED)
    assert domain["object"] == "organization_domain" and has_id(domain, "orgdmn_")
    assert domain["enrollment_mode"] in DOMAIN_ENROLLMENT_MODES
    for verification in ("affiliation_verification", "ownership_verification", "verification"):
        if domain[verification] is not None:
            assert set(domain[verification]) == DOMAIN_VERIFICATION_KEYS
            assert domain[verification]["status"] in ("unverified", "verified", "failed", "expired")
    assert domain["verification"] == domain["affiliation_verification"]  # the deprecated alias
    assert set(domain["public_organization_data"]) == PUBLIC_ORGANIZATION_DATA_KEYS
    assert domain["public_organization_data"]["id"] == domain["organization_id"]
