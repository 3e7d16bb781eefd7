"""The store's organizations: reading them, ``GET /organizations``, and changing them."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


from sync_pipeline.emulator.objects import (
    OrganizationFacts,
    deleted_organization,
    organization_facts,
    organization_with_members_count,
    to_json,
)
from sync_pipeline.emulator.store_common import (
    SCAN_BATCH,
    ORGANIZATION_ORDER_FIELDS,
    ObjectNotFound,
    OrganizationQuery,
    overlaid,
    parse_order_by,
)
from sync_pipeline.emulator.store_state import StoreState


class OrganizationStore(StoreState):
    """The organizations part of :class:`~sync_pipeline.emulator.store.ClerkStore`."""

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

        return overlaid(positions, self._organization_overlay, generate, from_overlay)

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
        for chunk in self._organizations.chunks(SCAN_BATCH):
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
        for start in range(0, len(positions), SCAN_BATCH):
            batch = positions[start : start + SCAN_BATCH]
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
        """Delete an organization, its memberships, invitations and domains: ``organization.deleted`` (a DeletedObject)."""
        with self._lock:
            position = self._require_organization(id_or_slug)
            organization = self._organization_dict(position)
            now = self._tick()
            removed = [self._remove_membership(p) for p in self._live_memberships_of_organization(position)]
            # Its invitations and domains go with it (no events for them: Clerk documents none).
            for owned in (self._invitations, self._domains):
                for owned_position in owned.of_organization(position):
                    owned.delete(owned_position)
            self._organizations.delete(position)
            self._organization_overlay.pop(position, None)
            self._slug_positions.pop(organization["slug"], None)
            self._organization_order_cache.clear()
            deleted = deleted_organization(organization)
            self._emit("organization.deleted", copy.deepcopy(deleted), now)
            self._emit_cascade(removed, now)
            return deleted
