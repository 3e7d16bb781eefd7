"""Values that take a rule to find in a Clerk object (the rest are read by key path)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def primary_email(user: Mapping[str, Any]) -> Any:
    """The user's primary e-mail address, as Clerk spells it.

    1. the address whose ``id`` equals ``primary_email_address_id``;
    2. where that id is null or not found: the first address whose
       ``verification.status`` is ``"verified"`` (``verification`` may be null);
    3. else the first address; 4. else null.
    """
    addresses = [a for a in (user.get("email_addresses") or ()) if isinstance(a, dict)]
    if not addresses:
        return None
    primary_id = user.get("primary_email_address_id")
    if primary_id is not None:
        for address in addresses:
            if address.get("id") == primary_id:
                return address.get("email_address")
    for address in addresses:
        verification = address.get("verification")
        if isinstance(verification, dict) and verification.get("status") == "verified":
            return address.get("email_address")
    return addresses[0].get("email_address")


def permission_keys(role: Mapping[str, Any]) -> Any:
    """A role's permissions as their keys, in Clerk's order: what a membership of it holds.

    Clerk embeds whole Permission objects; a bare key string is taken as it is, and
    anything else (no list, an entry without a key) is left out.
    """
    permissions = role.get("permissions")
    if not isinstance(permissions, list):
        return None
    keys = []
    for permission in permissions:
        key = permission.get("key") if isinstance(permission, dict) else permission
        if isinstance(key, str):
            keys.append(key)
    return keys


def verification_status(domain: Mapping[str, Any]) -> Any:
    """An organization domain's affiliation verification status (``verified``, ``unverified``, …).

    The spec names it ``affiliation_verification`` and keeps ``verification`` as its
    deprecated alias; either may be null (never verified), and the first that is an
    object wins.
    """
    for key in ("affiliation_verification", "verification"):
        verification = domain.get(key)
        if isinstance(verification, dict):
            return verification.get("status")
    return None
