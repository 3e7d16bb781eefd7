"""The store's organization domains: the instance-wide list, an organization's, and changes."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from sync_pipeline.emulator.objects import (
    DOMAIN_ENROLLMENT_MODES,
    DomainRecord,
    deleted_object,
    domain_shown,
    to_json,
)
from sync_pipeline.emulator.owned_records import OwnedRecords
from sync_pipeline.emulator.store_common import (
    SCAN_BATCH,
    InvalidParameter,
    ObjectNotFound,
    parse_order_by,
    sort_key,
)
from sync_pipeline.emulator.store_state import StoreState

# order_by of GET /organization_domains: "by their name or created_at".
DOMAIN_ORDER_FIELDS = ("created_at", "name")
DOMAIN_NAME = re.compile(r"(?=.{1,253}$)([^\s./@]+\.)+[^\s./@]{2,}")


def parse_enrollment_modes(values: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The ``enrollment_mode`` filter: modes to keep and, prefixed with ``-``, to leave out (422 for others)."""
    include, exclude = set(), set()
    for value in values:
        mode = value.removeprefix("-")
        if mode not in DOMAIN_ENROLLMENT_MODES:
            raise InvalidParameter(
                "enrollment_mode",
                f"enrollment_mode must be one of {', '.join(DOMAIN_ENROLLMENT_MODES)}, optionally prefixed with -",
            )
        (exclude if value.startswith("-") else include).add(mode)
    return frozenset(include), frozenset(exclude)


