"""The emulator's data: generated objects, an overlay of changes, queries, mutations and events.

Every user, organization and membership has a *position*: generated objects hold
positions ``0..n-1`` (their index), objects created later are appended. Position order
is creation order, which for users and organizations is also ``created_at`` order, so
the default listings page by arithmetic on positions (a binary search over the few
deleted positions), with no sorting and no per-request work proportional to the data.

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
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from sync_pipeline.emulator.creation_order import CreationOrder
from sync_pipeline.emulator.generate import (
    GENERATED_UNTIL_MS,
    USER_TIME_FIELDS,
    DataGenerator,
    GeneratedUser,
    UserProfile,
)
from sync_pipeline.emulator.ids import IdCodec
from sync_pipeline.emulator.objects import (
    MembershipRecord,
    OrganizationFacts,
    UserFacts,
    deleted_organization,
    deleted_user,
    event_envelope,
    membership_json,
    organization_facts,
    organization_with_members_count,
    public_user_data,
    to_json,
    user_facts,
)
from sync_pipeline.emulator.positions import Positions

USER_ORDER_FIELDS = (
    "created_at", "updated_at", "email_address", "first_name", "last_name", "username",
    "last_active_at", "last_sign_in_at",
)
ORGANIZATION_ORDER_FIELDS = ("created_at", "name", "members_count")
# What the membership lists sort by (the spec: "phone_number, email_address, created_at, first_name,
# last_name or username"); all but created_at are the member's.
MEMBERSHIP_ORDER_FIELDS = ("created_at", "phone_number", "email_address", "first_name", "last_name", "username")
# UserFacts attribute each user order field sorts on.
_USER_SORT_ATTRIBUTE = {field: field for field in USER_ORDER_FIELDS} | {"email_address": "primary_email_address"}
_SCAN_BATCH = 2_000  # objects generated per batch while scanning
_TIME_BATCH = 100_000  # users per batch while computing a timestamp of every generated user
_NULL_LAST = np.iinfo(np.int64).max  # sorts a null timestamp after every real one
_VERIFICATION_EXPIRY_MS = 600_000

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


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Ascending with nulls last; reversed, that is descending with nulls first (as Postgres)."""
    return (value is None, value if value is not None else 0)


