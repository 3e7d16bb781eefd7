"""The shape of the data as it walks through the pipeline: one place that names every column.

Clerk objects are normalized into one pandas frame per entity (``users``,
``organizations``, ``organization_memberships``). The mirror snapshot has the same
columns, read back from Postgres, so the diff compares like with like:

- text columns use pandas' ``string`` dtype (pyarrow-backed where available);
- Clerk timestamps stay epoch milliseconds (``Int64``) in frames: they round-trip
  exactly through ``timestamptz`` and compare without time-zone surprises;
- JSON columns (metadata, permissions, the raw object) are carried as *canonical JSON
  text* (:func:`canonical_json`), so two equal documents are equal strings;
- ``raw_digest`` is the md5 of the canonical raw object. The mirror stores it, which lets
  a sync tell whether anything at all changed without reading back every ``raw``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

USERS = "users"
ORGANIZATIONS = "organizations"
MEMBERSHIPS = "organization_memberships"
ENTITIES: tuple[str, ...] = (USERS, ORGANIZATIONS, MEMBERSHIPS)

TEXT = "string"
BOOL = "boolean"
MILLIS = "Int64"
INT = "Int32"  # distinct from MILLIS: kinds tell columns apart, not just dtypes
JSON = "json"  # canonical JSON text in frames, jsonb in Postgres

# Column -> kind, per entity, in the order the mirror tables declare them.
# These are the columns a sync compares; the mirror adds synced_at and deleted_at.
COLUMNS: dict[str, dict[str, str]] = {
    USERS: {
        "id": TEXT,
        "primary_email": TEXT,
        "first_name": TEXT,
        "last_name": TEXT,
        "username": TEXT,
        "image_url": TEXT,
        "external_id": TEXT,
        "banned": BOOL,
        "public_metadata": JSON,
        "private_metadata": JSON,
        "created_at": MILLIS,
        "updated_at": MILLIS,
        "raw": JSON,
        "raw_digest": TEXT,
    },
    ORGANIZATIONS: {
        "id": TEXT,
        "name": TEXT,
        "slug": TEXT,
        "image_url": TEXT,
        "members_count": INT,
        "created_by": TEXT,
        "public_metadata": JSON,
        "private_metadata": JSON,
        "created_at": MILLIS,
        "updated_at": MILLIS,
        "raw": JSON,
        "raw_digest": TEXT,
    },
    MEMBERSHIPS: {
        "id": TEXT,
        "organization_id": TEXT,
        "user_id": TEXT,
        "role": TEXT,
        "permissions": JSON,
        "created_at": MILLIS,
        "updated_at": MILLIS,
        "raw": JSON,
        "raw_digest": TEXT,
    },
}

# The mirror snapshot carries raw_digest but not raw itself (see module docstring),
# plus deleted_at (epoch ms, NA while the row is live).
MIRROR_ONLY_COLUMNS: dict[str, str] = {"deleted_at": MILLIS}


def compared_columns(entity: str) -> list[str]:
    """Columns whose difference makes a row 'changed' (raw is compared through raw_digest)."""
    return [c for c in COLUMNS[entity] if c not in ("id", "raw")]


def frame_dtype(kind: str) -> str:
    return TEXT if kind == JSON else kind


def empty_frame(entity: str, *, mirror: bool = False) -> pd.DataFrame:
    """A zero-row frame with the entity's columns and dtypes."""
    columns = dict(COLUMNS[entity])
    if mirror:
        columns.pop("raw")
        columns.update(MIRROR_ONLY_COLUMNS)
    return pd.DataFrame({c: pd.Series([], dtype=frame_dtype(k)) for c, k in columns.items()})


def conform(frame: pd.DataFrame, entity: str, *, mirror: bool = False) -> pd.DataFrame:
    """Return ``frame`` with exactly the entity's columns, in order, with the contract dtypes."""
    template = empty_frame(entity, mirror=mirror)
    out = pd.DataFrame(index=frame.index)
    for column, dtype in template.dtypes.items():
        values = frame[column] if column in frame.columns else pd.Series(pd.NA, index=frame.index)
        out[column] = values.astype(dtype)
    return out.reset_index(drop=True)


# canonical_json is the stdlib's ``json.dumps(value, sort_keys=True, separators=(",", ":"),
# ensure_ascii=False)``, computed by orjson where orjson provably writes the very same
# text (about 4x faster: this is most of what normalizing a million users costs):
# - strings: both escape only '"', '\\' and control characters, the same way (every
#   code point tested); keys sort by code point in both;
# - integers beyond 64 bits, lone surrogates, subclasses of str/int/dict/list, dataclasses
#   and datetimes make orjson raise: the stdlib then decides, as before;
# - finite floats: identical except below 1e-4 (the stdlib writes 1e-05, orjson 1e-5 or
#   0.00001); every such text holds a digit followed by "e-" or ".0000", and then the
#   stdlib writes it (so does any string holding such digits: slower, still exact).
# One deliberate difference: a non-finite float (NaN, ±Infinity, which json.loads makes of
# NaN, Infinity or 1e999) is written null. The stdlib wrote NaN/Infinity, which is not
# JSON and which Postgres' jsonb refuses, so such a row could never be mirrored before.
# sync_pipeline_tests/test_model.py holds both functions to the stdlib's text.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_STDLIB_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _orjson_text(value: Any) -> bytes | None:
    """orjson's canonical text when it is the stdlib's, else None."""
    try:
        text = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None
    return None if _may_hold_small_float(text) else text


