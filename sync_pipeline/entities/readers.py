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
