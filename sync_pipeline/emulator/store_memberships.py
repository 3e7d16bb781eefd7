"""The store's memberships: reading them, the three membership lists, and changing them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from sync_pipeline.emulator.objects import MembershipRecord, UserFacts, membership_json
from sync_pipeline.emulator.store_common import (
    SCAN_BATCH,
    MEMBERSHIP_ORDER_FIELDS,
    ObjectNotFound,
    overlaid,
    sort_key,
    parse_order_by,
)
from sync_pipeline.emulator.store_state import StoreState


class MembershipStore(StoreState):
    """The memberships part of :class:`~sync_pipeline.emulator.store.ClerkStore`."""

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
        return overlaid(
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
            membership_json(
                record,
                self._role_fields(record.role),
                organization_json[record.organization_position],
                member_json[record.user_position],
            )
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
        for chunk in self._memberships.chunks(SCAN_BATCH):
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
        self,
        id_or_slug: str,
        *,
        limit: int,
        offset: int,
        order_by: str | None = None,
        roles: Sequence[str] = (),
        user_ids: Sequence[str] = (),
    ) -> tuple[list[str], int]:
        """``GET /organizations/{id}/memberships``: ordered as :meth:`list_memberships`.

        ``roles``: only members holding one of these role keys (as shown now; keys no
        role has are ignored, as the spec says). ``user_ids``: ``id`` or ``+id`` keeps those
        users, ``-id`` leaves them out.
        """
        with self._lock:
            positions = self._live_memberships_of_organization(self._require_organization(id_or_slug))
            if roles or user_ids:
                positions = self._filtered_memberships(positions, set(roles), user_ids)
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

    def _filtered_memberships(self, positions: list[int], roles: set[str], user_ids: Sequence[str]) -> list[int]:
        records = self._membership_records(positions)
        if roles:
            kept = [(p, r) for p, r in zip(positions, records) if self._role_shown_key_and_name(r.role)[0] in roles]
            positions, records = [p for p, _ in kept], [r for _, r in kept]
        included = {self._user_position(u.removeprefix("+")) for u in user_ids if not u.startswith("-")}
        excluded = {self._user_position(u[1:]) for u in user_ids if u.startswith("-")}
        return [
            p for p, r in zip(positions, records)
            if (not included or r.user_position in included) and r.user_position not in excluded
        ]

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

        keyed = [(sort_key(value(facts[record.user_position])), p) for p, record in zip(positions, records)]
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
