"""The store's roles and permissions: ``GET /organization_roles``, ``/organization_permissions``, and changes.

An instance has few of them (see ``GENERATED_ROLES`` in :mod:`.generate`), so they are
kept as records, not generated on demand. A membership or invitation holds its role by
key; what it shows of the role (``role_name``, a membership's ``permissions[]``) is read
from the role as it is now, so a change to a role or a permission changes what every
membership of that role serves, with no ``organizationMembership.updated`` (Clerk
documents none). A role whose key changes keeps its members: their records still hold the
former key, which stays the role's alias (and cannot be given to another role meanwhile).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sync_pipeline.emulator.objects import (
    PermissionRecord,
    RoleRecord,
    deleted_object,
    role_fields_json,
    to_json,
    unknown_role_name,
)
from sync_pipeline.emulator.store_common import (
    ChangeRefused,
    InvalidParameter,
    ObjectNotFound,
    matches_text,
    ordered_page,
)
from sync_pipeline.emulator.store_state import StoreState

# order_by of GET /organization_roles and /organization_permissions: "created_at, name, or key".
ROLE_ORDER_FIELDS = PERMISSION_ORDER_FIELDS = ("created_at", "name", "key")
# The spec: role keys "must start with 'org:' and contain only lowercase alphanumeric characters
# and underscores"; permission keys "org:feature:action", and "org:sys_" is reserved.
ROLE_KEY = re.compile(r"org:[a-z0-9_]+")
PERMISSION_KEY = re.compile(r"org:[a-z0-9_]+:[a-z0-9_]+")
CREATOR_ROLE = "org:admin"  # the default creator role, which Clerk will not delete
_ROLE_SCAN_BATCH = 200_000  # generated memberships per batch while looking for a role's members


class AccessStore(StoreState):
    """The roles and permissions part of :class:`~sync_pipeline.emulator.store.ClerkStore`."""

    def _load_generated_access(self) -> None:
        permissions = self._generated.permissions()
        self._permissions = {p.id: p for p in permissions}
        self._roles = {r.id: r for r in self._generated.roles({p.key: p.id for p in permissions})}
        self._role_key_aliases = {}
        self._role_fields_cache = {}

    # == reading =========================================================================

    def _role_of_key(self, key: str) -> RoleRecord | None:
        """The role a membership or invitation holding ``key`` has now (its former key included)."""
        for role in self._roles.values():
            if role.key == key:
                return role
        alias = self._role_key_aliases.get(key)
        return None if alias is None else self._roles.get(alias)

    def _role_fields(self, key: str) -> str:
        """What a membership holding ``key`` shows of its role (cached until a role or permission changes)."""
        fields = self._role_fields_cache.get(key)
        if fields is None:
            role = self._role_of_key(key)
            if role is None:  # a key given through the mutation API that no role has
                fields = role_fields_json(key, unknown_role_name(key), [])
            else:
                keys = [self._permissions[p].key for p in role.permission_ids]
                fields = role_fields_json(role.key, role.name, keys)
            self._role_fields_cache[key] = fields
        return fields

    def _role_shown_key_and_name(self, key: str) -> tuple[str, str]:
        role = self._role_of_key(key)
        return (key, unknown_role_name(key)) if role is None else (role.key, role.name)

    def _require_role(self, role_id: str) -> RoleRecord:
        role = self._roles.get(role_id)
        if role is None:
            raise ObjectNotFound("role", role_id)
        return role

    def _require_permission(self, permission_id: str) -> PermissionRecord:
        permission = self._permissions.get(permission_id)
        if permission is None:
            raise ObjectNotFound("permission", permission_id)
        return permission

    def get_role(self, role_id: str) -> dict[str, Any] | None:
        with self._lock:
            role = self._roles.get(role_id)
            return None if role is None else role.shown(self._permissions)

    def role_with_key(self, key: str) -> dict[str, Any] | None:
        """The role whose key is ``key`` now (a test's way to find ``org:member``'s id)."""
        with self._lock:
            role = next((r for r in self._roles.values() if r.key == key), None)
            return None if role is None else role.shown(self._permissions)

    def get_permission(self, permission_id: str) -> dict[str, Any] | None:
        with self._lock:
            permission = self._permissions.get(permission_id)
            return None if permission is None else permission.shown()

    def permission_with_key(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            permission = next((p for p in self._permissions.values() if p.key == key), None)
            return None if permission is None else permission.shown()

    def iter_roles(self) -> list[dict[str, Any]]:
        """Every role, oldest first."""
        with self._lock:
            return [role.shown(self._permissions) for role in self._roles.values()]

    def iter_permissions(self) -> list[dict[str, Any]]:
        """Every permission, oldest first."""
        with self._lock:
            return [permission.shown() for permission in self._permissions.values()]

    def list_roles(
        self, *, limit: int, offset: int, order_by: str = "-created_at", query: str | None = None
    ) -> tuple[list[str], int]:
        """``GET /organization_roles``: JSON texts of one page, and the total."""
        with self._lock:
            roles = [r for r in self._roles.values() if not query or matches_text(query, r.id, r.name, r.key)]
            page, total = ordered_page(roles, order_by, ROLE_ORDER_FIELDS, getattr, limit=limit, offset=offset)
            return [to_json(role.shown(self._permissions)) for role in page], total

    def list_permissions(
        self, *, limit: int, offset: int, order_by: str = "-created_at", query: str | None = None
    ) -> tuple[list[str], int]:
        """``GET /organization_permissions``: JSON texts of one page, and the total."""
        with self._lock:
            permissions = [
                p for p in self._permissions.values() if not query or matches_text(query, p.id, p.name, p.key)
            ]
            page, total = ordered_page(
                permissions, order_by, PERMISSION_ORDER_FIELDS, getattr, limit=limit, offset=offset
            )
            return [to_json(permission.shown()) for permission in page], total

    # == roles: changes ==================================================================

    def _check_role_key(self, key: str, role_id: str | None) -> None:
        if not ROLE_KEY.fullmatch(key):
            raise InvalidParameter(
                "key", "key must start with 'org:' and contain only lowercase alphanumeric characters and underscores"
            )
        holder = self._role_of_key(key)
        if holder is not None and holder.id != role_id:
            raise InvalidParameter("key", f"key {key!r} is already taken by another role")

    def _permission_ids(self, permission_ids: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self._require_permission(p).id for p in permission_ids))

    def _role_changed(self, role: RoleRecord, event_type: str, now: int) -> dict[str, Any]:
        self._role_fields_cache.clear()
        shown = role.shown(self._permissions)
        self._emit(event_type, copy.deepcopy(shown), now)
        return shown

    def _role_updated(self, role: RoleRecord) -> dict[str, Any]:
        """A changed role stamped now, announced by ``role.updated``."""
        now = self._tick()
        role.updated_at = now
        return self._role_changed(role, "role.updated", now)

    def create_role(
        self,
        name: str,
        key: str,
        *,
        description: str | None = None,
        permissions: Sequence[str] = (),
        is_creator_eligible: bool = False,
    ) -> dict[str, Any]:
        """Create a role granting ``permissions`` (permission ids): ``role.created``."""
        with self._lock:
            self._check_role_key(key, None)
            permission_ids = self._permission_ids(permissions)
            now = self._tick()
            role = RoleRecord(
                self._mint_id("role_", now), key, name, description, is_creator_eligible, permission_ids, now, now
            )
            self._roles[role.id] = role
            return self._role_changed(role, "role.created", now)

    def update_role(
        self,
        role_id: str,
        *,
        name: str | None = None,
        key: str | None = None,
        description: str | None = None,
        permissions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change a role (``permissions``, ids, replaces them all): ``role.updated``; its members follow."""
        with self._lock:
            role = self._require_role(role_id)
            if key is not None and key != role.key:
                self._check_role_key(key, role.id)
            permission_ids = None if permissions is None else self._permission_ids(permissions)
            if key is not None and key != role.key:
                self._role_key_aliases.pop(key, None)
                self._role_key_aliases[role.key] = role.id
                role.key = key
            if name is not None:
                role.name = name
            if description is not None:
                role.description = description
            if permission_ids is not None:
                role.permission_ids = permission_ids
            return self._role_updated(role)

    def assign_permission(self, role_id: str, permission_id: str) -> dict[str, Any]:
        """Grant a role a permission: ``role.updated`` (409 if it has it already, as Clerk's spec says)."""
        with self._lock:
            role = self._require_role(role_id)
            permission = self._require_permission(permission_id)
            if permission.id in role.permission_ids:
                raise ChangeRefused(409, "duplicate_record", f"role {role.key} already has {permission.key}")
            role.permission_ids.append(permission.id)
            return self._role_updated(role)

    def remove_permission(self, role_id: str, permission_id: str) -> dict[str, Any]:
        """Take a permission from a role: ``role.updated`` (422 if it does not have it)."""
        with self._lock:
            role = self._require_role(role_id)
            permission = self._require_permission(permission_id)
            if permission.id not in role.permission_ids:
                raise InvalidParameter("permission_id", f"role {role.key} does not have {permission.key}")
            role.permission_ids.remove(permission.id)
            return self._role_updated(role)

    def delete_role(self, role_id: str) -> dict[str, Any]:
        """Delete a role: ``role.deleted`` (a DeletedObject).

        Refused (422), as the spec says, while it is the creator role or any membership or
        invitation holds it.
        """
        with self._lock:
            role = self._require_role(role_id)
            keys = {role.key} | {alias for alias, held_by in self._role_key_aliases.items() if held_by == role.id}
            if role.key == CREATOR_ROLE:
                raise InvalidParameter("organization_role_id", f"{role.key} is the creator role and cannot be deleted")
            if self._members_hold_role(keys):
                raise InvalidParameter("organization_role_id", f"role {role.key} is assigned to members")
            if self._invitations_hold_role(keys):
                raise InvalidParameter("organization_role_id", f"role {role.key} is in invitations")
            now = self._tick()
            del self._roles[role.id]
            for alias in keys - {role.key}:
                del self._role_key_aliases[alias]
            self._role_fields_cache.clear()
            # As Clerk's role.deleted example: a DeletedObject with a null slug.
            deleted = {"object": "role", "id": role.id, "slug": None, "deleted": True}
            self._emit("role.deleted", copy.deepcopy(deleted), now)
            return deleted

    def _members_hold_role(self, keys: set[str]) -> bool:
        """Whether any live membership holds one of ``keys`` (generated ones scanned, vectorised)."""
        overlay = self._membership_overlay
        if any(record.role in keys for record in overlay.values()):
            return True
        wanted = np.array(sorted(keys))
        generated = self._generated.memberships.count
        for start in range(0, generated, _ROLE_SCAN_BATCH):
            batch = np.arange(start, min(start + _ROLE_SCAN_BATCH, generated))
            held = batch[np.isin(self._generated.membership_role_keys(batch), wanted)]
            if any(self._memberships.is_live(p) and p not in overlay for p in held.tolist()):
                return True
        return False

    # == permissions: changes ============================================================

    def _check_permission_key(self, key: str, permission_id: str | None) -> None:
        if not PERMISSION_KEY.fullmatch(key) or key.startswith("org:sys_"):
            raise InvalidParameter(
                "key",
                'key must have the format "org:feature:action" (lowercase letters, digits, underscores),'
                ' and "org:sys_" is reserved for system permissions',
            )
        if any(p.key == key and p.id != permission_id for p in self._permissions.values()):
            raise InvalidParameter("key", f"key {key!r} is already taken by another permission")

    def _require_user_permission(self, permission_id: str) -> PermissionRecord:
        permission = self._require_permission(permission_id)
        if permission.type == "system":
            raise ChangeRefused(403, "authorization_invalid", "system permissions cannot be changed or deleted")
        return permission

    def create_permission(self, name: str, key: str, *, description: str = "") -> dict[str, Any]:
        """Create a permission (granted to no role yet): ``permission.created``."""
        with self._lock:
            self._check_permission_key(key, None)
            now = self._tick()
            permission = PermissionRecord(self._mint_id("perm_", now), key, name, description, "user", now, now)
            self._permissions[permission.id] = permission
            self._emit("permission.created", permission.shown(), now)
            return permission.shown()

    def update_permission(
        self, permission_id: str, *, name: str | None = None, key: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Change a permission: ``permission.updated`` (403 for a system one); a new key
        shows in the ``permissions[]`` of every member of every role granting it."""
        with self._lock:
            permission = self._require_user_permission(permission_id)
            if key is not None:
                self._check_permission_key(key, permission.id)
                permission.key = key
            if name is not None:
                permission.name = name
            if description is not None:
                permission.description = description
            now = self._tick()
            permission.updated_at = now
            self._role_fields_cache.clear()
            self._emit("permission.updated", permission.shown(), now)
            return permission.shown()

    def delete_permission(self, permission_id: str) -> dict[str, Any]:
        """Delete a permission, taking it from every role: ``permission.deleted`` (403 for a system one).

        Clerk documents no ``role.updated`` for the roles that lose it, so none is sent.
        """
        with self._lock:
            permission = self._require_user_permission(permission_id)
            now = self._tick()
            del self._permissions[permission.id]
            for role in self._roles.values():
                if permission.id in role.permission_ids:
                    role.permission_ids.remove(permission.id)
            self._role_fields_cache.clear()
            deleted = deleted_object("permission", permission.id)
            self._emit("permission.deleted", copy.deepcopy(deleted), now)
            return deleted
