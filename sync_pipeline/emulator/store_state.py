"""The state every part of the store works on, declared once (``ClerkStore.__init__`` fills it).

The store is one object split by entity (``store_users``, ``store_organizations``,
``store_memberships``, ``store_access`` (roles and permissions), ``store_invitations``,
``store_domains``, ``store_events``); each part is a class over this state, and
:class:`~sync_pipeline.emulator.store.ClerkStore` joins them. A part calls another's
methods through ``self`` (deleting a user removes its memberships), so only the joined
class is ever instantiated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sync_pipeline.emulator.creation_order import CreationOrder
from sync_pipeline.emulator.generate import DataGenerator
from sync_pipeline.emulator.ids import IdCodec
from sync_pipeline.emulator.objects import (
    DomainRecord,
    InvitationRecord,
    MembershipRecord,
    PermissionRecord,
    RoleRecord,
)
from sync_pipeline.emulator.owned_records import OwnedRecords
from sync_pipeline.emulator.positions import Positions


class StoreState:
    """Declarations only: what each attribute holds is said where ``ClerkStore.__init__`` sets it."""

    _generated: DataGenerator
    seed: int
    instance_id: str
    cascade_membership_events: bool
    events: list[dict[str, Any]]
    _listeners: list[Callable[[dict[str, Any]], None]]
    _lock: threading.RLock
    _clock_ms: int
    _minted: int
    _new_ids: dict[str, IdCodec]

    _users: Positions
    _user_order: CreationOrder
    _user_overlay: dict[int, dict[str, Any]]
    _created_user_positions: dict[str, int]
    _created_user_times: list[int]
    _deleted_users: dict[str, dict[str, Any]]
    _user_order_cache: dict[str, Sequence[int]]
    _generated_user_time_orders: dict[str, tuple[np.ndarray, np.ndarray]]

    _organizations: Positions
    _organization_overlay: dict[int, dict[str, Any]]
    _created_organization_positions: dict[str, int]
    _slug_positions: dict[str, int]
    _members_count: list[int]
    _organization_order_cache: dict[str, list[int]]

    _memberships: Positions
    _membership_overlay: dict[int, MembershipRecord]
    _created_membership_positions: dict[str, int]
    _memberships_added_to_organization: dict[int, list[int]]
    _memberships_added_to_user: dict[int, list[int]]
    _membership_heap: Positions
    _membership_writes: dict[int, int]
    _membership_write_serial: int
    _generated_membership_order: np.ndarray | None

    _permissions: dict[str, PermissionRecord]
    _roles: dict[str, RoleRecord]
    _role_key_aliases: dict[str, str]
    _role_fields_cache: dict[str, str]

    _invitations: OwnedRecords[InvitationRecord]
    _domains: OwnedRecords[DomainRecord]