class DomainStore(StoreState):
    """The domains part of :class:`~sync_pipeline.emulator.store.ClerkStore`."""

    _domains: OwnedRecords[DomainRecord]

    # == reading =========================================================================

    def _domains_shown(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        records = self._domains.records(positions)
        organization_positions = sorted({r.organization_position for r in records})
        texts = self._organizations_at(organization_positions, include_members_count=False)
        organizations = {p: json.loads(text) for p, (text, _) in zip(organization_positions, texts)}
        return [domain_shown(record, organizations[record.organization_position]) for record in records]

    def _domain_page(
        self,
        positions: list[int],
        *,
        order_by: str,
        verified: bool | None,
        enrollment_modes: Sequence[str],
        text: str | None,
        names: Sequence[str],
        limit: int,
        offset: int,
    ) -> tuple[list[int], int]:
        """Filter and order live ``positions`` (given in creation order); one page and the total."""
        field, descending = parse_order_by(order_by, DOMAIN_ORDER_FIELDS)
        include, exclude = parse_enrollment_modes(enrollment_modes)
        if verified is not None:
            positions = [p for p, v in zip(positions, self._domains.column("verified", positions)) if v == verified]
        if include or exclude:
            modes = self._domains.column("enrollment_mode", positions)
            positions = [
                p for p, mode in zip(positions, modes) if (not include or mode in include) and mode not in exclude
            ]
        if text is not None:
            if text.startswith("org_"):  # the spec: an exact organization id
                organization = self._organization_position(text)
                positions = [] if organization is None else [
                    p for p, o in zip(positions, self._domains.column("organization_position", positions))
                    if o == organization
                ]
            else:
                needle = text.lower()
                positions = [p for p, n in zip(positions, self._domains.column("name", positions)) if needle in n.lower()]
        if names:
            wanted = set(names)
            positions = [p for p, n in zip(positions, self._domains.column("name", positions)) if n in wanted]
        if field == "name":
            domain_names = self._domains.column("name", positions)
            positions = [p for _, p in sorted(zip(domain_names, positions), key=lambda item: sort_key(item[0]))]
        if descending:
            positions = positions[::-1]
        return positions[offset : offset + limit], len(positions)

    def list_domains(
        self,
        *,
        limit: int,
        offset: int,
        order_by: str = "-created_at",
        organization_id: str | None = None,
        verified: bool | None = None,
        enrollment_modes: Sequence[str] = (),
        query: str | None = None,
        domains: Sequence[str] = (),
    ) -> tuple[list[str], int]:
        """``GET /organization_domains``: every organization's domains (an unknown ``organization_id``: none).

        ``query``: an exact organization id if it starts with ``org_``, else part of the
        name, any case; empty or blank is a 422, as the spec says.
        """
        if query is not None and not query.strip():
            raise InvalidParameter("query", "query must not be empty or blank")
        with self._lock:
            if organization_id is None:
                positions = self._domains.live_by_creation()
            else:
                organization = self._organization_position(organization_id)
                positions = [] if organization is None else self._domains.of_organization(organization)
            page, total = self._domain_page(
                positions, order_by=order_by, verified=verified, enrollment_modes=enrollment_modes, text=query,
                names=domains, limit=limit, offset=offset,
            )
            return [to_json(shown) for shown in self._domains_shown(page)], total

    def list_organization_domains(
        self,
        organization_id: str,
        *,
        limit: int,
        offset: int,
        verified: bool | None = None,
        enrollment_modes: Sequence[str] = (),
    ) -> tuple[list[str], int]:
        """``GET /organizations/{id}/domains``, newest first as the instance-wide list (the spec names no
        order); ObjectNotFound for an organization that does not exist."""
        with self._lock:
            positions = self._domains.of_organization(self._require_organization(organization_id))
            page, total = self._domain_page(
                positions, order_by="-created_at", verified=verified, enrollment_modes=enrollment_modes, text=None,
                names=(), limit=limit, offset=offset,
            )
            return [to_json(shown) for shown in self._domains_shown(page)], total

    def get_domain(self, domain_id: str) -> dict[str, Any] | None:
        with self._lock:
            position = self._domains.position(domain_id)
            return None if position is None else self._domains_shown([position])[0]

    def iter_domains(self) -> Iterator[dict[str, Any]]:
        """Every live domain, oldest first."""
        with self._lock:
            positions = self._domains.live_by_creation()
        for start in range(0, len(positions), SCAN_BATCH):
            with self._lock:
                live = [p for p in positions[start : start + SCAN_BATCH] if self._domains.positions.is_live(p)]
                shown = self._domains_shown(live)
            yield from shown

    @property
    def domain_count(self) -> int:
        with self._lock:
            return self._domains.positions.live_count()

    # == changes =========================================================================

    def _require_domain(self, domain_id: str) -> int:
        position = self._domains.position(domain_id)
        if position is None:
            raise ObjectNotFound("organization_domain", domain_id)
        return position

    @staticmethod
    def _check_enrollment_mode(mode: str) -> None:
        if mode not in DOMAIN_ENROLLMENT_MODES:
            raise InvalidParameter("enrollment_mode", f"enrollment_mode must be one of {', '.join(DOMAIN_ENROLLMENT_MODES)}")

    @staticmethod
    def _affiliation(verified: bool) -> dict[str, Any]:
        """The affiliation verification of a domain set verified or not through the API."""
        return {
            "status": "verified" if verified else "unverified", "strategy": "admin",
            "attempts": None, "expire_at": None, "verified_at": None,
        }

    def create_domain(
        self, organization_id: str, name: str, enrollment_mode: str = "manual_invitation", *, verified: bool = True
    ) -> dict[str, Any]:
        """Add a domain (verified unless told otherwise, as the spec says): ``organizationDomain.created``."""
        with self._lock:
            organization_position = self._require_organization(organization_id)
            self._check_enrollment_mode(enrollment_mode)
            if not DOMAIN_NAME.fullmatch(name):
                raise InvalidParameter("name", f"{name!r} is not a domain name")
            live = self._domains.live_by_creation()
            if name in self._domains.column("name", live):
                raise InvalidParameter("name", f"domain {name} is already in use")
            now = self._tick()
            domain_id = self._mint_id("orgdmn_", now)
            record = DomainRecord(
                id=domain_id,
                organization_position=organization_position,
                name=name,
                enrollment_mode=enrollment_mode,
                affiliation_email_address=None,
                verification=self._affiliation(verified),
                ownership_verification=None,
                total_pending_invitations=0,
                total_pending_suggestions=0,
                created_at=now,
                updated_at=now,
            )
            position = self._domains.add(record, domain_id, organization_position)
            shown = self._domains_shown([position])[0]
            self._emit("organizationDomain.created", copy.deepcopy(shown), now)
            return shown

    def update_domain(
        self, domain_id: str, *, enrollment_mode: str | None = None, verified: bool | None = None
    ) -> dict[str, Any]:
        """Change a domain's enrollment mode or verification: ``organizationDomain.updated``."""
        with self._lock:
            position = self._require_domain(domain_id)
            record = self._domains.record(position)
            if enrollment_mode is not None:
                self._check_enrollment_mode(enrollment_mode)
                record.enrollment_mode = enrollment_mode
            now = self._tick()
            if verified is not None and verified != record.verified:
                record.verification = self._affiliation(verified)
            record.updated_at = now
            self._domains.write(position, record)
            shown = self._domains_shown([position])[0]
            self._emit("organizationDomain.updated", copy.deepcopy(shown), now)
            return shown

    def delete_domain(self, domain_id: str) -> dict[str, Any]:
        """Remove a domain: ``organizationDomain.deleted`` (a DeletedObject)."""
        with self._lock:
            position = self._require_domain(domain_id)
            record = self._domains.delete(position)
            now = self._tick()
            deleted = deleted_object("organization_domain", record.id)
            self._emit("organizationDomain.deleted", copy.deepcopy(deleted), now)
            return deleted
