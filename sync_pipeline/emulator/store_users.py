"""The store's users: reading them, ``GET /users`` and ``/users/count``, and changing them."""

from __future__ import annotations

import copy
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from sync_pipeline.emulator.generate import USER_TIME_FIELDS, GeneratedUser, UserProfile
from sync_pipeline.emulator.objects import UserFacts, deleted_user, public_user_data, to_json, user_facts
from sync_pipeline.emulator.store_common import (
    NULL_LAST,
    SCAN_BATCH,
    TIME_BATCH,
    USER_SORT_ATTRIBUTE,
    VERIFICATION_EXPIRY_MS,
    USER_ORDER_FIELDS,
    InvalidParameter,
    ObjectNotFound,
    UserQuery,
    overlaid,
    sort_key,
    parse_order_by,
)
from sync_pipeline.emulator.store_state import StoreState


class UserStore(StoreState):
    """The users part of :class:`~sync_pipeline.emulator.store.ClerkStore`."""

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
        return overlaid(
            positions,
            self._user_overlay,
            self._generated.users,
            lambda _, user: GeneratedUser(to_json(user), to_json(public_user_data(user)), user_facts(user)),
        )

    def _user_profiles_at(self, positions: Sequence[int]) -> list[UserProfile]:
        """Public data and facts of the users at ``positions``: cheaper than :meth:`_users_at`."""
        return overlaid(
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
        for chunk in self._users.chunks(SCAN_BATCH):
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
        for batch_start in range(0, len(candidates), SCAN_BATCH):
            batch = candidates[batch_start : batch_start + SCAN_BATCH]
            for position, user in zip(batch, self._user_profiles_at(batch)):
                if matches(position, user.facts):
                    matched.append((position, user.facts))
        return matched

    def _ordered_user_positions(self, query: UserQuery, field: str, start: int, stop: int) -> Sequence[int]:
        """Matching positions with a rank in [start, stop), ascending by ``field`` (nulls last)."""
        attribute = USER_SORT_ATTRIBUTE[field]
        if self._user_query_needs_scan(query):
            matched = self._matching_users(query, start, stop)
            if field != "created_at":
                matched.sort(key=lambda item: sort_key(getattr(item[1], attribute)))
            return [position for position, _ in matched]
        if field == "created_at":
            return self._user_order.live(self._users, start, stop)
        if field not in self._user_order_cache:
            if field in USER_TIME_FIELDS:
                self._user_order_cache[field] = self._users_by_time(field)
            else:
                every = self._matching_users(UserQuery(), 0, self._users.end)
                every.sort(key=lambda item: sort_key(getattr(item[1], attribute)))
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
                self._generated.user_times(field, start, min(start + TIME_BATCH, count))
                for start in range(0, count, TIME_BATCH)
            ]
            times = np.concatenate([np.empty(0, dtype=np.int64), *batches])
            times = np.where(times < 0, NULL_LAST, times)
            order = np.argsort(times, kind="stable")  # stable: ties stay in position order
            self._generated_user_time_orders[field] = (times[order], order)
        times, positions = self._generated_user_time_orders[field]
        stale = np.zeros(self._generated.user_count, dtype=bool)
        stale[[p for p in (*self._user_overlay, *self._users.deleted) if p < self._generated.user_count]] = True
        keep = ~stale[positions]
        times, positions = times[keep], positions[keep]
        changed = sorted(
            (NULL_LAST if user[field] is None else user[field], position)
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
            verification |= {"attempts": 0, "expire_at": now + VERIFICATION_EXPIRY_MS}
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