class ClerkStore:
    """A Clerk instance's users, organizations and memberships, generated and then changed.

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
            for prefix in ("user_", "org_", "orgmem_", "idn_")
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

    # == events ==========================================================================

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event from now on (after it is appended)."""
        with self._lock:
            self._listeners.append(listener)

    def _emit(self, event_type: str, data: dict[str, Any], timestamp_ms: int) -> None:
        event = event_envelope(event_type, data, timestamp_ms, self.instance_id)
        self.events.append(event)
        for listener in self._listeners:
            listener(event)

    def _tick(self) -> int:
        """Now, in epoch ms, strictly later than any earlier tick (so updated_at always grows)."""
        self._clock_ms = max(int(time.time() * 1000), self._clock_ms + 1)
        return self._clock_ms

    def _mint_id(self, prefix: str, created_at_ms: int) -> str:
        self._minted += 1
        return self._new_ids[prefix].encode(self._minted, created_at_ms)

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

    # == users: reading ==================================================================

    def _user_position(self, user_id: str) -> int | None:
        """The position of a live user, or None."""
        position = self._created_user_positions.get(user_id)
        if position is None:
            position = self._generated.user_index(user_id)
        return position if position is not None and self._users.is_live(position) else None

    def _require_user(self, user_id: str) -> int:
        position = self._user_position(user_id)
        if position is None:
            raise ObjectNotFound("user", user_id)
        return position

    def _users_at(self, positions: Sequence[int]) -> list[GeneratedUser]:
        return _overlaid(
            positions,
            self._user_overlay,
            self._generated.users,
            lambda _, user: GeneratedUser(to_json(user), to_json(public_user_data(user)), user_facts(user)),
        )

    def _user_profiles_at(self, positions: Sequence[int]) -> list[UserProfile]:
        """Public data and facts of the users at ``positions``: cheaper than :meth:`_users_at`."""
        return _overlaid(
            positions,
            self._user_overlay,
            self._generated.user_profiles,
            lambda _, user: UserProfile(to_json(public_user_data(user)), user_facts(user)),
        )

    def _user_dict(self, position: int) -> dict[str, Any]:
        user = self._user_overlay.get(position)
        return copy.deepcopy(user) if user is not None else json.loads(self._users_at([position])[0].json)

    def _user_created_at(self, position: int) -> int:
        if position < self._generated.user_count:
            return self._generated.user_created_at(position)
        return self._created_user_times[position - self._generated.user_count]

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            position = self._user_position(user_id)
            return None if position is None else self._user_dict(position)

    def get_user_json(self, user_id: str) -> str | None:
        with self._lock:
            position = self._user_position(user_id)
            return None if position is None else self._users_at([position])[0].json

    def iter_users(self) -> Iterator[dict[str, Any]]:
        """Every live user, in creation order."""
        for chunk in self._users.chunks(_SCAN_BATCH):
            with self._lock:
                users = self._users_at([p for p in chunk if self._users.is_live(p)])
            yield from (json.loads(user.json) for user in users)

    # == users: queries (GET /users, GET /users/count) ===================================

    def list_users(self, query: UserQuery, *, limit: int, offset: int) -> list[str]:
        """One page of ``GET /users``, as JSON texts of the users."""
        with self._lock:
            field, descending = parse_order_by(query.order_by, USER_ORDER_FIELDS)
            start, stop = self._user_window(query, field, offset)
            if self._user_query_needs_scan(query) or field != "created_at":
                ordered = self._ordered_user_positions(query, field, start, stop)
                if descending:
                    ordered = ordered[::-1]
                page = [int(position) for position in ordered[offset : offset + limit]]
            else:
                page = self._user_order.page(self._users, offset, limit, descending=descending, start=start, stop=stop)
            return [user.json for user in self._users_at(page)]

    def count_users(self, query: UserQuery) -> int:
        """``GET /users/count``: the users the query's filters match."""
        with self._lock:
            start, stop = self._user_window(query, "created_at", 0)
            if self._user_query_needs_scan(query):
                return len(self._matching_users(query, start, stop))
            return self._user_order.live_count(self._users, start, stop)

    @staticmethod
    def _user_query_needs_scan(query: UserQuery) -> bool:
        return bool(
            query.user_ids or query.email_addresses or query.external_ids or query.organization_ids
            or query.text or query.last_active_at_after is not None or query.last_active_at_before is not None
        )

    def _user_window(self, query: UserQuery, order_field: str, offset: int) -> tuple[int, int]:
        """The range of ranks (see :mod:`.creation_order`) the created_at bounds and cursor leave open."""
        start, stop = 0, self._users.end
        ranks = range(self._users.end)

        def created_at(rank: int) -> int:
            return self._user_created_at(self._user_order.position(rank))

        inclusive = query.created_at_bounds_inclusive
        if query.created_at_after is not None:
            start = (bisect_left if inclusive else bisect_right)(ranks, query.created_at_after, key=created_at)
        if query.created_at_before is not None:
            stop = (bisect_right if inclusive else bisect_left)(ranks, query.created_at_before, key=created_at)
        if query.starting_after is not None:
            if order_field != "created_at":
                raise InvalidParameter("starting_after", "starting_after can only be used when ordering by created_at")
            if offset:
                raise InvalidParameter("starting_after", "starting_after cannot be combined with a non-zero offset")
            # A deleted user still marks a place in the order, so a cursor survives deletions.
            cursor = self._created_user_positions.get(query.starting_after)
            if cursor is None:
                cursor = self._generated.user_index(query.starting_after)
            if cursor is None:
                raise InvalidParameter("starting_after", "starting_after must be the id of a user")
            cursor = self._user_order.rank(cursor)
            if query.order_by.startswith("-"):
                stop = min(stop, cursor)
            else:
                start = max(start, cursor + 1)
        return start, stop

    def _matching_users(self, query: UserQuery, start: int, stop: int) -> list[tuple[int, UserFacts]]:
        """Live users with a rank in [start, stop) the filters match, in rank order, with their facts."""
        members = self._member_positions(query.organization_ids) if query.organization_ids else None
        rank = self._user_order.rank
        if query.user_ids:
            candidates = sorted(
                {p for user_id in query.user_ids if (p := self._user_position(user_id)) is not None}, key=rank
            )
        elif members is not None:
            candidates = sorted(members, key=rank)
        else:
            candidates = self._user_order.live(self._users, start, stop)
        candidates = [p for p in candidates if start <= rank(p) < stop]
        emails = {address.lower() for address in query.email_addresses}
        external_ids = set(query.external_ids)
        text = query.text.lower() if query.text else None

        def matches(position: int, facts: UserFacts) -> bool:
            if members is not None and position not in members:
                return False
            if emails and not any(address.lower() in emails for address in facts.email_addresses):
                return False
            if external_ids and facts.external_id not in external_ids:
                return False
            if text and not any(text in value.lower() for value in _user_search_texts(facts)):
                return False
            active = facts.last_active_at
            if query.last_active_at_after is not None and (active is None or active <= query.last_active_at_after):
                return False
            if query.last_active_at_before is not None and (active is None or active >= query.last_active_at_before):
                return False
            return True

        matched = []
        for batch_start in range(0, len(candidates), _SCAN_BATCH):
            batch = candidates[batch_start : batch_start + _SCAN_BATCH]
            for position, user in zip(batch, self._user_profiles_at(batch)):
                if matches(position, user.facts):
                    matched.append((position, user.facts))
        return matched

    def _ordered_user_positions(self, query: UserQuery, field: str, start: int, stop: int) -> Sequence[int]:
        """Matching positions with a rank in [start, stop), ascending by ``field`` (nulls last)."""
        attribute = _USER_SORT_ATTRIBUTE[field]
        if self._user_query_needs_scan(query):
            matched = self._matching_users(query, start, stop)
            if field != "created_at":
                matched.sort(key=lambda item: _sort_key(getattr(item[1], attribute)))
            return [position for position, _ in matched]
        if field == "created_at":
            return self._user_order.live(self._users, start, stop)
        if field not in self._user_order_cache:
            if field in USER_TIME_FIELDS:
                self._user_order_cache[field] = self._users_by_time(field)
            else:
                every = self._matching_users(UserQuery(), 0, self._users.end)
                every.sort(key=lambda item: _sort_key(getattr(item[1], attribute)))
                self._user_order_cache[field] = np.array([position for position, _ in every], dtype=np.int64)
        order = np.asarray(self._user_order_cache[field])
        ranks = self._user_order.ranks(order)
        return order[(ranks >= start) & (ranks < stop)]

    def _users_by_time(self, field: str) -> np.ndarray:
        """Live users ascending by a timestamp (nulls last), without generating any user.

        The generated users' order is computed once, vectorised; each call then drops the
        deleted and changed ones from it and merges the overlay's users in by their dicts.
        """
        if field not in self._generated_user_time_orders:
            count = self._generated.user_count
            batches = [
                self._generated.user_times(field, start, min(start + _TIME_BATCH, count))
                for start in range(0, count, _TIME_BATCH)
            ]
            times = np.concatenate([np.empty(0, dtype=np.int64), *batches])
            times = np.where(times < 0, _NULL_LAST, times)
            order = np.argsort(times, kind="stable")  # stable: ties stay in position order
            self._generated_user_time_orders[field] = (times[order], order)
        times, positions = self._generated_user_time_orders[field]
        stale = np.zeros(self._generated.user_count, dtype=bool)
        stale[[p for p in (*self._user_overlay, *self._users.deleted) if p < self._generated.user_count]] = True
        keep = ~stale[positions]
        times, positions = times[keep], positions[keep]
        changed = sorted(
            (_NULL_LAST if user[field] is None else user[field], position)
            for position, user in self._user_overlay.items()
            if self._users.is_live(position)
        )
        changed_times = np.array([time_ms for time_ms, _ in changed], dtype=np.int64)
        changed_positions = np.array([position for _, position in changed], dtype=np.int64)
        return np.insert(positions, np.searchsorted(times, changed_times, side="right"), changed_positions)

    # == users: changes ==================================================================

    def create_user(
        self,
        *,
        email_addresses: Sequence[str] = (),
        primary_email_address: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        external_id: str | None = None,
        phone_numbers: Sequence[str] = (),
        public_metadata: dict[str, Any] | None = None,
        private_metadata: dict[str, Any] | None = None,
        unsafe_metadata: dict[str, Any] | None = None,
        banned: bool = False,
        verified: bool = True,
    ) -> dict[str, Any]:
        """Create a user (``user.created``); the first address is primary unless another is named.

        No uniqueness is enforced on addresses, so tests can stage conflicts (two users
        with one address) that a mirror must survive.
        """
        with self._lock:
            now = self._tick()
            addresses = [self._new_email_address(address, now, verified=verified) for address in email_addresses]
            phones = [self._new_phone_number(number, now) for number in phone_numbers]
            primary = primary_email_address or (email_addresses[0] if email_addresses else None)
            user = {
                "id": self._mint_id("user_", now),
                "object": "user",
                "username": username,
                "first_name": first_name,
                "last_name": last_name,
                "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
                "has_image": False,
                "primary_email_address_id": next((a["id"] for a in addresses if a["email_address"] == primary), None),
                "primary_phone_number_id": phones[0]["id"] if phones else None,
                "primary_web3_wallet_id": None,
                "password_enabled": False,
                "two_factor_enabled": False,
                "totp_enabled": False,
                "backup_code_enabled": False,
                "email_addresses": addresses,
                "phone_numbers": phones,
                "web3_wallets": [],
                "passkeys": [],
                "external_accounts": [],
                "saml_accounts": [],
                "enterprise_accounts": [],
                "public_metadata": dict(public_metadata or {}),
                "private_metadata": dict(private_metadata or {}),
                "unsafe_metadata": dict(unsafe_metadata or {}),
                "external_id": external_id,
                "last_sign_in_at": None,
                "last_active_at": None,
                "banned": banned,
                "locked": False,
                "lockout_expires_in_seconds": None,
                "verification_attempts_remaining": 100,
                "created_at": now,
                "updated_at": now,
                "delete_self_enabled": True,
                "create_organization_enabled": True,
                "legal_accepted_at": None,
            }
            position = self._users.append()
            self._user_overlay[position] = user
            self._created_user_positions[user["id"]] = position
            self._created_user_times.append(now)
            self._user_order_cache.clear()
            self._emit("user.created", copy.deepcopy(user), now)
            return copy.deepcopy(user)

    def plant_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        """Add a user exactly as given, listed last: ``user.created``.

        Nothing is checked or filled in: unknown fields, null where Clerk documents a
        value, odd types and ids of any shape are served as they are, to test what a
        consumer does with data Clerk was never supposed to send. A string ``id`` must be
        new (the user can then be read, changed and deleted by it); a user whose id is
        not a string is only ever listed.
        """
        with self._lock:
            planted = copy.deepcopy(dict(user))
            user_id = planted.get("id")
            if isinstance(user_id, str) and (
                user_id in self._created_user_positions or self._user_position(user_id) is not None
            ):
                raise ValueError(f"user {user_id!r} exists already")
            now = self._tick()
            position = self._users.append()
            self._user_overlay[position] = planted
            if isinstance(user_id, str):
                self._created_user_positions[user_id] = position
            self._created_user_times.append(now)
            self._user_order_cache.clear()
            self._emit("user.created", copy.deepcopy(planted), now)
            return copy.deepcopy(planted)

    def set_user_fields(self, user_id: str, fields: Mapping[str, Any], *, touch: bool = True) -> dict[str, Any]:
        """Set top-level fields verbatim, unknown ones and ``None`` included: ``user.updated``.

        Unlike :meth:`update_user` nothing is refused (``email_addresses: None``, a string
        in ``banned``, a brand-new field...). ``touch`` bumps ``updated_at`` afterwards,
        as Clerk does; without it the fields given are all that change.
        """
        with self._lock:
            position = self._require_user(user_id)
            user = self._user_dict(position)
            now = self._tick()
            user.update(copy.deepcopy(dict(fields)))
            if touch:
                user["updated_at"] = now
            self._user_overlay[position] = user
            self._user_order_cache.clear()
            self._emit("user.updated", copy.deepcopy(user), now)
            return copy.deepcopy(user)

    def _new_email_address(self, address: str, now: int, *, verified: bool) -> dict[str, Any]:
        if verified:
            verification = {"object": "verification_admin", "status": "verified", "strategy": "admin"}
            verification |= {"attempts": None, "expire_at": None}
        else:
            verification = {"object": "verification_otp", "status": "unverified", "strategy": "email_code"}
            verification |= {"attempts": 0, "expire_at": now + _VERIFICATION_EXPIRY_MS}
        return {
            "id": self._mint_id("idn_", now),
            "object": "email_address",
            "email_address": address,
            "reserved": False,
            "verification": verification,
            "linked_to": [],
            "matches_sso_connection": False,
            "created_at": now,
            "updated_at": now,
        }

    def _new_phone_number(self, number: str, now: int) -> dict[str, Any]:
        return {
            "id": self._mint_id("idn_", now),
            "object": "phone_number",
            "phone_number": number,
            "reserved_for_second_factor": False,
            "default_second_factor": False,
            "reserved": False,
            "verification": None,
            "linked_to": [],
            "backup_codes": None,
            "created_at": now,
            "updated_at": now,
        }

    def _change_user(self, user_id: str, change: Callable[[dict[str, Any], int], None]) -> dict[str, Any]:
        """Apply ``change(user, now)`` to a copy, bump updated_at, keep it, emit ``user.updated``."""
        position = self._require_user(user_id)
        user = self._user_dict(position)
        now = self._tick()
        change(user, now)
        user["updated_at"] = now
        self._user_overlay[position] = user
        self._user_order_cache.clear()
        self._emit("user.updated", copy.deepcopy(user), now)
        return copy.deepcopy(user)

    _USER_FIXED_FIELDS = frozenset({"id", "object", "created_at", "updated_at", "email_addresses", "phone_numbers"})

    def update_user(self, user_id: str, **changes: Any) -> dict[str, Any]:
        """Set top-level fields (names, metadata, ``banned``, ``external_id``...): ``user.updated``.

        E-mail addresses change through :meth:`add_email_address` and its siblings.
        """
        fixed = self._USER_FIXED_FIELDS.intersection(changes)
        if fixed:
            raise ValueError(f"cannot set {sorted(fixed)} with update_user")
        with self._lock:

            def apply(user: dict[str, Any], now: int) -> None:
                unknown = set(changes) - set(user)
                if unknown:
                    raise ValueError(f"users have no field(s) {sorted(unknown)}")
                user.update(copy.deepcopy(changes))

            return self._change_user(user_id, apply)

    def add_email_address(
        self, user_id: str, address: str, *, verified: bool = True, primary: bool = False
    ) -> dict[str, Any]:
        """Give a user one more address (optionally making it primary): ``user.updated``."""
        with self._lock:

            def apply(user: dict[str, Any], now: int) -> None:
                email = self._new_email_address(address, now, verified=verified)
                user["email_addresses"].append(email)
                if primary:
                    user["primary_email_address_id"] = email["id"]

            return self._change_user(user_id, apply)

    def set_primary_email(self, user_id: str, address: str) -> dict[str, Any]:
        """Make ``address`` the user's primary address, adding it first if the user lacks it."""
        with self._lock:

            def apply(user: dict[str, Any], now: int) -> None:
                email = next((e for e in user["email_addresses"] if e["email_address"] == address), None)
                if email is None:
                    email = self._new_email_address(address, now, verified=True)
                    user["email_addresses"].append(email)
                user["primary_email_address_id"] = email["id"]

            return self._change_user(user_id, apply)

    def remove_email_address(self, user_id: str, address: str) -> dict[str, Any]:
        """Take an address off a user; removing the primary leaves ``primary_email_address_id`` null."""
        with self._lock:

            def apply(user: dict[str, Any], now: int) -> None:
                kept = [e for e in user["email_addresses"] if e["email_address"] != address]
                if len(kept) == len(user["email_addresses"]):
                    raise ValueError(f"user {user_id} has no address {address!r}")
                removed_ids = {e["id"] for e in user["email_addresses"]} - {e["id"] for e in kept}
                user["email_addresses"] = kept
                if user["primary_email_address_id"] in removed_ids:
                    user["primary_email_address_id"] = None

            return self._change_user(user_id, apply)

    def swap_primary_emails(self, first_user_id: str, second_user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Exchange two users' primary addresses (two ``user.updated`` events).

        Each loses its primary address and gains the other's as a new primary address
        (new ``idn_`` id), as if done by hand in the dashboard. Between the two events a
        mirror sees one address on both users.
        """
        with self._lock:
            first = self._primary_address(first_user_id)
            second = self._primary_address(second_user_id)
            self.remove_email_address(first_user_id, first)
            updated_first = self.set_primary_email(first_user_id, second)
            self.remove_email_address(second_user_id, second)
            updated_second = self.set_primary_email(second_user_id, first)
            return updated_first, updated_second

    def _primary_address(self, user_id: str) -> str:
        user = self._user_dict(self._require_user(user_id))
        address = user_facts(user).primary_email_address
        if address is None:
            raise ValueError(f"user {user_id} has no primary e-mail address")
        return address

    def create_user_reusing_email(self, deleted_user_id: str, **fields: Any) -> dict[str, Any]:
        """Create a user whose primary address is the one a since-deleted user had."""
        with self._lock:
            deleted = self._deleted_users.get(deleted_user_id)
            if deleted is None:
                raise ObjectNotFound("deleted user", deleted_user_id)
            address = user_facts(deleted).primary_email_address or next(iter(user_facts(deleted).email_addresses), None)
            if address is None:
                raise ValueError(f"deleted user {deleted_user_id} had no e-mail address")
            return self.create_user(email_addresses=[address], **fields)

    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Delete a user and its memberships: ``user.deleted`` (a DeletedObject)."""
        with self._lock:
            position = self._require_user(user_id)
            user = self._user_dict(position)
            now = self._tick()
            removed = [self._remove_membership(p) for p in self._live_memberships_of_user(position)]
            self._users.delete(position)
            self._user_overlay.pop(position, None)
            self._deleted_users[user_id] = user
            self._user_order_cache.clear()
            deleted = deleted_user(user)
            self._emit("user.deleted", copy.deepcopy(deleted), now)
            self._emit_cascade(removed, now)
            return deleted

    # == organizations: reading ==========================================================

    def _organization_position(self, id_or_slug: str) -> int | None:
        """The position of a live organization, by id or slug, or None."""
        position = self._created_organization_positions.get(id_or_slug)
        if position is None:
            position = self._generated.organization_index(id_or_slug)
        if position is None:
            position = self._slug_positions.get(id_or_slug)
            if position is None:
                candidate = self._generated.organization_index_for_slug(id_or_slug)
                # A generated slug counts only while that organization still carries it.
                if candidate is not None:
                    _, facts = self._organizations_at([candidate], include_members_count=False)[0]
                    position = candidate if facts.slug == id_or_slug else None
        return position if position is not None and self._organizations.is_live(position) else None

    def _require_organization(self, id_or_slug: str) -> int:
        position = self._organization_position(id_or_slug)
        if position is None:
            raise ObjectNotFound("organization", id_or_slug)
        return position

    def _organizations_at(
        self, positions: Sequence[int], *, include_members_count: bool
    ) -> list[tuple[str, OrganizationFacts]]:
        """JSON text and facts of the organizations at ``positions``."""

        def members_count(position: int) -> int | None:
            return self._members_count[position] if include_members_count else None

        def generate(missing: list[int]) -> list[tuple[str, OrganizationFacts]]:
            made = self._generated.organizations(missing)
            return [(organization.json(members_count(p)), organization.facts) for p, organization in zip(missing, made)]

        def from_overlay(position: int, organization: dict[str, Any]) -> tuple[str, OrganizationFacts]:
            count = members_count(position)
            shaped = organization if count is None else organization_with_members_count(organization, count)
            return to_json(shaped), organization_facts(organization)

        return _overlaid(positions, self._organization_overlay, generate, from_overlay)

    def get_organization(self, id_or_slug: str, *, include_members_count: bool = True) -> dict[str, Any] | None:
        with self._lock:
            text = self.get_organization_json(id_or_slug, include_members_count=include_members_count)
            return None if text is None else json.loads(text)

    def get_organization_json(self, id_or_slug: str, *, include_members_count: bool) -> str | None:
        with self._lock:
            position = self._organization_position(id_or_slug)
            if position is None:
                return None
            return self._organizations_at([position], include_members_count=include_members_count)[0][0]

    def iter_organizations(self, *, include_members_count: bool = True) -> Iterator[dict[str, Any]]:
        """Every live organization, in creation order."""
        for chunk in self._organizations.chunks(_SCAN_BATCH):
            with self._lock:
                live = [p for p in chunk if self._organizations.is_live(p)]
                texts = [text for text, _ in self._organizations_at(live, include_members_count=include_members_count)]
            yield from (json.loads(text) for text in texts)

    # == organizations: queries (GET /organizations) =====================================

    def list_organizations(
        self, query: OrganizationQuery, *, limit: int, offset: int, include_members_count: bool
    ) -> tuple[list[str], int]:
        """One page of ``GET /organizations`` (JSON texts) and the total count."""
        with self._lock:
            field, descending = parse_order_by(query.order_by, ORGANIZATION_ORDER_FIELDS)
            if query.text or field != "created_at":
                positions = self._ordered_organization_positions(query, field)
                if descending:
                    positions.reverse()
                total, page = len(positions), positions[offset : offset + limit]
            else:
                total = self._organizations.live_count()
                page = self._organizations.page(offset, limit, descending=descending)
            texts = [text for text, _ in self._organizations_at(page, include_members_count=include_members_count)]
            return texts, total

    def _ordered_organization_positions(self, query: OrganizationQuery, field: str) -> list[int]:
        if query.text:
            text = query.text.lower()
            matched = [
                (position, facts)
                for position, facts in self._organization_facts(self._organizations.live())
                if any(text in value.lower() for value in (facts.id, facts.name, facts.slug))
            ]
        elif field in self._organization_order_cache:
            return list(self._organization_order_cache[field])
        else:
            matched = list(self._organization_facts(self._organizations.live()))
        if field == "name":
            matched.sort(key=lambda item: item[1].name)
        elif field == "members_count":
            matched.sort(key=lambda item: self._members_count[item[0]])
        positions = [position for position, _ in matched]
        if not query.text:
            self._organization_order_cache[field] = list(positions)
        return positions

    def _organization_facts(self, positions: list[int]) -> Iterator[tuple[int, OrganizationFacts]]:
        for start in range(0, len(positions), _SCAN_BATCH):
            batch = positions[start : start + _SCAN_BATCH]
            for position, (_, facts) in zip(batch, self._organizations_at(batch, include_members_count=False)):
                yield position, facts

    # == organizations: changes ==========================================================

    def create_organization(
        self,
        name: str,
        *,
        slug: str | None = None,
        created_by: str | None = None,
        public_metadata: dict[str, Any] | None = None,
        private_metadata: dict[str, Any] | None = None,
        max_allowed_memberships: int = 0,
        admin_delete_enabled: bool = True,
    ) -> dict[str, Any]:
        """Create an organization (``organization.created``).

        With ``created_by`` (a user id) the creator also becomes its first admin, with its
        own ``organizationMembership.created``, as in Clerk.
        """
        with self._lock:
            creator_position = None if created_by is None else self._require_user(created_by)
            slug = slug or self._free_slug(name)
            if self._organization_position(slug) is not None:
                raise ValueError(f"slug {slug!r} is taken")
            now = self._tick()
            position = self._organizations.append()
            organization = {
                "object": "organization",
                "id": self._mint_id("org_", now),
                "name": name,
                "slug": slug,
                "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
                "has_image": False,
                "pending_invitations_count": 0,
                "max_allowed_memberships": max_allowed_memberships,
                "admin_delete_enabled": admin_delete_enabled,
                "public_metadata": dict(public_metadata or {}),
                "private_metadata": dict(private_metadata or {}),
                "created_by": created_by,
                "created_at": now,
                "updated_at": now,
            }
            self._organization_overlay[position] = organization
            self._created_organization_positions[organization["id"]] = position
            self._slug_positions[slug] = position
            self._members_count.append(0)
            self._organization_order_cache.clear()
            self._emit("organization.created", copy.deepcopy(organization), now)
            if creator_position is not None:
                self._add_membership(position, creator_position, "org:admin", {}, {})
            return json.loads(self._organizations_at([position], include_members_count=True)[0][0])

    def _free_slug(self, name: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "organization"
        slug, suffix = base, 1
        while self._organization_position(slug) is not None:
            suffix += 1
            slug = f"{base}-x{suffix}"  # not "-<digits>": that shape belongs to generated slugs
        return slug

    _ORGANIZATION_FIELDS = frozenset(
        {"name", "slug", "image_url", "has_image", "public_metadata", "private_metadata",
         "max_allowed_memberships", "admin_delete_enabled", "created_by", "pending_invitations_count"}
    )

    def update_organization(self, id_or_slug: str, **changes: Any) -> dict[str, Any]:
        """Set fields (name, slug, metadata...): ``organization.updated`` (with members_count)."""
        unknown = set(changes) - self._ORGANIZATION_FIELDS
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} with update_organization")
        with self._lock:
            position = self._require_organization(id_or_slug)
            organization = self._organization_dict(position)
            new_slug = changes.get("slug", organization["slug"])
            if new_slug != organization["slug"]:
                if self._organization_position(new_slug) is not None:
                    raise ValueError(f"slug {new_slug!r} is taken")
                self._slug_positions.pop(organization["slug"], None)
                self._slug_positions[new_slug] = position
            now = self._tick()
            organization.update(copy.deepcopy(changes))
            organization["updated_at"] = now
            self._organization_overlay[position] = organization
            self._organization_order_cache.clear()
            shaped = organization_with_members_count(organization, self._members_count[position])
            self._emit("organization.updated", copy.deepcopy(shaped), now)
            return shaped

    def set_organization_fields(
        self, id_or_slug: str, fields: Mapping[str, Any], *, touch: bool = True
    ) -> dict[str, Any]:
        """Set top-level fields verbatim, unknown ones and ``None`` included: ``organization.updated``.

        Like :meth:`set_user_fields`: nothing is refused. Changing ``id`` or ``slug`` this
        way is not supported (lookups would lose the organization).
        """
        if {"id", "slug"} & set(fields):
            raise ValueError("set_organization_fields cannot change id or slug")
        with self._lock:
            position = self._require_organization(id_or_slug)
            organization = self._organization_dict(position)
            now = self._tick()
            organization.update(copy.deepcopy(dict(fields)))
            if touch:
                organization["updated_at"] = now
            self._organization_overlay[position] = organization
            self._organization_order_cache.clear()
            shaped = organization_with_members_count(organization, self._members_count[position])
            self._emit("organization.updated", copy.deepcopy(shaped), now)
            return shaped

    def _organization_dict(self, position: int) -> dict[str, Any]:
        """The organization without members_count, as a fresh dict."""
        organization = self._organization_overlay.get(position)
        if organization is not None:
            return copy.deepcopy(organization)
        return json.loads(self._organizations_at([position], include_members_count=False)[0][0])

    def delete_organization(self, id_or_slug: str) -> dict[str, Any]:
        """Delete an organization and its memberships: ``organization.deleted`` (a DeletedObject)."""
        with self._lock:
            position = self._require_organization(id_or_slug)
            organization = self._organization_dict(position)
            now = self._tick()
            removed = [self._remove_membership(p) for p in self._live_memberships_of_organization(position)]
            self._organizations.delete(position)
            self._organization_overlay.pop(position, None)
            self._slug_positions.pop(organization["slug"], None)
            self._organization_order_cache.clear()
            deleted = deleted_organization(organization)
            self._emit("organization.deleted", copy.deepcopy(deleted), now)
            self._emit_cascade(removed, now)
            return deleted

    # == memberships: reading ============================================================

    def _membership_position(self, membership_id: str) -> int | None:
        position = self._created_membership_positions.get(membership_id)
        if position is None:
            position = self._generated.membership_position(membership_id)
        return position if position is not None and self._memberships.is_live(position) else None

    def _require_membership(self, membership_id: str) -> int:
        position = self._membership_position(membership_id)
        if position is None:
            raise ObjectNotFound("organization_membership", membership_id)
        return position

    def _membership_records(self, positions: Sequence[int]) -> list[MembershipRecord]:
        return _overlaid(
            positions, self._membership_overlay, self._generated.membership_records, lambda _, record: record
        )

    def _memberships_json(self, positions: Sequence[int]) -> list[str]:
        """Memberships rendered with their current organization and member (batched lookups)."""
        records = self._membership_records(positions)
        organization_positions = sorted({r.organization_position for r in records})
        organizations = self._organizations_at(organization_positions, include_members_count=True)
        organization_json = {p: text for p, (text, _) in zip(organization_positions, organizations)}
        user_positions = sorted({r.user_position for r in records})
        members = self._user_profiles_at(user_positions)
        member_json = {p: member.public_user_data_json for p, member in zip(user_positions, members)}
        return [
            membership_json(record, organization_json[record.organization_position], member_json[record.user_position])
            for record in records
        ]

    def _live_memberships_of_organization(self, organization_position: int) -> list[int]:
        positions: Iterable[int] = self._memberships_added_to_organization.get(organization_position, ())
        if organization_position < self._generated.organization_count:
            block = self._generated.memberships.positions_of_organization(organization_position)
            positions = [*block, *positions]
        return [p for p in positions if self._memberships.is_live(p)]

    def _live_memberships_of_user(self, user_position: int) -> list[int]:
        positions: list[int] = list(self._memberships_added_to_user.get(user_position, ()))
        if user_position < self._generated.user_count:
            positions = self._generated.memberships.positions_of_user(user_position) + positions
        return [p for p in positions if self._memberships.is_live(p)]

    def _member_positions(self, organization_ids: Iterable[str]) -> set[int]:
        """User positions of the members of the given (live) organizations."""
        members: set[int] = set()
        for organization_id in organization_ids:
            position = self._organization_position(organization_id)
            if position is not None:
                memberships = self._live_memberships_of_organization(position)
                members.update(r.user_position for r in self._membership_records(memberships))
        return members

    def get_membership(self, membership_id: str) -> dict[str, Any] | None:
        with self._lock:
            position = self._membership_position(membership_id)
            return None if position is None else json.loads(self._memberships_json([position])[0])

    def membership_of(self, organization_id: str, user_id: str) -> dict[str, Any] | None:
        """The membership of a user in an organization, if any."""
        with self._lock:
            position = self._find_membership(self._require_organization(organization_id), self._require_user(user_id))
            return None if position is None else json.loads(self._memberships_json([position])[0])

    def _find_membership(self, organization_position: int, user_position: int) -> int | None:
        candidates = self._live_memberships_of_user(user_position)
        records = self._membership_records(candidates)
        return next((p for p, r in zip(candidates, records) if r.organization_position == organization_position), None)

    def iter_memberships(self) -> Iterator[dict[str, Any]]:
        """Every live membership, in position order (organization by organization)."""
        for chunk in self._memberships.chunks(_SCAN_BATCH):
            with self._lock:
                texts = self._memberships_json([p for p in chunk if self._memberships.is_live(p)])
            yield from (json.loads(text) for text in texts)

    # == memberships: queries ============================================================

    def list_memberships(
        self, *, limit: int, offset: int, order_by: str | None = None
    ) -> tuple[list[str], int]:
        """``GET /organization_memberships``: every membership of the instance.

        With ``order_by`` (see :data:`MEMBERSHIP_ORDER_FIELDS`), in that order, ties broken by
        ``created_at`` then id; ``created_at`` costs a sort of the generated memberships
        once, the member's fields a scan per request. Without it, in heap order (see
        ``__init__``): an order that changes as rows change, so that offset pages read while
        the data changes can skip or repeat rows, as they can against Clerk.
        """
        with self._lock:
            total = self._memberships.live_count()
            if order_by is None:
                return self._memberships_json(self._heap_page(offset, limit)), total
            field, descending = parse_order_by(order_by, MEMBERSHIP_ORDER_FIELDS)
            ordered = self._memberships_by_creation()
            if field != "created_at":
                ordered = self._sorted_by_member(ordered, field)
            if descending:
                ordered = ordered[::-1]
            page = [int(position) for position in ordered[offset : offset + limit]]
            return self._memberships_json(page), total

    def list_organization_memberships(
        self, id_or_slug: str, *, limit: int, offset: int, order_by: str | None = None
    ) -> tuple[list[str], int]:
        """``GET /organizations/{id}/memberships``: ordered as :meth:`list_memberships`."""
        with self._lock:
            positions = self._live_memberships_of_organization(self._require_organization(id_or_slug))
            if order_by is None:
                writes = self._membership_writes
                unwritten = [p for p in positions if p not in writes]
                written = sorted((p for p in positions if p in writes), key=writes.__getitem__)
                positions = unwritten + written
            else:
                field, descending = parse_order_by(order_by, MEMBERSHIP_ORDER_FIELDS)
                records = self._membership_records(positions)
                keys = self._membership_id_keys(positions)
                by_creation = sorted(zip(positions, records, keys), key=lambda item: (item[1].created_at, item[2]))
                positions = [position for position, _, _ in by_creation]
                if field != "created_at":
                    positions = self._sorted_by_member(positions, field)
                if descending:
                    positions = positions[::-1]
            return self._memberships_json(list(positions[offset : offset + limit])), len(positions)

    def _heap_page(self, offset: int, limit: int) -> list[int]:
        """Live memberships ``offset..offset+limit`` in heap order (unwritten, then by last write)."""
        unwritten = self._membership_heap.live_count()
        page = self._membership_heap.page(offset, limit, descending=False) if offset < unwritten else []
        if len(page) < limit:
            written = list(self._membership_writes)  # dict order is last-write order
            start = max(offset - unwritten, 0)
            page += written[start : start + limit - len(page)]
        return page

    def _membership_id_keys(self, positions: Sequence[int]) -> list[Any]:
        """Sort keys ordering memberships of one created_at by id."""
        generated = self._generated.memberships.count
        return [
            (0, int(self._generated.membership_ids.order_keys(np.array([p]))[0]), "") if p < generated
            else (1, 0, self._membership_records([p])[0].id)
            for p in positions
        ]

    def _memberships_by_creation(self) -> np.ndarray:
        """Every live membership's position, ascending by (created_at, id)."""
        layout = self._generated.memberships
        if self._generated_membership_order is None:
            id_keys = self._generated.membership_ids.order_keys(np.arange(layout.count))
            self._generated_membership_order = np.lexsort((id_keys, layout.created_at)).astype(np.int64)
        order = self._generated_membership_order
        deleted = np.array(self._memberships.deleted, dtype=np.int64)
        if len(deleted):
            order = order[~np.isin(order, deleted)]
        # Created memberships come after: their created_at is a tick, later than any generated one.
        created = np.array(self._memberships.live(layout.count), dtype=np.int64)
        return np.concatenate([order, created])

    def _sorted_by_member(self, positions: Sequence[int], field: str) -> list[int]:
        """``positions`` stably sorted by a field of each membership's user (nulls last)."""
        positions = [int(p) for p in positions]
        records = self._membership_records(positions)
        user_positions = sorted({record.user_position for record in records})
        facts = {p: profile.facts for p, profile in zip(user_positions, self._user_profiles_at(user_positions))}

        def value(facts: UserFacts) -> str | None:
            if field == "email_address":
                return facts.primary_email_address
            if field == "phone_number":
                return facts.phone_numbers[0] if facts.phone_numbers else None
            return getattr(facts, field)

        keyed = [(_sort_key(value(facts[record.user_position])), p) for p, record in zip(positions, records)]
        keyed.sort(key=lambda item: item[0])
        return [position for _, position in keyed]

    def _note_membership_write(self, position: int) -> None:
        """A membership was created or updated: in heap order it now comes last."""
        self._membership_writes.pop(position, None)
        self._membership_write_serial += 1
        self._membership_writes[position] = self._membership_write_serial
        if position < self._generated.memberships.count:
            self._membership_heap.delete(position)

    def list_user_memberships(self, user_id: str, *, limit: int, offset: int) -> tuple[list[str], int]:
        """``GET /users/{id}/organization_memberships``."""
        with self._lock:
            positions = self._live_memberships_of_user(self._require_user(user_id))
            return self._memberships_json(positions[offset : offset + limit]), len(positions)

    # == memberships: changes ============================================================

    def create_membership(
        self,
        organization_id: str,
        user_id: str,
        role: str = "org:member",
        *,
        public_metadata: dict[str, Any] | None = None,
        private_metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a user to an organization: ``organizationMembership.created``."""
        with self._lock:
            organization_position = self._require_organization(organization_id)
            user_position = self._require_user(user_id)
            if self._find_membership(organization_position, user_position) is not None:
                raise ValueError(f"user {user_id} is already a member of {organization_id}")
            return self._add_membership(
                organization_position, user_position, role, dict(public_metadata or {}), dict(private_metadata or {})
            )

    def _add_membership(
        self,
        organization_position: int,
        user_position: int,
        role: str,
        public_metadata: dict[str, Any],
        private_metadata: dict[str, Any],
    ) -> dict[str, Any]:
        now = self._tick()
        position = self._memberships.append()
        record = MembershipRecord(
            id=self._mint_id("orgmem_", now),
            organization_position=organization_position,
            user_position=user_position,
            role=role,
            public_metadata=public_metadata,
            private_metadata=private_metadata,
            created_at=now,
            updated_at=now,
        )
        self._membership_overlay[position] = record
        self._created_membership_positions[record.id] = position
        self._memberships_added_to_organization.setdefault(organization_position, []).append(position)
        self._memberships_added_to_user.setdefault(user_position, []).append(position)
        self._members_count[organization_position] += 1
        self._organization_order_cache.pop("members_count", None)
        self._note_membership_write(position)
        membership = json.loads(self._memberships_json([position])[0])
        self._emit("organizationMembership.created", copy.deepcopy(membership), now)
        return membership

    def update_membership(
        self,
        membership_id: str,
        *,
        role: str | None = None,
        public_metadata: dict[str, Any] | None = None,
        private_metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change a member's role or metadata: ``organizationMembership.updated``."""
        with self._lock:
            position = self._require_membership(membership_id)
            record = copy.deepcopy(self._membership_records([position])[0])
            if role is not None:
                record.role = role
            if public_metadata is not None:
                record.public_metadata = copy.deepcopy(public_metadata)
            if private_metadata is not None:
                record.private_metadata = copy.deepcopy(private_metadata)
            now = self._tick()
            record.updated_at = now
            self._membership_overlay[position] = record
            self._note_membership_write(position)
            membership = json.loads(self._memberships_json([position])[0])
            self._emit("organizationMembership.updated", copy.deepcopy(membership), now)
            return membership

    def delete_membership(self, membership_id: str) -> dict[str, Any]:
        """Remove a member: ``organizationMembership.deleted`` carrying the full membership."""
        with self._lock:
            position = self._require_membership(membership_id)
            now = self._tick()
            membership = self._remove_membership(position)
            self._emit("organizationMembership.deleted", copy.deepcopy(membership), now)
            return membership

    def _remove_membership(self, position: int) -> dict[str, Any]:
        """Remove a membership (its organization and user must still be renderable); return it."""
        record = self._membership_records([position])[0]
        self._memberships.delete(position)
        self._membership_heap.delete(position)
        self._membership_writes.pop(position, None)
        self._members_count[record.organization_position] -= 1
        self._organization_order_cache.pop("members_count", None)
        membership = json.loads(self._memberships_json([position])[0])
        self._membership_overlay.pop(position, None)
        return membership

    def _emit_cascade(self, removed_memberships: list[dict[str, Any]], now: int) -> None:
        """Membership deletions caused by a user or organization deletion (if so configured)."""
        if self.cascade_membership_events:
            for membership in removed_memberships:
                self._emit("organizationMembership.deleted", membership, now)


def _user_search_texts(facts: UserFacts) -> Iterator[str]:
    """What ``query=`` matches against: ids, addresses, phones, username and names."""
    yield facts.id
    yield from facts.email_addresses
    yield from facts.phone_numbers
    for value in (facts.username, facts.first_name, facts.last_name):
        if value:
            yield value
    if facts.first_name and facts.last_name:
        yield f"{facts.first_name} {facts.last_name}"


def _overlaid(
    positions: Sequence[int],
    overlay: dict[int, Changed],
    generate: Callable[[list[int]], list[Shown]],
    from_overlay: Callable[[int, Changed], Shown],
) -> list[Shown]:
    """The objects at ``positions``: changed ones from the overlay, the others generated in one batch."""
    generated = iter(generate([p for p in positions if p not in overlay]))
    return [from_overlay(p, overlay[p]) if p in overlay else next(generated) for p in positions]