def _may_hold_small_float(text: bytes) -> bool:
    """A digit followed by "e-" or ".0000": how orjson writes a float below 1e-4."""
    for needle in (b"e-", b".0000"):
        at = text.find(needle)
        while at > 0:
            if 48 <= text[at - 1] <= 57:
                return True
            at = text.find(needle, at + 1)
    return False


def canonical_json(value: Any) -> str | None:
    """One text for one JSON document: keys sorted, no spaces, Unicode kept as is.

    ``None`` stays ``None`` (SQL NULL), so "no metadata" and "{}" remain different.
    """
    if value is None:
        return None
    text = _orjson_text(value)
    return text.decode("utf-8") if text is not None else _STDLIB_ENCODE(value)


def canonical_json_bytes(value: Any) -> bytes | None:
    """``canonical_json(value)`` encoded as UTF-8, without going through a ``str``.

    Raises ``UnicodeEncodeError`` where that text cannot be UTF-8 (a lone surrogate).
    """
    if value is None:
        return None
    text = _orjson_text(value)
    return text if text is not None else _STDLIB_ENCODE(value).encode("utf-8")


def digest(canonical_text: str | bytes) -> str:
    """md5 (hex) of the canonical text, given as ``str`` or as its UTF-8 bytes."""
    if isinstance(canonical_text, str):
        canonical_text = canonical_text.encode("utf-8")
    return hashlib.md5(canonical_text).hexdigest()


@dataclass(frozen=True)
class SyncScope:
    """What a sync covers. Empty id lists mean the whole instance (a full sync).

    A scoped sync covers the named users and organizations and every membership of
    either; nothing outside that is read, compared or written.
    """

    user_ids: tuple[str, ...] = ()
    organization_ids: tuple[str, ...] = ()
    # Webhook events (svix ids) this sync answers: marked processed when its apply commits.
    event_ids: tuple[str, ...] = ()

    @property
    def is_full(self) -> bool:
        return not self.user_ids and not self.organization_ids

    def describe(self) -> str:
        scope = (
            "full"
            if self.is_full
            else f"scoped: {len(self.user_ids)} user(s), {len(self.organization_ids)} organization(s)"
        )
        return f"{scope}, answering {len(self.event_ids)} webhook event(s)" if self.event_ids else scope


@dataclass(frozen=True)
class LiveKeys:
    """The ids the mirror holds live, per entity (memberships with their user and organization).

    What a full scan of Clerk must account for: an id here that the scan did not return is
    either gone from Clerk or was skipped by offset paging over a changing list, and only a
    read by id tells which (``sync_pipeline.clerk.snapshot``).
    """

    users: pd.Series
    organizations: pd.Series
    memberships: pd.DataFrame  # id, user_id, organization_id

    @classmethod
    def empty(cls) -> "LiveKeys":
        text = frame_dtype(TEXT)
        return cls(
            users=pd.Series([], dtype=text),
            organizations=pd.Series([], dtype=text),
            memberships=pd.DataFrame({c: pd.Series([], dtype=text) for c in ("id", "user_id", "organization_id")}),
        )

    @classmethod
    def of(cls, snapshot: "Snapshot") -> "LiveKeys":
        """The live ids of a mirror snapshot that holds whole tables."""
        live = {entity: snapshot.frame(entity)[snapshot.frame(entity)["deleted_at"].isna()] for entity in ENTITIES}
        return cls(
            users=live[USERS]["id"].reset_index(drop=True),
            organizations=live[ORGANIZATIONS]["id"].reset_index(drop=True),
            memberships=live[MEMBERSHIPS][["id", "user_id", "organization_id"]].reset_index(drop=True),
        )


@dataclass
class Snapshot:
    """One frame per entity, either from Clerk or from the mirror."""

    users: pd.DataFrame
    organizations: pd.DataFrame
    organization_memberships: pd.DataFrame
    scope: SyncScope = field(default_factory=SyncScope)
    # By entity, the ids of Clerk rows whose NULs the normalizer replaced: the frames no
    # longer show it, and validation reports it.
    nul_replaced: dict[str, frozenset[str]] = field(default_factory=dict)

    def frame(self, entity: str) -> pd.DataFrame:
        return getattr(self, entity)

    def row_counts(self) -> dict[str, int]:
        return {entity: len(self.frame(entity)) for entity in ENTITIES}
