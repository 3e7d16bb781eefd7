"""What every part of the emulator's store shares: its errors, query types, orders and helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np


USER_ORDER_FIELDS = (
    "created_at", "updated_at", "email_address", "first_name", "last_name", "username",
    "last_active_at", "last_sign_in_at",
)
ORGANIZATION_ORDER_FIELDS = ("created_at", "name", "members_count")
# What the membership lists sort by (the spec: "phone_number, email_address, created_at, first_name,
# last_name or username"); all but created_at are the member's.
MEMBERSHIP_ORDER_FIELDS = ("created_at", "phone_number", "email_address", "first_name", "last_name", "username")
# UserFacts attribute each user order field sorts on.
USER_SORT_ATTRIBUTE = {field: field for field in USER_ORDER_FIELDS} | {"email_address": "primary_email_address"}
SCAN_BATCH = 2_000  # objects generated per batch while scanning
TIME_BATCH = 100_000  # users per batch while computing a timestamp of every generated user
NULL_LAST = np.iinfo(np.int64).max  # sorts a null timestamp after every real one
VERIFICATION_EXPIRY_MS = 600_000

EventListener = Callable[[dict[str, Any]], None]
Changed = TypeVar("Changed")  # how the overlay keeps a changed object
Shown = TypeVar("Shown")  # what a reader wants of it


class ObjectNotFound(LookupError):
    """No live object with that id (or slug)."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id!r} not found")
        self.kind = kind
        self.object_id = object_id


class InvalidParameter(ValueError):
    """A query parameter Clerk would reject with 422."""

    def __init__(self, param_name: str, long_message: str) -> None:
        super().__init__(long_message)
        self.param_name = param_name
        self.long_message = long_message


class ChangeRefused(ValueError):
    """A change Clerk refuses with a status of its own: 403 (a system permission), 409 (already so)."""

    def __init__(self, status: int, code: str, long_message: str) -> None:
        super().__init__(long_message)
        self.status = status
        self.code = code
        self.long_message = long_message


def matches_text(text: str, object_id: str, *values: str | None) -> bool:
    """The ``query`` of the role, permission and invitation lists: the exact id, or part of a value (any case)."""
    needle = text.lower()
    return text == object_id or any(value is not None and needle in value.lower() for value in values)


def ordered_page(
    items: Sequence[Shown], order_by: str, allowed: Sequence[str], value: Callable[[Shown, str], Any],
    *, limit: int, offset: int,
) -> tuple[list[Shown], int]:
    """``items`` sorted by ``order_by`` (one of ``allowed``, ``+``/``-``), ties by created_at then id; a page and the total."""
    field, descending = parse_order_by(order_by, allowed)
    ordered = sorted(
        items, key=lambda item: (sort_key(value(item, field)), value(item, "created_at"), value(item, "id"))
    )
    if descending:
        ordered.reverse()
    return ordered[offset : offset + limit], len(ordered)


@dataclass(frozen=True)
class UserQuery:
    """The filters and order of ``GET /users`` and ``GET /users/count``."""

    user_ids: tuple[str, ...] = ()
    email_addresses: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    organization_ids: tuple[str, ...] = ()
    text: str | None = None  # the ``query`` parameter: partial match on ids, names, addresses
    created_at_after: int | None = None
    created_at_before: int | None = None
    last_active_at_after: int | None = None
    last_active_at_before: int | None = None
    order_by: str = "-created_at"
    starting_after: str | None = None  # a user id: continue after it (created_at order only)
    created_at_bounds_inclusive: bool = False  # created_at_after/before: >= and <= rather than > and <


@dataclass(frozen=True)
class OrganizationQuery:
    """The filters and order of ``GET /organizations``."""

    text: str | None = None  # the ``query`` parameter: partial match on id, name, slug
    order_by: str = "-created_at"


def parse_order_by(order_by: str, allowed: Sequence[str]) -> tuple[str, bool]:
    """``"-created_at"`` -> ``("created_at", True)``; 422 for fields Clerk does not sort on."""
    descending = order_by.startswith("-")
    field = order_by[1:] if order_by[:1] in ("+", "-") else order_by
    if field not in allowed:
        raise InvalidParameter(
            "order_by", f"order_by must be one of {', '.join(allowed)}, optionally prefixed with + or -"
        )
    return field, descending


def sort_key(value: Any) -> tuple[bool, Any]:
    """Ascending with nulls last; reversed, that is descending with nulls first (as Postgres)."""
    return (value is None, value if value is not None else 0)


def overlaid(
    positions: Sequence[int],
    overlay: dict[int, Changed],
    generate: Callable[[list[int]], list[Shown]],
    from_overlay: Callable[[int, Changed], Shown],
) -> list[Shown]:
    """The objects at ``positions``: changed ones from the overlay, the others generated in one batch."""
    generated = iter(generate([p for p in positions if p not in overlay]))
    return [from_overlay(p, overlay[p]) if p in overlay else next(generated) for p in positions]
