"""Deterministic synthetic Clerk data: object ``i`` of each kind is a pure function of (seed, i).

Nothing is stored per user or organization. They are generated on demand, a batch (a
page) at a time: every random choice is a counter-based hash of (seed, kind, field,
index), computed with numpy for the whole batch, and each object is then written
straight to compact JSON text by a template (no dicts, no ``json.dumps``). A 500-user
page takes about 10 ms, and a million users cost no memory until they are changed (the
store keeps changed objects in an overlay). Only the membership layout (which user sits
in which organization, and since when) is materialised, as numpy arrays (about 30 MB
for a million memberships), because it must be walkable by organization and by user.

Creation times grow strictly with the index (users, organizations), so position order
*is* ``created_at`` order and the store pages the default listing without sorting. Every
generated timestamp lies in [GENERATED_FROM_MS, GENERATED_UNTIL_MS).

The data is awkward in the ways real Clerk data is: Unicode names and addresses (Zoë,
Łukasz, 山田, emoji in metadata), users without e-mail, with several, with
``primary_email_address_id`` null, unverified or oddly verified addresses (one variant
omits ``verification.object``, one is unknown), banned users, null ``private_metadata``,
external ids on some, empty organizations, custom and legacy membership roles.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np

from sync_pipeline.emulator.ids import IdCodec
from sync_pipeline.emulator.objects import (
    DOMAIN_ENROLLMENT_MODES,
    DomainRecord,
    InvitationRecord,
    MembershipRecord,
    OrganizationFacts,
    PermissionRecord,
    RoleRecord,
    UserFacts,
)

GENERATED_FROM_MS = 1_609_459_200_000  # 2021-01-01T00:00:00Z
GENERATED_UNTIL_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
USER_TIME_FIELDS = ("updated_at", "last_sign_in_at", "last_active_at")  # see DataGenerator.user_times
# Organizations start a little after users, so every creator is a user who already existed.
ORGANIZATIONS_FROM_MS = GENERATED_FROM_MS + (GENERATED_UNTIL_MS - GENERATED_FROM_MS) // 50
MEMBERSHIP_JOIN_DELAY_MS = 30 * 24 * 3600 * 1000  # members join within 30 days of being able to
EMPTY_ORGANIZATION_SHARE = 0.05

DEFAULT_IMAGE_URL = "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9"
UPLOADED_IMAGE_URL = "https://img.clerk.com/eyJ0eXBlIjoicHJveHkifQ{}"

# (as displayed, as it appears in ASCII e-mail addresses and slugs)
FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Zoë", "zoe"), ("Łukasz", "lukasz"), ("太郎", "taro"), ("Amélie", "amelie"),
    ("José", "jose"), ("Siobhán", "siobhan"), ("Björn", "bjorn"), ("Ólafur", "olafur"),
    ("Анна", "anna"), ("Αλέξανδρος", "alexandros"), ("محمد", "mohammed"), ("Thảo", "thao"),
    ("Priya", "priya"), ("François", "francois"), ("Søren", "soren"), ("Chloé", "chloe"),
    ("Olivia", "olivia"), ("Liam", "liam"), ("Noah", "noah"), ("Emma", "emma"),
    ("Mateo", "mateo"), ("Aarav", "aarav"), ("Yuki", "yuki"), ("Fatima", "fatima"),
    ("Kwame", "kwame"), ("Ingrid", "ingrid"), ("Jürgen", "jurgen"), ("Ngozi", "ngozi"),
    ("Mia", "mia"), ("Lucas", "lucas"), ("Sofía", "sofia"), ("Hana", "hana"),
)
LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("O'Brien-Łukasz", "obrien"), ("山田", "yamada"), ("Müller", "muller"), ("García", "garcia"),
    ("Ødegaard", "odegaard"), ("Nowak", "nowak"), ("Smith", "smith"), ("Nguyễn", "nguyen"),
    ("Иванова", "ivanova"), ("Παπαδόπουλος", "papadopoulos"), ("Dvořák", "dvorak"),
    ("Ó Súilleabháin", "osullivan"), ("Żółkiewski", "zolkiewski"), ("佐藤", "sato"),
    ("김", "kim"), ("Johnson", "johnson"), ("Brown", "brown"), ("Rossi", "rossi"),
    ("Dubois", "dubois"), ("Silva", "silva"), ("Kowalczyk", "kowalczyk"),
    ("Andersson", "andersson"), ("Patel", "patel"), ("Okafor", "okafor"), ("Cohen", "cohen"),
    ("Haddad", "haddad"), ("van der Berg", "vanderberg"), ("Lefèvre", "lefevre"),
    ("Šimić", "simic"), ("Yılmaz", "yilmaz"), ("Fernández", "fernandez"), ("王 Wang", "wang"),
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "acme-robotics.example", "mail.example")
UNICODE_EMAIL_DOMAINS = ("bücher.example", "例え.jp")
ORGANIZATION_NAME_HEADS: tuple[tuple[str, str], ...] = (
    ("Acme", "acme"), ("Zoë's", "zoes"), ("Łódź", "lodz"), ("山田", "yamada"), ("Ñandú", "nandu"),
    ("Müller &", "muller"), ("Nordlys", "nordlys"), ("Σ Sigma", "sigma"), ("🚀 Rocket", "rocket"),
    ("Café", "cafe"), ("Blue", "blue"), ("Quantum", "quantum"), ("Северный", "severny"),
    ("Kiwi", "kiwi"), ("Orbit", "orbit"), ("Żółw", "zolw"),
)
ORGANIZATION_NAME_TAILS: tuple[tuple[str, str], ...] = (
    ("Robotics", "robotics"), ("Café", "cafe"), ("Labs", "labs"), ("株式会社", "kk"),
    ("Analytics", "analytics"), ("Söhne", "sohne"), ("Team", "team"), ("Studio", "studio"),
    ("Collective", "collective"), ("GmbH", "gmbh"), ("Ventures", "ventures"), ("Works", "works"),
)

# Metadata pools, as JSON text: pasted into templates, parsed when a dict is wanted.
USER_PUBLIC_METADATA = (
    "{}", "{}", "{}", "{}", '{"role":"engineer"}', '{"plan":"pro","seats":5}',
    '{"tags":["α","β"],"mood":"🎉"}', '{"nickname":"Zoë 🦄"}',
    '{"onboarded":true,"score":4.5}', '{"nested":{"a":[1,2,{"b":null}]}}',
)
USER_UNSAFE_METADATA = ("{}", "{}", "{}", '{"theme":"dark"}', '{"emoji":"🚀✨"}')
ORGANIZATION_PUBLIC_METADATA = (
    "{}", "{}", '{"plan":"team"}', '{"plan":"enterprise","region":"eu"}', '{"motto":"Ça va 👍"}',
)
MEMBERSHIP_PUBLIC_METADATA = ("{}", "{}", "{}", "{}", '{"title":"Tech Lead"}', '{"team":"🛠 Platform"}')

# Roles drawn for members other than the creator: (upper bound of a draw out of 100, role).
_ROLE_DRAW: tuple[tuple[int, str], ...] = (
    (12, "org:admin"), (82, "org:member"), (90, "org:billing_manager"), (96, "org:viewer"),
    (98, "admin"), (100, "basic_member"),
)
_ROLE_BOUNDS = np.array([bound for bound, _ in _ROLE_DRAW])
_DRAWN_ROLES = np.array([role for _, role in _ROLE_DRAW])

# The instance's permissions: Clerk's system ones (``org:sys_…``, type ``system``) and the
# application's own (type ``user``). (key, name, description)
SYSTEM_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("org:sys_profile:manage", "Manage organization", "Permission to manage an organization."),
    ("org:sys_profile:delete", "Delete organization", "Permission to delete an organization."),
    ("org:sys_memberships:read", "Read members", "Permission to read the members of an organization."),
    ("org:sys_memberships:manage", "Manage members", "Permission to manage the members of an organization."),
    ("org:sys_domains:read", "Read domains", "Permission to read the domains of an organization."),
    ("org:sys_domains:manage", "Manage domains", "Permission to manage the domains of an organization."),
)
CUSTOM_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("org:billing:manage", "Manage billing", "Change the plan and the payment method."),
    ("org:invoices:read", "Read invoices", "See every invoice — Rechnungen, 請求書."),
    ("org:invoices:write", "Write invoices", "Issue and void invoices."),
    ("org:reports:read", "Read reports", "Open the dashboards 📊."),
)
ADMIN_PERMISSIONS = ("org:sys_profile:manage", "org:sys_memberships:read", "org:sys_memberships:manage")
# The instance's roles, oldest first: (key, name, description, is_creator_eligible, permission keys).
# Legacy keys (``admin``, ``basic_member``: instances from before custom roles) are roles
# of their own, so every membership's role is one the role list shows; org:accountant
# is held by no generated member.
GENERATED_ROLES: tuple[tuple[str, str, str | None, bool, tuple[str, ...]], ...] = (
    ("org:admin", "Admin", "Role with elevated permissions to manage the organization.", True, ADMIN_PERMISSIONS),
    ("org:member", "Member", "Role with access to the organization's resources.", False, ("org:sys_memberships:read",)),
    ("admin", "Admin", None, False, ADMIN_PERMISSIONS),
    ("basic_member", "Member", None, False, ("org:sys_memberships:read",)),
    ("org:billing_manager", "Billing Manager", "Pays the bills.", False, ("org:sys_memberships:read", "org:billing:manage")),
    ("org:viewer", "Viewer", "Looks, never touches.", False, ()),
    ("org:accountant", "Accountant", "Keeps the books — Buchhaltung.", False,
     ("org:invoices:read", "org:invoices:write", "org:reports:read")),
)
_DAY_MS = 24 * 3600 * 1000
INVITATION_EXPIRY_MS = 30 * _DAY_MS  # "By default, the invitation has a 30 days expire."
INVITED_ORGANIZATION_SHARE, INVITATIONS_PER_ORGANIZATION_MAX = 0.35, 4  # 1..4 on 35 % of organizations
DOMAIN_ORGANIZATION_SHARE, DOMAINS_PER_ORGANIZATION_MAX = 0.2, 2
# Invitation statuses: (upper bound of a draw out of 100, status); roles invited to, likewise.
_INVITATION_STATUS_DRAW = ((45, "accepted"), (70, "pending"), (88, "revoked"), (100, "expired"))
_INVITATION_ROLE_DRAW = ((80, "org:member"), (92, "org:admin"), (100, "org:billing_manager"))
INVITATION_PUBLIC_METADATA = ("{}", "{}", "{}", '{"source":"onboarding"}', '{"team":"🛠 Platform"}')

_EXPIRES = "<expire_at>"


def _verification(**fields: Any) -> str:
    """A verification as JSON text for ``str.format``; ``expire_at=_EXPIRES`` leaves an {expire_at} slot."""
    text = json.dumps(fields, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
    return text.replace(f'"{_EXPIRES}"', "{expire_at}")


# E-mail verifications: (upper bound of a draw out of 100, JSON template, linked to a
# Google account). Templates, not dicts, because they are pasted into the user's text.
_EMAIL_VERIFICATIONS: tuple[tuple[int, str, bool], ...] = (
    (55, _verification(object="verification_otp", status="verified", strategy="email_code",
                       attempts=1, expire_at=_EXPIRES), False),
    # Real payloads sometimes leave out verification.object (as user.json shows)...
    (63, _verification(status="verified", strategy="from_oauth_google", attempts=None, expire_at=None), True),
    (70, _verification(object="verification_from_oauth", status="verified", strategy="from_oauth_google",
                       attempts=None, expire_at=None), True),
    (78, _verification(object="verification_admin", status="verified", strategy="admin",
                       attempts=None, expire_at=None), False),
    (82, _verification(object="verification_ticket", status="verified", strategy="ticket",
                       attempts=None, expire_at=None), False),
    (92, _verification(object="verification_otp", status="unverified", strategy="email_code",
                       attempts=0, expire_at=_EXPIRES), False),
    (95, _verification(object="verification_email_link", status="expired", strategy="email_link",
                       attempts=0, expire_at=_EXPIRES), False),
    # ...and carry variants nobody has documented yet (as user_sparse.json shows).
    (97, _verification(object="verification_future_variant", status="unverified", strategy="email_link"), False),
    (99, _verification(object="verification_otp", status="failed", strategy="email_code",
                       attempts=3, expire_at=_EXPIRES), False),
    (100, "null", False),
)
_VERIFICATION_BOUNDS = np.array([bound for bound, _, _ in _EMAIL_VERIFICATIONS])
_LINKED_VERIFICATION = np.array([linked for _, _, linked in _EMAIL_VERIFICATIONS])
_OTP_EXPIRY_MS = 600_000
VERIFICATION_CODE_EXPIRY_MS = _OTP_EXPIRY_MS


def _quoted(text: str | None) -> str:
    """A JSON string of ``text`` as is: the templates only paste text that needs no escaping
    (names and domains from the pools above, ids, digits; a test holds the pools to it)."""
    return "null" if text is None else f'"{text}"'


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of each value (uint64 arithmetic wraps, as intended)."""
    values = values + np.uint64(0x9E3779B97F4A7C15)
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _salt(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# The fields drawn for each kind of object: each is an independent stream of draws.
_EMAIL_FIELDS = ("created_at", "style", "domain", "unicode_domain", "verification")
_FIELDS: dict[str, tuple[str, ...]] = {
    "user": (
        "changed", "updated_at", "profile", "signed_in", "has_phone", "first_name", "last_name", "nameless",
        "username", "no_primary_email", "newest_is_primary", "phone_is_primary", "phone_verified", "has_image",
        "password_enabled", "last_sign_in_at", "last_active_at", "public_metadata", "private_metadata",
        "unsafe_metadata", "external_id", "banned", "locked",
        *(f"email{slot}.{field}" for slot in range(3) for field in _EMAIL_FIELDS),
    ),
    "organization": (
        "changed", "updated_at", "name_head", "name_tail", "has_image", "has_pending", "pending",
        "admin_delete_enabled", "public_metadata", "private_metadata",
    ),
    "membership": ("changed", "updated_at", "role", "public_metadata"),
    "invitation": ("status", "role", "updated_at", "email_style", "email_domain", "dashboard", "public_metadata",
                   "private_metadata"),
    "domain": ("name", "enrollment_mode", "verification", "ownership", "changed", "updated_at", "pending"),
}


@functools.lru_cache(maxsize=None)
def _field_salts(seed: int, kind: str) -> tuple[np.uint64, np.ndarray, dict[str, int]]:
    """The salt of a kind, the salts of its fields (in ``_FIELDS`` order), and each field's column."""
    fields = _FIELDS[kind]
    salts = np.array([_salt(seed, kind, field) for field in fields], dtype=np.uint64)
    return np.uint64(_salt(seed, kind)), salts, {field: column for column, field in enumerate(fields)}


class _Draws:
    """Deterministic random draws for a batch of indices: one independent stream per field.

    All of a kind's streams are hashed at once, as one (indices x fields) array: numpy's
    cost per call, not per element, is what dominates small batches (a single GET).
    """

    def __init__(self, seed: int, kind: str, indices: np.ndarray) -> None:
        kind_salt, field_salts, self._columns = _field_salts(seed, kind)
        base = _splitmix64(indices.astype(np.uint64) ^ kind_salt)
        self._streams = _splitmix64(base[:, None] ^ field_salts[None, :])

    def _stream(self, field: str) -> np.ndarray:
        return self._streams[:, self._columns[field]]

    def roll(self, field: str, sides: int) -> np.ndarray:
        """A number in [0, sides) per index."""
        return (self._stream(field) % np.uint64(sides)).astype(np.int64)

    def chance(self, field: str, per_thousand: int) -> np.ndarray:
        return self.roll(field, 1000) < per_thousand

    def between(self, field: str, low: np.ndarray, high: np.ndarray | int) -> np.ndarray:
        """A number in [low, high] per index."""
        span = (np.maximum(high - low, 0) + 1).astype(np.uint64)
        return low + (self._stream(field) % span).astype(np.int64)

    def updated_at(self, created_at: np.ndarray, per_thousand_changed: int) -> np.ndarray:
        """Creation time for objects never changed since, a later time for the others."""
        changed_at = self.between("updated_at", created_at, GENERATED_UNTIL_MS - 1)
        return np.where(self.chance("changed", per_thousand_changed), changed_at, created_at)


def _creation_times(indices: np.ndarray, count: int, start_ms: int, seed: int) -> np.ndarray:
    """Creation time of items ``indices`` of ``count``: evenly spread, jittered, strictly increasing.

    The jitter stays below the step, so order by time is order by index.
    """
    step = max((GENERATED_UNTIL_MS - start_ms) // max(count, 1), 1)
    return start_ms + indices * step + (indices * 2_654_435_761 + seed * 97) % step


def _user_creation_times(indices: np.ndarray, count: int, seed: int, crowd: range) -> np.ndarray:
    """Creation time of users ``indices``; those in ``crowd`` all take the crowd's first time.

    A bulk import creates thousands of users within one millisecond: the crowd is such a
    run, so order by time is still order by index, only no longer strictly.
    """
    times = _creation_times(indices, count, GENERATED_FROM_MS, seed)
    if len(crowd):
        crowd_time = _creation_times(np.int64(crowd.start), count, GENERATED_FROM_MS, seed)
        times = np.where((indices >= crowd.start) & (indices < crowd.stop), crowd_time, times)
    return times


@dataclass
class MembershipLayout:
    """Who belongs to which organization, for the generated memberships.

    Memberships are numbered by position, grouped by organization (organization ``k``
    owns positions ``org_offsets[k]:org_offsets[k+1]``), and within an organization in
    join order; the first member of a non-empty organization is its creator (an admin).
    User ``u``'s memberships are ``positions_by_user[user_offsets[u]:user_offsets[u+1]]``.
    """

    organization_of: np.ndarray  # int32, per membership position
    user_of: np.ndarray  # int32, per membership position
    created_at: np.ndarray  # int64 epoch ms, per membership position
    org_offsets: np.ndarray  # int64, one per organization, plus one
    positions_by_user: np.ndarray  # int32
    user_offsets: np.ndarray  # int64, one per user, plus one

    @property
    def count(self) -> int:
        return len(self.organization_of)

    @classmethod
    def build(
        cls, seed: int, user_count: int, organization_count: int, user_crowd: range = range(0)
    ) -> MembershipLayout:
        rng = np.random.default_rng([seed, 0x6D656D62])
        org_index = np.arange(organization_count, dtype=np.int64)
        org_created = _creation_times(org_index, organization_count, ORGANIZATIONS_FROM_MS, seed)
        user_created = _user_creation_times(np.arange(user_count, dtype=np.int64), user_count, seed, user_crowd)

        sizes = np.zeros(organization_count, dtype=np.int64)
        non_empty = (rng.random(organization_count) >= EMPTY_ORGANIZATION_SHARE) & (user_count > 0)
        if non_empty.any():
            # About one membership per user: log-normal sizes (mostly a few members, a
            # long tail of big organizations) around that mean, never more than all users.
            mean_size = max(user_count / non_empty.sum(), 1.0)
            drawn = rng.lognormal(np.log(mean_size) - 0.5, 1.0, organization_count)
            sizes[non_empty] = np.clip(np.rint(drawn[non_empty]), 1, user_count).astype(np.int64)
        total = int(sizes.sum())

        organization_of = np.repeat(org_index, sizes)
        user_of = rng.integers(0, max(user_count, 1), size=total, dtype=np.int64)
        block_starts = np.cumsum(sizes) - sizes
        # The creator heads each block and is a user who existed when the organization was made.
        existing_users = np.maximum(np.searchsorted(user_created, org_created, side="right"), 1)
        creators = (rng.random(organization_count) * existing_users).astype(np.int64)
        user_of[block_starts[non_empty]] = creators[non_empty]
        joined = np.maximum(user_created[user_of], org_created[organization_of])
        joined = joined + rng.integers(0, MEMBERSHIP_JOIN_DELAY_MS, size=total, dtype=np.int64)
        joined[block_starts[non_empty]] = org_created[non_empty]
        joined = np.minimum(joined, GENERATED_UNTIL_MS - 1)

        # A user is in an organization at most once: keep the first draw (the creator wins).
        first_draws = np.unique(organization_of * max(user_count, 1) + user_of, return_index=True)[1]
        keep = np.zeros(total, dtype=bool)
        keep[first_draws] = True
        organization_of, user_of, joined = organization_of[keep], user_of[keep], joined[keep]
        # Members in join order within each organization (lexsort is stable: creator first).
        order = np.lexsort((joined, organization_of))
        organization_of, user_of, joined = organization_of[order], user_of[order], joined[order]

        per_org = np.bincount(organization_of, minlength=organization_count)
        per_user = np.bincount(user_of, minlength=user_count)
        return cls(
            organization_of=organization_of.astype(np.int32),
            user_of=user_of.astype(np.int32),
            created_at=joined.astype(np.int64),
            org_offsets=np.concatenate(([0], np.cumsum(per_org))).astype(np.int64),
            positions_by_user=np.argsort(user_of, kind="stable").astype(np.int32),
            user_offsets=np.concatenate(([0], np.cumsum(per_user))).astype(np.int64),
        )

    def positions_of_organization(self, organization_index: int) -> range:
        return range(int(self.org_offsets[organization_index]), int(self.org_offsets[organization_index + 1]))

    def positions_of_user(self, user_index: int) -> list[int]:
        start, end = self.user_offsets[user_index], self.user_offsets[user_index + 1]
        return self.positions_by_user[start:end].tolist()


@dataclass
class OwnedLayout:
    """Objects each owned by one organization (invitations, domains), grouped by organization.

    Organization ``k`` owns positions ``org_offsets[k]:org_offsets[k+1]``, in creation
    order; each created a while after its organization.
    """

    organization_of: np.ndarray  # int32, per position
    created_at: np.ndarray  # int64 epoch ms, per position
    org_offsets: np.ndarray  # int64, one per organization, plus one

    @property
    def count(self) -> int:
        return len(self.organization_of)

    @classmethod
    def build(cls, seed: int, kind: str, organization_count: int, share: float, most: int) -> OwnedLayout:
        rng = np.random.default_rng([seed, _salt(kind) & 0xFFFFFFFF])
        org_index = np.arange(organization_count, dtype=np.int64)
        org_created = _creation_times(org_index, organization_count, ORGANIZATIONS_FROM_MS, seed)
        sizes = np.where(rng.random(organization_count) < share, rng.integers(1, most + 1, organization_count), 0)
        organization_of = np.repeat(org_index, sizes)
        start = org_created[organization_of]
        created = start + (rng.random(len(organization_of)) * (GENERATED_UNTIL_MS - 1 - start)).astype(np.int64)
        order = np.lexsort((created, organization_of))
        return cls(
            organization_of=organization_of[order].astype(np.int32),
            created_at=created[order].astype(np.int64),
            org_offsets=np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        )

    def positions_of_organization(self, organization_index: int) -> range:
        return range(int(self.org_offsets[organization_index]), int(self.org_offsets[organization_index + 1]))


def _drawn(table: tuple[tuple[int, str], ...], draws: np.ndarray) -> list[str]:
    """The entries of a (upper bound out of 100, value) table that draws out of 100 fall on."""
    bounds = np.array([bound for bound, _ in table])
    values = [value for _, value in table]
    return [values[k] for k in np.searchsorted(bounds, draws, side="right").tolist()]


class UserProfile(NamedTuple):
    """What memberships embed about a user, and what queries filter on; cheaper than the user."""

    public_user_data_json: str
    facts: UserFacts


class GeneratedUser(NamedTuple):
    json: str  # the user object, compact JSON text
    public_user_data_json: str
    facts: UserFacts


class GeneratedOrganization(NamedTuple):
    """An organization's JSON text, split where ``members_count`` goes (when asked for)."""

    json_head: str
    json_tail: str
    facts: OrganizationFacts

    def json(self, members_count: int | None) -> str:
        if members_count is None:
            return self.json_head + self.json_tail
        return f'{self.json_head}"members_count":{members_count},{self.json_tail}'


class _UserDraw(NamedTuple):
    """Every random choice about one user (columns of :meth:`DataGenerator.users`, one row)."""

    index: int
    id: str
    created_at: int
    updated_at: int
    first: int
    last: int
    nameless: bool
    has_username: bool
    email_count: int
    no_primary_email: bool
    newest_is_primary: bool
    has_phone: bool
    phone_is_primary: bool
    phone_id: str | None
    phone_verified: bool
    has_image: bool
    password_enabled: bool
    last_sign_in_at: int  # -1: never
    last_active_at: int  # -1: never
    public_metadata: int
    private_metadata: int
    unsafe_metadata: int
    has_external_id: bool
    banned: bool
    locked: bool


class _EmailDraw(NamedTuple):
    """Every random choice about one of a user's e-mail addresses."""

    slot: int
    style: int
    domain: int
    unicode_domain: int
    verification: int
    created_at: int
    id: str | None  # None where the user has no such address
    oauth_id: str | None


_Row = TypeVar("_Row", bound=tuple)


class _UserEssentials(NamedTuple):
    """Derived from a user's draws; what its text, public data and facts share."""

    facts: UserFacts
    image_url: str
    has_image: bool
    identifier: str  # what a membership shows for the member
    primary_email_slot: int | None


def _rows(row_type: type[_Row], columns: dict[str, np.ndarray | list[str]]) -> list[_Row]:
    """Turn named columns (numpy arrays or lists) into a list of ``row_type`` rows."""
    as_lists = [
        columns[name].tolist() if isinstance(columns[name], np.ndarray) else columns[name] for name in row_type._fields
    ]
    return [row_type._make(values) for values in zip(*as_lists)]


class DataGenerator:
    """Builds generated objects by index, in batches; holds nothing per object but the layout."""

    def __init__(
        self, seed: int, user_count: int, organization_count: int, *, users_in_one_millisecond: int = 0
    ) -> None:
        """``users_in_one_millisecond``: that many users, a run in the middle of creation
        order, share one ``created_at`` (as a bulk import makes); see :attr:`user_crowd`."""
        if user_count < 0 or organization_count < 0:
            raise ValueError("user and organization counts must be >= 0")
        if not 0 <= users_in_one_millisecond <= user_count:
            raise ValueError("users_in_one_millisecond must be between 0 and the number of users")
        crowd_start = (user_count - users_in_one_millisecond) // 2
        self.user_crowd = range(crowd_start, crowd_start + users_in_one_millisecond)
        self.seed = seed
        self.user_count = user_count
        self.organization_count = organization_count
        self.user_ids = IdCodec("user_", seed)
        self.organization_ids = IdCodec("org_", seed)
        self.membership_ids = IdCodec("orgmem_", seed)
        self._email_ids = IdCodec("idn_", seed, family="email")
        self._phone_ids = IdCodec("idn_", seed, family="phone")
        self._oauth_ids = IdCodec("idn_", seed, family="oauth")
        self.instance_id = IdCodec("ins_", seed).encode(0, GENERATED_FROM_MS)
        self.memberships = MembershipLayout.build(seed, user_count, organization_count, self.user_crowd)
        self.role_ids = IdCodec("role_", seed)
        self.permission_ids = IdCodec("perm_", seed)
        self.invitation_ids = IdCodec("orginv_", seed)
        self.domain_ids = IdCodec("orgdmn_", seed)
        self.invitations = OwnedLayout.build(
            seed, "invitation", organization_count, INVITED_ORGANIZATION_SHARE, INVITATIONS_PER_ORGANIZATION_MAX
        )
        self.domains = OwnedLayout.build(
            seed, "domain", organization_count, DOMAIN_ORGANIZATION_SHARE, DOMAINS_PER_ORGANIZATION_MAX
        )

    # -- times and ids, one at a time ---------------------------------------------------

    def user_created_at(self, index: int) -> int:
        return int(_user_creation_times(np.int64(index), self.user_count, self.seed, self.user_crowd))

    def organization_created_at(self, index: int) -> int:
        return int(_creation_times(np.int64(index), self.organization_count, ORGANIZATIONS_FROM_MS, self.seed))

    def user_id(self, index: int) -> str:
        return self.user_ids.encode(index, self.user_created_at(index))

    def organization_id(self, index: int) -> str:
        return self.organization_ids.encode(index, self.organization_created_at(index))

    def membership_id(self, position: int) -> str:
        return self.membership_ids.encode(position, int(self.memberships.created_at[position]))

    def user_index(self, user_id: str) -> int | None:
        index = self.user_ids.decode(user_id)
        if index is None or index >= self.user_count or self.user_id(index) != user_id:
            return None
        return index

    def organization_index(self, organization_id: str) -> int | None:
        index = self.organization_ids.decode(organization_id)
        if index is None or index >= self.organization_count or self.organization_id(index) != organization_id:
            return None
        return index

    def organization_index_for_slug(self, slug: str) -> int | None:
        """Generated slugs end in ``-<index>``; the caller checks the slug still matches."""
        tail = slug.rpartition("-")[2]
        if not tail.isdigit() or int(tail) >= self.organization_count:
            return None
        return int(tail)

    def membership_position(self, membership_id: str) -> int | None:
        position = self.membership_ids.decode(membership_id)
        if position is None or position >= self.memberships.count or self.membership_id(position) != membership_id:
            return None
        return position

    # -- objects, a batch at a time ------------------------------------------------------

    def users(self, indices: Sequence[int]) -> list[GeneratedUser]:
        """The users at ``indices``, rendered."""
        users = []
        for draw, email_draws in zip(*self._draw_users(indices, with_ids=True)):
            essentials = self._essentials(draw, email_draws)
            profile = self._profile(essentials)
            users.append(GeneratedUser(self._render_user(draw, email_draws, essentials), *profile))
        return users

    def user_profiles(self, indices: Sequence[int]) -> list[UserProfile]:
        """Public data and facts of the users at ``indices``, without rendering them."""
        return [self._profile(self._essentials(*drawn)) for drawn in zip(*self._draw_users(indices, with_ids=False))]

    def _draw_users(self, indices: Sequence[int], *, with_ids: bool) -> tuple[list[_UserDraw], list[list[_EmailDraw]]]:
        """Every random choice about the users at ``indices``, vectorised; one row per user.

        Without ``with_ids`` the ids of e-mail addresses and phone numbers are left out (None):
        spelling ids out is a good part of the cost, and only the rendered user shows them.
        """
        index = np.asarray(indices, dtype=np.int64)
        draws = _Draws(self.seed, "user", index)
        created = _user_creation_times(index, self.user_count, self.seed, self.user_crowd)
        times = self._user_times(draws, created)
        updated = times["updated_at"]
        profile = draws.roll("profile", 1000)
        email_count = np.select([profile < 40, profile < 90, profile < 250], [0, 3, 2], 1)
        has_phone = (email_count == 0) | draws.chance("has_phone", 150)
        columns = {
            "index": index,
            "id": self.user_ids.encode_many(index, created),
            "created_at": created,
            "updated_at": updated,
            "first": draws.roll("first_name", len(FIRST_NAMES)),
            "last": draws.roll("last_name", len(LAST_NAMES)),
            "nameless": draws.chance("nameless", 30),
            "has_username": draws.chance("username", 300),
            "email_count": email_count,
            # 1.5 % have addresses but no primary at all; of the rest most made the newest primary.
            "no_primary_email": draws.chance("no_primary_email", 15),
            "newest_is_primary": draws.chance("newest_is_primary", 800),
            "has_phone": has_phone,
            "phone_is_primary": (email_count == 0) | draws.chance("phone_is_primary", 300),
            "phone_id": self._phone_ids.encode_many(index, created, where=has_phone & with_ids),
            "phone_verified": draws.chance("phone_verified", 800),
            "has_image": draws.chance("has_image", 400),
            "password_enabled": draws.chance("password_enabled", 700),
            "last_sign_in_at": times["last_sign_in_at"],
            "last_active_at": times["last_active_at"],
            "public_metadata": draws.roll("public_metadata", len(USER_PUBLIC_METADATA)),
            "private_metadata": draws.roll("private_metadata", 10),
            "unsafe_metadata": draws.roll("unsafe_metadata", len(USER_UNSAFE_METADATA)),
            "has_external_id": draws.chance("external_id", 200),
            "banned": draws.chance("banned", 10),
            "locked": draws.chance("locked", 5),
        }
        slots = [
            _rows(_EmailDraw, self._email_columns(draws, index, slot, email_count > slot, with_ids, created, updated))
            for slot in range(3)
        ]
        user_draws = _rows(_UserDraw, columns)
        return user_draws, [[slots[slot][k] for slot in range(draw.email_count)] for k, draw in enumerate(user_draws)]

    @staticmethod
    def _user_times(draws: _Draws, created: np.ndarray) -> dict[str, np.ndarray]:
        """The users' timestamps other than created_at (-1 where null: never signed in)."""
        updated = draws.updated_at(created, 600)
        signed_in = draws.chance("signed_in", 850)
        return {
            "updated_at": updated,
            "last_sign_in_at": np.where(signed_in, draws.between("last_sign_in_at", created, updated), -1),
            "last_active_at": np.where(signed_in, draws.between("last_active_at", created, GENERATED_UNTIL_MS - 1), -1),
        }

    def user_times(self, field: str, start: int, stop: int) -> np.ndarray:
        """``field`` (one of :data:`USER_TIME_FIELDS`) of users ``start..stop-1``; -1 where null.

        Vectorised, without building the users: enough to sort a million by it in a second.
        """
        index = np.arange(start, stop, dtype=np.int64)
        created = _user_creation_times(index, self.user_count, self.seed, self.user_crowd)
        return self._user_times(_Draws(self.seed, "user", index), created)[field]

    def _email_columns(
        self,
        draws: _Draws,
        index: np.ndarray,
        slot: int,
        exists: np.ndarray,
        with_ids: bool,
        created: np.ndarray,
        updated: np.ndarray,
    ) -> dict[str, np.ndarray | list[str | None]]:
        """Everything about each user's ``slot``-th e-mail address (ids only if wanted and it ``exists``)."""
        added = created if slot == 0 else draws.between(f"email{slot}.created_at", created, updated)
        verification = np.searchsorted(_VERIFICATION_BOUNDS, draws.roll(f"email{slot}.verification", 100), side="right")
        with_id = exists & with_ids
        linked = with_id & _LINKED_VERIFICATION[verification]
        return {
            "slot": np.full(len(index), slot),
            "style": draws.roll(f"email{slot}.style", 100),
            "domain": draws.roll(f"email{slot}.domain", len(EMAIL_DOMAINS)),
            "unicode_domain": draws.roll(f"email{slot}.unicode_domain", len(UNICODE_EMAIL_DOMAINS)),
            "verification": verification,
            "created_at": added,
            "id": self._email_ids.encode_many(index * 8 + slot, added, where=with_id),
            "oauth_id": self._oauth_ids.encode_many(index * 8 + slot, added, where=linked),
        }

    @staticmethod
    def _email_address(draw: _EmailDraw, index: int, first: tuple[str, str], last: tuple[str, str]) -> str:
        if draw.style < 3:  # internationalised: Unicode local part and domain
            return f"{first[0].lower()}.{index}.{draw.slot}@{UNICODE_EMAIL_DOMAINS[draw.unicode_domain]}"
        if draw.style < 8:  # mixed case, as people type it
            return f"{first[1].title()}.{last[1].title()}{index}.{draw.slot}@Acme-Robotics.example"
        if draw.slot == 0:
            return f"{first[1]}.{last[1]}.{index}@{EMAIL_DOMAINS[draw.domain]}"
        return f"{first[1]}{index}.{draw.slot}@old-domain.example"

    def _essentials(self, draw: _UserDraw, email_draws: list[_EmailDraw]) -> _UserEssentials:
        """The values a user's text, public data and facts are all made from."""
        index = draw.index
        first, last = FIRST_NAMES[draw.first], LAST_NAMES[draw.last]
        first_name, last_name = (None, None) if draw.nameless else (first[0], last[0])
        username = f"{first[1]}_{index}" if draw.has_username else None
        addresses = tuple(self._email_address(email, index, first, last) for email in email_draws)
        primary_slot = None
        if addresses and not draw.no_primary_email:
            primary_slot = len(addresses) - 1 if draw.newest_is_primary else 0
        primary_email = None if primary_slot is None else addresses[primary_slot]
        phone_numbers = (f"+1555{index:07d}",) if draw.has_phone else ()
        primary_phone = phone_numbers[0] if phone_numbers and draw.phone_is_primary else None
        facts = UserFacts(
            id=draw.id,
            email_addresses=addresses,
            primary_email_address=primary_email,
            phone_numbers=phone_numbers,
            username=username,
            first_name=first_name,
            last_name=last_name,
            external_id=f"legacy-{index}" if draw.has_external_id else None,
            created_at=draw.created_at,
            updated_at=draw.updated_at,
            last_active_at=draw.last_active_at if draw.last_active_at >= 0 else None,
            last_sign_in_at=draw.last_sign_in_at if draw.last_sign_in_at >= 0 else None,
        )
        return _UserEssentials(
            facts=facts,
            image_url=UPLOADED_IMAGE_URL.format(index) if draw.has_image else DEFAULT_IMAGE_URL,
            has_image=draw.has_image,
            identifier=primary_email or primary_phone or username or "",
            primary_email_slot=primary_slot,
        )

    @staticmethod
    def _profile(user: _UserEssentials) -> UserProfile:
        facts = user.facts
        public_user_data = (
            f'{{"user_id":"{facts.id}","first_name":{_quoted(facts.first_name)},"last_name":{_quoted(facts.last_name)},'
            f'"image_url":"{user.image_url}","has_image":{_boolean(user.has_image)},'
            f'"identifier":"{user.identifier}","username":{_quoted(facts.username)}}}'
        )
        return UserProfile(public_user_data, facts)

    @staticmethod
    def _render_user(draw: _UserDraw, email_draws: list[_EmailDraw], user: _UserEssentials) -> str:
        facts = user.facts
        email_texts = []
        for email, address in zip(email_draws, facts.email_addresses):
            _, verification_template, linked = _EMAIL_VERIFICATIONS[email.verification]
            linked_to = f'[{{"type":"oauth_google","id":"{email.oauth_id}"}}]' if linked else "[]"
            email_texts.append(
                f'{{"id":"{email.id}","object":"email_address","email_address":"{address}","reserved":false,'
                f'"verification":{verification_template.format(expire_at=email.created_at + _OTP_EXPIRY_MS)},'
                f'"linked_to":{linked_to},"matches_sso_connection":false,'
                f'"created_at":{email.created_at},"updated_at":{email.created_at}}}'
            )
        primary_email_id = None if user.primary_email_slot is None else email_draws[user.primary_email_slot].id
        phone_text = ""
        if facts.phone_numbers:
            verification = (
                f'{{"object":"verification_otp","status":"verified","strategy":"phone_code","attempts":1,'
                f'"expire_at":{draw.created_at + _OTP_EXPIRY_MS}}}'
                if draw.phone_verified
                else "null"
            )
            phone_text = (
                f'{{"id":"{draw.phone_id}","object":"phone_number","phone_number":"{facts.phone_numbers[0]}",'
                f'"reserved_for_second_factor":false,"default_second_factor":false,"reserved":false,'
                f'"verification":{verification},"linked_to":[],"backup_codes":null,'
                f'"created_at":{draw.created_at},"updated_at":{draw.created_at}}}'
            )
        primary_phone_id = draw.phone_id if facts.phone_numbers and draw.phone_is_primary else None
        private_metadata = (
            "null" if draw.private_metadata == 0
            else f'{{"stripe_customer":"cus_{draw.index:08d}"}}' if draw.private_metadata < 4
            else "{}"
        )
        return (
            f'{{"id":"{facts.id}","object":"user","username":{_quoted(facts.username)},'
            f'"first_name":{_quoted(facts.first_name)},"last_name":{_quoted(facts.last_name)},'
            f'"image_url":"{user.image_url}","has_image":{_boolean(user.has_image)},'
            f'"primary_email_address_id":{_quoted(primary_email_id)},'
            f'"primary_phone_number_id":{_quoted(primary_phone_id)},"primary_web3_wallet_id":null,'
            f'"password_enabled":{_boolean(draw.password_enabled)},'
            f'"two_factor_enabled":false,"totp_enabled":false,"backup_code_enabled":false,'
            f'"email_addresses":[{",".join(email_texts)}],"phone_numbers":[{phone_text}],'
            f'"web3_wallets":[],"passkeys":[],"external_accounts":[],"saml_accounts":[],"enterprise_accounts":[],'
            f'"public_metadata":{USER_PUBLIC_METADATA[draw.public_metadata]},'
            f'"private_metadata":{private_metadata},'
            f'"unsafe_metadata":{USER_UNSAFE_METADATA[draw.unsafe_metadata]},'
            f'"external_id":{_quoted(facts.external_id)},'
            f'"last_sign_in_at":{_number(facts.last_sign_in_at)},"last_active_at":{_number(facts.last_active_at)},'
            f'"banned":{_boolean(draw.banned)},"locked":{_boolean(draw.locked)},'
            f'"lockout_expires_in_seconds":null,"verification_attempts_remaining":100,'
            f'"created_at":{facts.created_at},"updated_at":{facts.updated_at},'
            f'"delete_self_enabled":true,"create_organization_enabled":true,"legal_accepted_at":null}}'
        )

    def organizations(self, indices: Sequence[int]) -> list[GeneratedOrganization]:
        index = np.asarray(indices, dtype=np.int64)
        draws = _Draws(self.seed, "organization", index)
        created = _creation_times(index, self.organization_count, ORGANIZATIONS_FROM_MS, self.seed)
        updated = draws.updated_at(created, 500)
        ids = self.organization_ids.encode_many(index, created)
        layout = self.memberships
        first_member = layout.org_offsets[index]
        has_members = layout.org_offsets[index + 1] > first_member
        creators = np.zeros(len(index), dtype=np.int64)  # empty organizations have none
        creators[has_members] = layout.user_of[first_member[has_members]]
        creator_created = _user_creation_times(creators, self.user_count, self.seed, self.user_crowd)
        created_by = self.user_ids.encode_many(creators, creator_created, where=has_members)

        heads = draws.roll("name_head", len(ORGANIZATION_NAME_HEADS)).tolist()
        tails = draws.roll("name_tail", len(ORGANIZATION_NAME_TAILS)).tolist()
        has_image = draws.chance("has_image", 300).tolist()
        pending = np.where(draws.chance("has_pending", 100), draws.roll("pending", 4), 0).tolist()
        admin_delete = draws.chance("admin_delete_enabled", 900).tolist()
        public = draws.roll("public_metadata", len(ORGANIZATION_PUBLIC_METADATA)).tolist()
        has_crm_id = draws.chance("private_metadata", 400).tolist()
        result = []
        rows = zip(index.tolist(), ids, created.tolist(), updated.tolist())
        for k, (i, org_id, created_at, updated_at) in enumerate(rows):
            head, tail = ORGANIZATION_NAME_HEADS[heads[k]], ORGANIZATION_NAME_TAILS[tails[k]]
            name, slug = f"{head[0]} {tail[0]}", f"{head[1]}-{tail[1]}-{i}"
            image_url = UPLOADED_IMAGE_URL.format(f"org{i}") if has_image[k] else DEFAULT_IMAGE_URL
            private_metadata = f'{{"crm_id":{i}}}' if has_crm_id[k] else "{}"
            json_head = (
                f'{{"object":"organization","id":"{org_id}","name":"{name}","slug":"{slug}",'
                f'"image_url":"{image_url}","has_image":{_boolean(has_image[k])},'
            )
            json_tail = (
                f'"pending_invitations_count":{pending[k]},"max_allowed_memberships":0,'
                f'"admin_delete_enabled":{_boolean(admin_delete[k])},'
                f'"public_metadata":{ORGANIZATION_PUBLIC_METADATA[public[k]]},'
                f'"private_metadata":{private_metadata},'
                f'"created_by":{_quoted(created_by[k])},"created_at":{created_at},"updated_at":{updated_at}}}'
            )
            facts = OrganizationFacts(org_id, name, slug, created_at)
            result.append(GeneratedOrganization(json_head, json_tail, facts))
        return result

    def membership_records(self, positions: Sequence[int]) -> list[MembershipRecord]:
        position = np.asarray(positions, dtype=np.int64)
        layout = self.memberships
        draws = _Draws(self.seed, "membership", position)
        organization = layout.organization_of[position].astype(np.int64)
        is_creator = position == layout.org_offsets[organization]
        drawn_role = _DRAWN_ROLES[np.searchsorted(_ROLE_BOUNDS, draws.roll("role", 100), side="right")]
        created = layout.created_at[position]
        columns = zip(
            self.membership_ids.encode_many(position, created),
            organization.tolist(),
            layout.user_of[position].tolist(),
            np.where(is_creator, "org:admin", drawn_role).tolist(),
            draws.roll("public_metadata", len(MEMBERSHIP_PUBLIC_METADATA)).tolist(),
            created.tolist(),
            draws.updated_at(created, 150).tolist(),
        )
        return [
            MembershipRecord(
                id=membership_id,
                organization_position=organization,
                user_position=user,
                role=role,
                public_metadata=json.loads(MEMBERSHIP_PUBLIC_METADATA[public_metadata]),
                private_metadata={},
                created_at=created_at,
                updated_at=updated_at,
            )
            for membership_id, organization, user, role, public_metadata, created_at, updated_at in columns
        ]

    def membership_role_keys(self, positions: np.ndarray) -> np.ndarray:
        """The role key of each generated membership at ``positions`` (as :meth:`membership_records`), vectorised."""
        position = np.asarray(positions, dtype=np.int64)
        layout = self.memberships
        draws = _Draws(self.seed, "membership", position)
        is_creator = position == layout.org_offsets[layout.organization_of[position].astype(np.int64)]
        drawn_role = _DRAWN_ROLES[np.searchsorted(_ROLE_BOUNDS, draws.roll("role", 100), side="right")]
        return np.where(is_creator, "org:admin", drawn_role)

    # -- roles and permissions: the instance's few, made once ------------------------------

    def permissions(self) -> list[PermissionRecord]:
        """System permissions first (when the instance was made), then the application's (later)."""
        made = []
        catalog = [(entry, "system") for entry in SYSTEM_PERMISSIONS] + [(entry, "user") for entry in CUSTOM_PERMISSIONS]
        for index, ((key, name, description), kind) in enumerate(catalog):
            created = GENERATED_FROM_MS - _DAY_MS + index if kind == "system" else GENERATED_FROM_MS + index * 7 * _DAY_MS
            made.append(PermissionRecord(
                self.permission_ids.encode(index, created), key, name, description, kind, created, created
            ))
        return made

    def roles(self, permission_ids_by_key: dict[str, str]) -> list[RoleRecord]:
        made = []
        for index, (key, name, description, creator_eligible, permission_keys) in enumerate(GENERATED_ROLES):
            created = GENERATED_FROM_MS - _DAY_MS + 100 + index if index < 4 else GENERATED_FROM_MS + index * 30 * _DAY_MS
            made.append(RoleRecord(
                self.role_ids.encode(index, created), key, name, description, creator_eligible,
                [permission_ids_by_key[k] for k in permission_keys], created, created,
            ))
        return made

    # -- invitations and domains, a batch at a time -----------------------------------------

    def _creator_positions(self, organizations: np.ndarray) -> list[int | None]:
        layout = self.memberships
        first = layout.org_offsets[organizations]
        has_members = layout.org_offsets[organizations + 1] > first
        creators = layout.user_of[np.where(has_members, first, 0)] if layout.count else np.zeros(len(first), int)
        return [int(c) if has else None for c, has in zip(creators.tolist(), has_members.tolist())]

    def invitation_records(self, positions: Sequence[int]) -> list[InvitationRecord]:
        position = np.asarray(positions, dtype=np.int64)
        layout = self.invitations
        draws = _Draws(self.seed, "invitation", position)
        organization = layout.organization_of[position].astype(np.int64)
        created = layout.created_at[position]
        expires = created + INVITATION_EXPIRY_MS
        statuses = _drawn(_INVITATION_STATUS_DRAW, draws.roll("status", 100))
        settled = draws.between("updated_at", created, np.minimum(expires, GENERATED_UNTIL_MS - 1))
        columns = zip(
            position.tolist(), self.invitation_ids.encode_many(position, created), organization.tolist(),
            self._creator_positions(organization), draws.chance("dashboard", 200).tolist(),
            statuses, _drawn(_INVITATION_ROLE_DRAW, draws.roll("role", 100)),
            draws.roll("email_style", 10).tolist(), draws.roll("email_domain", len(EMAIL_DOMAINS)).tolist(),
            draws.roll("public_metadata", len(INVITATION_PUBLIC_METADATA)).tolist(),
            draws.chance("private_metadata", 300).tolist(), created.tolist(), expires.tolist(), settled.tolist(),
        )
        made = []
        for (p, invitation_id, org, creator, from_dashboard, status, role, style, domain, public, private,
             created_at, expires_at, settled_at) in columns:
            if style == 0:  # internationalised, as people are
                email = f"zoë.invitee{p}@{UNICODE_EMAIL_DOMAINS[p % len(UNICODE_EMAIL_DOMAINS)]}"
            elif style == 1:
                email = f"Invitee.{p}@Acme-Robotics.example"
            else:
                email = f"invitee{p}@{EMAIL_DOMAINS[domain]}"
            made.append(InvitationRecord(
                id=invitation_id,
                organization_position=org,
                inviter_position=None if from_dashboard else creator,
                email_address=email,
                role=role,
                status=status,
                public_metadata=json.loads(INVITATION_PUBLIC_METADATA[public]),
                private_metadata={"crm_lead": p} if private else {},
                url=f"https://accounts.example.com/accept-invitation?__clerk_ticket=inv{p}",
                expires_at=expires_at,
                created_at=created_at,
                updated_at=created_at if status == "pending" else settled_at,
            ))
        return made

    def domain_records(self, positions: Sequence[int]) -> list[DomainRecord]:
        position = np.asarray(positions, dtype=np.int64)
        layout = self.domains
        draws = _Draws(self.seed, "domain", position)
        organization = layout.organization_of[position].astype(np.int64)
        created = layout.created_at[position]
        updated = draws.updated_at(created, 300)
        columns = zip(
            position.tolist(), self.domain_ids.encode_many(position, created), organization.tolist(),
            draws.roll("name", len(ORGANIZATION_NAME_HEADS)).tolist(),
            draws.roll("enrollment_mode", len(DOMAIN_ENROLLMENT_MODES)).tolist(),
            draws.roll("verification", 10).tolist(), draws.chance("ownership", 300).tolist(),
            draws.roll("pending", 6).tolist(), created.tolist(), updated.tolist(),
        )
        made = []
        for p, domain_id, org, head, mode, verification, owned, pending, created_at, updated_at in columns:
            # Unique across the instance: the position is in the name; one head in 16 makes an IDN.
            name = f"例え{p}.jp" if head == 3 else f"{ORGANIZATION_NAME_HEADS[head][1]}-{p}.example"
            enrollment_mode = DOMAIN_ENROLLMENT_MODES[mode]
            affiliation = None
            if verification < 9:  # 7 in 10 verified by an e-mail code, 2 in 10 still unverified; 1 never tried
                affiliation = {
                    "status": "verified" if verification < 7 else "unverified",
                    "strategy": "email_code",
                    "attempts": 1 if verification < 7 else 0,
                    "expire_at": created_at + VERIFICATION_CODE_EXPIRY_MS,
                    "verified_at": None,
                }
            ownership = {
                "status": "verified", "strategy": "dns_txt", "attempts": 1, "expire_at": None,
                "verified_at": created_at + 3_600_000,
            } if owned else None
            made.append(DomainRecord(
                id=domain_id,
                organization_position=org,
                name=name,
                enrollment_mode=enrollment_mode,
                affiliation_email_address=None if affiliation is None else f"admin@{name}",
                verification=affiliation,
                ownership_verification=ownership,
                total_pending_invitations=pending if enrollment_mode == "automatic_invitation" else 0,
                total_pending_suggestions=pending if enrollment_mode == "automatic_suggestion" else 0,
                created_at=created_at,
                updated_at=updated_at,
            ))
        return made
