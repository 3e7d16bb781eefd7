"""The emulator's data: generated objects, an overlay of changes, queries, mutations and events.

Every user, organization and membership has a *position*: generated objects hold
positions ``0..n-1`` (their index), objects created later are appended. Position order
is creation order, which for users and organizations is also ``created_at`` order, so
the default listings page by arithmetic on positions (a binary search over the few
deleted positions), with no sorting and no per-request work proportional to the data.

Invitations and domains have positions too, grouped by organization (see
:mod:`.owned_records`); roles and permissions, a handful, are plain records.

Objects are generated on demand (see :mod:`.generate`); an object created or changed
through the mutation API is kept as a dict in an overlay that takes precedence. Deleted
positions are remembered so pages skip them. Every mutation appends the webhook event
Clerk would send to :attr:`ClerkStore.events` (and calls any subscribed listener).

Ordering users by another timestamp (``-updated_at``: the way to read recent changes, as
Clerk has no ``updated_at`` filter) sorts the generated users once, vectorised (about a
second for a million), then merges the overlay in per request. Filters other than
``user_id``, ``organization_id`` and the ``created_at`` bounds, and orders by names or
addresses, scan the candidates: about 20 µs a user, so some 20 s for a million, during
which the emulator answers nothing else. Full-list orders are cached until the next change.

The store is shared between the server's event loop and the test thread: every public
method holds one lock.

:class:`ClerkStore` is one object in parts, one file each: ``store_users`` (reading,
``GET /users`` and changing users), ``store_organizations``, ``store_memberships``,
``store_access`` (roles and permissions: few, kept as records), ``store_invitations`` and
``store_domains`` (generated on demand, organization by organization, through
``owned_records``), and ``store_events`` (the clock, minted ids and the events every change emits), over the
state declared in ``store_state`` and set up here; ``store_common`` holds their errors,
query types and helpers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from sync_pipeline.emulator.creation_order import CreationOrder
from sync_pipeline.emulator.generate import GENERATED_UNTIL_MS, DataGenerator
from sync_pipeline.emulator.ids import IdCodec
from sync_pipeline.emulator.objects import MembershipRecord
from sync_pipeline.emulator.positions import Positions
from sync_pipeline.emulator.store_common import (
    MEMBERSHIP_ORDER_FIELDS,
    ChangeRefused,
    ORGANIZATION_ORDER_FIELDS,
    USER_ORDER_FIELDS,
    EventListener,
    InvalidParameter,
    ObjectNotFound,
    OrganizationQuery,
    UserQuery,
    parse_order_by,
)
from sync_pipeline.emulator.owned_records import OwnedRecords
from sync_pipeline.emulator.store_access import AccessStore
from sync_pipeline.emulator.store_domains import DomainStore
from sync_pipeline.emulator.store_events import StoreEvents
from sync_pipeline.emulator.store_invitations import InvitationStore
from sync_pipeline.emulator.store_memberships import MembershipStore
from sync_pipeline.emulator.store_organizations import OrganizationStore
from sync_pipeline.emulator.store_users import UserStore

__all__ = [
    "MEMBERSHIP_ORDER_FIELDS", "ORGANIZATION_ORDER_FIELDS", "USER_ORDER_FIELDS",
    "ChangeRefused", "ClerkStore", "EventListener", "InvalidParameter", "ObjectNotFound", "OrganizationQuery", "UserQuery",
    "parse_order_by",
]


class ClerkStore(
    UserStore, OrganizationStore, MembershipStore, AccessStore, InvitationStore, DomainStore, StoreEvents
):
    """A Clerk instance's users, organizations, memberships, roles, permissions, invitations and
    domains, generated and then changed.

    ``ClerkStore(users=1_000_000, organizations=100_000)`` is ready in about a second. Read
    with :meth:`get_user`, :meth:`iter_users` and friends; change with the ``create_*``,
    ``update_*`` and ``delete_*`` methods and the e-mail helpers; every change appends
    its webhook event to :attr:`events`.

    With ``cascade_membership_events`` a user or organization deletion also emits one
    ``organizationMembership.deleted`` per membership it removes; Clerk does not document
    whether it does, so by default it does not, and consumers must cascade themselves.

    ``users_in_one_millisecond``: that many generated users, a run in the middle of
    creation order, share one ``created_at`` millisecond, as a bulk import makes. Order by
    ``created_at`` breaks such ties by id (see :mod:`.creation_order`), and a
    ``starting_after`` cursor walks through the crowd without loss or repetition.
    """

    def __init__(
        self,
        users: int = 5_000,
        organizations: int = 500,
        seed: int = 42,
        *,
        cascade_membership_events: bool = False,
        users_in_one_millisecond: int = 0,
    ) -> None:
        self._generated = DataGenerator(seed, users, organizations, users_in_one_millisecond=users_in_one_millisecond)
        self.seed = seed
        self.instance_id = self._generated.instance_id
        self.cascade_membership_events = cascade_membership_events
        self.events: list[dict[str, Any]] = []
        self._listeners: list[EventListener] = []
        self._lock = threading.RLock()
        self._clock_ms = GENERATED_UNTIL_MS
        # Ids minted by the mutation API: a serial number, and the families apart by tag.
        self._minted = 0
        self._new_ids = {
            prefix: IdCodec(prefix, seed, family="created")
            for prefix in ("user_", "org_", "orgmem_", "idn_", "role_", "perm_", "orginv_", "orgdmn_")
        }

        layout = self._generated.memberships
        self._users = Positions(users)
        crowd = self._generated.user_crowd
        crowd_index = np.arange(crowd.start, crowd.stop, dtype=np.int64)
        crowd_ids = self._generated.user_ids.encode_many(
            crowd_index, np.full(len(crowd), self._generated.user_created_at(crowd.start) if len(crowd) else 0)
        ) if len(crowd) else []
        self._user_order = CreationOrder(crowd, [str(i) for i in crowd_ids])
        self._user_overlay: dict[int, dict[str, Any]] = {}  # changed or created users
        self._created_user_positions: dict[str, int] = {}
        self._created_user_times: list[int] = []  # created_at of created users, by position - users
        self._deleted_users: dict[str, dict[str, Any]] = {}  # last state, for the test helpers

        self._organizations = Positions(organizations)
        self._organization_overlay: dict[int, dict[str, Any]] = {}  # without members_count
        self._created_organization_positions: dict[str, int] = {}
        self._slug_positions: dict[str, int] = {}  # slugs of created or renamed organizations
        self._members_count: list[int] = [int(n) for n in (layout.org_offsets[1:] - layout.org_offsets[:-1])]

        self._memberships = Positions(layout.count)
        self._membership_overlay: dict[int, MembershipRecord] = {}
        self._created_membership_positions: dict[str, int] = {}
        self._memberships_added_to_organization: dict[int, list[int]] = {}
        self._memberships_added_to_user: dict[int, list[int]] = {}
        # Unordered, memberships come back as a heap scan finds them: the generated ones never
        # written since, in position order, then every written (created or updated) one in the
        # order of its last write. So an updated row moves to the end (see list_memberships).
        self._membership_heap = Positions(layout.count)  # generated positions neither written nor deleted
        self._membership_writes: dict[int, int] = {}  # position -> serial of its last write
        self._membership_write_serial = 0
        self._generated_membership_order: np.ndarray | None = None  # by (created_at, id); never stale

        self._user_order_cache: dict[str, Sequence[int]] = {}  # field -> all live users, ascending
        # field -> generated users ascending by that timestamp: (timestamps, positions); never stale
        self._generated_user_time_orders: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._organization_order_cache: dict[str, list[int]] = {}

        self._load_generated_access()  # roles and permissions (see store_access)
        generated = self._generated
        self._invitations = OwnedRecords(
            generated.invitations, generated.invitation_ids, generated.invitation_records, organizations
        )
        self._domains = OwnedRecords(generated.domains, generated.domain_ids, generated.domain_records, organizations)

    # == counts ==========================================================================

    @property
    def user_count(self) -> int:
        with self._lock:
            return self._users.live_count()

    @property
    def organization_count(self) -> int:
        with self._lock:
            return self._organizations.live_count()

    @property
    def membership_count(self) -> int:
        with self._lock:
            return self._memberships.live_count()
