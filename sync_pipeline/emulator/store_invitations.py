"""The store's organization invitations: the instance-wide list, an organization's, and changes.

Generated invitations are made on demand (see :class:`~.owned_records.OwnedRecords`); each
shows its organization, its inviter and its role's name as they are now. The
instance-wide list shows ``public_organization_data`` (the spec's
…WithPublicOrganizationData), an organization's list and the by-id route do not (the
spec's plain OrganizationInvitation, ``additionalProperties: false``); the events carry it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sync_pipeline.emulator.objects import InvitationRecord, invitation_shown, to_json
from sync_pipeline.emulator.owned_records import OwnedRecords
from sync_pipeline.emulator.store_common import (
    ChangeRefused,
    SCAN_BATCH,
    InvalidParameter,
    ObjectNotFound,
    parse_order_by,
    sort_key,
)
from sync_pipeline.emulator.store_state import StoreState

# order_by of both invitation lists: "either by their created_at or email_address".
INVITATION_ORDER_FIELDS = ("created_at", "email_address")
INVITATION_STATUSES = ("pending", "accepted", "revoked", "expired")  # the status filter's enum
_DAY_MS = 24 * 3600 * 1000
MANAGE_MEMBERS = "org:sys_memberships:manage"  # what an inviter's role must grant ("administrator privileges")


class InvitationStore(StoreState):
    """The invitations part of :class:`~sync_pipeline.emulator.store.ClerkStore`."""

    _invitations: OwnedRecords[InvitationRecord]

    # == reading =========================================================================

    def _invitations_shown(self, positions: Sequence[int], *, with_organization: bool) -> list[dict[str, Any]]:
        """The invitations at ``positions``, each with its organization, inviter and role as they are now."""
        records = self._invitations.records(positions)
        organization_positions = sorted({r.organization_position for r in records})
        organizations = {
            p: json.loads(text)
            for p, (text, _) in zip(
                organization_positions,
                self._organizations_at(organization_positions, include_members_count=False),
            )
        }
        # An inviter since deleted shows as none.
        inviter_positions = sorted(
            {r.inviter_position for r in records if r.inviter_position is not None and self._users.is_live(r.inviter_position)}
        )
        inviters = {
            p: json.loads(profile.public_user_data_json)
            for p, profile in zip(inviter_positions, self._user_profiles_at(inviter_positions))
        }
        shown = []
        for record in records:
            _, role_name = self._role_shown_key_and_name(record.role)
            shown.append(invitation_shown(
                record,
                role_name=role_name,
                organization=organizations[record.organization_position],
                inviter=inviters.get(record.inviter_position) if record.inviter_position is not None else None,
                with_organization=with_organization,
            ))
        return shown

    def _invitation_page(
        self,
        positions: list[int],
        *,
        order_by: str,
        statuses: Sequence[str],
        email_address: str | None,
        text: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[int], int]:
        """Filter and order live ``positions`` (given in creation order); one page and the total."""
        field, descending = parse_order_by(order_by, INVITATION_ORDER_FIELDS)
        for status in statuses:
            if status not in INVITATION_STATUSES:
                raise InvalidParameter("status", f"status must be one of {', '.join(INVITATION_STATUSES)}")
        if statuses:
            wanted = set(statuses)
            positions = [p for p, s in zip(positions, self._invitations.column("status", positions)) if s in wanted]
        if email_address is not None or text:
            addresses = self._invitations.column("email_address", positions)
            if email_address is not None:
                positions = [p for p, a in zip(positions, addresses) if a == email_address]
            else:
                needle = (text or "").lower()
                positions = [p for p, a in zip(positions, addresses) if needle in a.lower()]
        if field == "email_address":
            addresses = self._invitations.column("email_address", positions)
            # Stable on creation order: ties by created_at.
            positions = [p for _, p in sorted(zip(addresses, positions), key=lambda item: sort_key(item[0]))]
        if descending:
            positions = positions[::-1]
        return positions[offset : offset + limit], len(positions)

    def list_invitations(
        self,
        *,
        limit: int,
        offset: int,
        order_by: str = "-created_at",
        statuses: Sequence[str] = (),
        query: str | None = None,
    ) -> tuple[list[str], int]:
        """``GET /organization_invitations``: every organization's invitations, with their organization's data."""
        with self._lock:
            page, total = self._invitation_page(
                self._invitations.live_by_creation(), order_by=order_by, statuses=statuses, email_address=None,
                text=query, limit=limit, offset=offset,
            )
            return [to_json(shown) for shown in self._invitations_shown(page, with_organization=True)], total

    def list_organization_invitations(
        self,
        organization_id: str,
        *,
        limit: int,
        offset: int,
        order_by: str = "-created_at",
        statuses: Sequence[str] = (),
        email_address: str | None = None,
    ) -> tuple[list[str], int]:
        """``GET /organizations/{id}/invitations`` (404 for an organization that does not exist)."""
        with self._lock:
            positions = self._invitations.of_organization(self._require_organization(organization_id))
            page, total = self._invitation_page(
                positions, order_by=order_by, statuses=statuses, email_address=email_address, text=None,
                limit=limit, offset=offset,
            )
            return [to_json(shown) for shown in self._invitations_shown(page, with_organization=False)], total

    def get_organization_invitation_json(self, organization_id: str, invitation_id: str) -> str | None:
        """``GET /organizations/{id}/invitations/{invitation_id}``: None unless it is that organization's."""
        with self._lock:
            organization = self._organization_position(organization_id)
            position = self._invitations.position(invitation_id)
            if organization is None or position is None:
                return None
            if self._invitations.records([position])[0].organization_position != organization:
                return None
            return to_json(self._invitations_shown([position], with_organization=False)[0])

    def get_invitation(self, invitation_id: str) -> dict[str, Any] | None:
        """The invitation with its organization's data (as the instance-wide list shows it)."""
        with self._lock:
            position = self._invitations.position(invitation_id)
            return None if position is None else self._invitations_shown([position], with_organization=True)[0]

    def iter_invitations(self) -> Iterator[dict[str, Any]]:
        """Every live invitation, oldest first (as the instance-wide list shows them)."""
        with self._lock:
            positions = self._invitations.live_by_creation()
        for start in range(0, len(positions), SCAN_BATCH):
            with self._lock:
                live = [p for p in positions[start : start + SCAN_BATCH] if self._invitations.positions.is_live(p)]
                shown = self._invitations_shown(live, with_organization=True)
            yield from shown

    @property
    def invitation_count(self) -> int:
        with self._lock:
            return self._invitations.positions.live_count()

    # == changes =========================================================================

    def _require_invitation(self, invitation_id: str) -> int:
        position = self._invitations.position(invitation_id)
        if position is None:
            raise ObjectNotFound("organization_invitation", invitation_id)
        return position

    def _require_administrator(self, organization_position: int, user_id: str) -> int:
        """A user who may invite or revoke in the organization (403 otherwise, as Clerk)."""
        user_position = self._require_user(user_id)
        membership = self._find_membership(organization_position, user_position)
        if membership is None or MANAGE_MEMBERS not in self._role_fields(self._membership_records([membership])[0].role):
            raise ChangeRefused(403, "not_an_admin_in_organization", f"user {user_id} is not an administrator of the organization")
        return user_position

    def create_invitation(
        self,
        organization_id: str,
        email_address: str,
        role: str = "org:member",
        *,
        inviter_user_id: str | None = None,
        public_metadata: dict[str, Any] | None = None,
        private_metadata: dict[str, Any] | None = None,
        expires_in_days: int = 30,
    ) -> dict[str, Any]:
        """Invite an address to an organization: ``organizationInvitation.created`` (status ``pending``)."""
        with self._lock:
            organization_position = self._require_organization(organization_id)
            if "@" not in email_address:
                raise InvalidParameter("email_address", f"{email_address!r} is not an e-mail address")
            if self._role_of_key(role) is None:
                raise InvalidParameter("role", f"no role has the key {role!r}")
            if not 1 <= expires_in_days <= 365:
                raise InvalidParameter("expires_in_days", "expires_in_days must be between 1 and 365")
            inviter = None if inviter_user_id is None else self._require_administrator(organization_position, inviter_user_id)
            now = self._tick()
            invitation_id = self._mint_id("orginv_", now)
            record = InvitationRecord(
                id=invitation_id,
                organization_position=organization_position,
                inviter_position=inviter,
                email_address=email_address,
                role=role,
                status="pending",
                public_metadata=copy.deepcopy(public_metadata or {}),
                private_metadata=copy.deepcopy(private_metadata or {}),
                url=f"https://accounts.example.com/accept-invitation?__clerk_ticket={invitation_id}",
                expires_at=now + expires_in_days * _DAY_MS,
                created_at=now,
                updated_at=now,
            )
            position = self._invitations.add(record, invitation_id, organization_position)
            return self._invitation_changed(position, "organizationInvitation.created", now)

    def _invitation_changed(self, position: int, event_type: str, now: int) -> dict[str, Any]:
        shown = self._invitations_shown([position], with_organization=True)[0]
        event = copy.deepcopy(shown)
        accepted_by = self._invitations.records([position])[0].accepted_by
        if accepted_by is not None:
            event["user_id"] = accepted_by  # OrganizationInvitationAcceptedPayload
        self._emit(event_type, event, now)
        return shown

    def _settle_invitation(self, invitation_id: str, status: str) -> tuple[int, InvitationRecord]:
        position = self._require_invitation(invitation_id)
        record = self._invitations.record(position)
        if record.status != "pending":
            # The spec: only pending invitations can be revoked (and only they can be accepted).
            raise ChangeRefused(400, "organization_invitation_not_pending", f"invitation {invitation_id} is {record.status}")
        record.status = status
        return position, record

    def accept_invitation(self, invitation_id: str, user_id: str | None = None) -> dict[str, Any]:
        """The invitee accepts: ``organizationInvitation.accepted`` (with ``user_id``) after the
        membership it makes (``organizationMembership.created``, the invitation's role and metadata).

        Without ``user_id`` the invitee signs up first: a new user with the invited address
        (``user.created``).
        """
        with self._lock:
            position, record = self._settle_invitation(invitation_id, "accepted")
            if user_id is None:
                user_id = self.create_user(email_addresses=[record.email_address])["id"]
            user_position = self._require_user(user_id)
            if self._find_membership(record.organization_position, user_position) is None:
                self._add_membership(
                    record.organization_position, user_position, record.role,
                    copy.deepcopy(record.public_metadata), copy.deepcopy(record.private_metadata),
                )
            now = self._tick()
            record.updated_at = now
            record.accepted_by = user_id
            self._invitations.write(position, record)
            return self._invitation_changed(position, "organizationInvitation.accepted", now)

    def revoke_invitation(self, invitation_id: str, *, requesting_user_id: str | None = None) -> dict[str, Any]:
        """Revoke a pending invitation: ``organizationInvitation.revoked`` (400 unless pending;
        403 if ``requesting_user_id`` is not an administrator of its organization)."""
        with self._lock:
            position, record = self._settle_invitation(invitation_id, "revoked")
            if requesting_user_id is not None:
                self._require_administrator(record.organization_position, requesting_user_id)
            now = self._tick()
            record.updated_at = now
            self._invitations.write(position, record)
            return self._invitation_changed(position, "organizationInvitation.revoked", now)

    def _invitations_hold_role(self, keys: set[str]) -> bool:
        live = self._invitations.live_by_creation()
        return any(role in keys for role in self._invitations.column("role", live))
