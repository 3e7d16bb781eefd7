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

from sync_pipeline.entities import catalog
from sync_pipeline.entities.description import BOOL, INT, JSON, MILLIS, TEXT  # noqa: F401  (the column kinds)

USERS = catalog.USERS.name
ORGANIZATIONS = catalog.ORGANIZATIONS.name
MEMBERSHIPS = catalog.MEMBERSHIPS.name
# Every mirrored entity by table name, parents before children (sync_pipeline.entities.catalog).
ENTITIES: tuple[str, ...] = tuple(entity.name for entity in catalog.ENTITIES)

# Column -> kind, per entity, in the order the mirror tables declare them.
# These are the columns a sync compares; the mirror adds synced_at and deleted_at.
COLUMNS: dict[str, dict[str, str]] = {entity.name: entity.kinds for entity in catalog.ENTITIES}

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
    """A digit followed by "e-" or ".0000": how orjson writes a float below 1e-4.

    Every Clerk object's text is searched, so the "e-" is found through its "-": one byte,
    which ``find`` looks for with memchr, and rare in Clerk's objects, where a search for
    the two bytes stops at every "e" (about 2 us of the 10 us a user's text costs to write).
    """
    at = text.find(b"-", 2)
    while at > 0:
        if text[at - 1] == 101 and 48 <= text[at - 2] <= 57:  # 101: "e"
            return True
        at = text.find(b"-", at + 1)
    at = text.find(b".0000")
    while at > 0:
        if 48 <= text[at - 1] <= 57:
            return True
        at = text.find(b".0000", at + 1)
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

    A scoped sync covers the named users, organizations, roles and permissions, and every
    row whose parent it names (an organization's memberships and domains, a user's
    memberships); nothing outside that is read, compared or written.
    """

    user_ids: tuple[str, ...] = ()
    organization_ids: tuple[str, ...] = ()
    # Webhook events (svix ids) this sync answers: marked processed when its apply commits.
    event_ids: tuple[str, ...] = ()
    role_ids: tuple[str, ...] = ()
    permission_ids: tuple[str, ...] = ()

    @property
    def is_full(self) -> bool:
        return not (self.user_ids or self.organization_ids or self.role_ids or self.permission_ids)

    def ids_of(self, entity: str) -> tuple[str, ...]:
        """The ids this scope names of ``entity`` itself (none for an entity it cannot name)."""
        field_name = catalog.describe(entity).scope_ids
        return tuple(getattr(self, field_name)) if field_name else ()

    def describe(self) -> str:
        scope = (
            "full"
            if self.is_full
            else f"scoped: {len(self.user_ids)} user(s), {len(self.organization_ids)} organization(s)"
            + (f", {len(self.role_ids)} role(s)" if self.role_ids else "")
            + (f", {len(self.permission_ids)} permission(s)" if self.permission_ids else "")
        )
        return f"{scope}, answering {len(self.event_ids)} webhook event(s)" if self.event_ids else scope


def key_columns(entity: str) -> tuple[str, ...]:
    """An entity's id and its parent columns: what finding its rows by parent needs."""
    return ("id", *(parent.column for parent in catalog.describe(entity).parents))


@dataclass(frozen=True)
class LiveKeys:
    """The ids the mirror holds live, per entity, each with its parent columns
    (a membership's user and organization).

    What a full scan of Clerk must account for: an id here that the scan did not return is
    either gone from Clerk or was skipped by offset paging over a changing list, and only a
    read by id tells which (``sync_pipeline.clerk.snapshot``).
    """

    frames: dict[str, pd.DataFrame]  # entity -> key_columns(entity), text

    def frame(self, entity: str) -> pd.DataFrame:
        return self.frames[entity]

    def ids(self, entity: str) -> pd.Series:
        return self.frames[entity]["id"]

    @classmethod
    def empty(cls) -> "LiveKeys":
        text = frame_dtype(TEXT)
        return cls(
            {
                entity: pd.DataFrame({c: pd.Series([], dtype=text) for c in key_columns(entity)})
                for entity in ENTITIES
            }
        )

    @classmethod
    def of(cls, snapshot: "Snapshot") -> "LiveKeys":
        """The live ids of a mirror snapshot that holds whole tables."""
        frames = {}
        for entity in ENTITIES:
            frame = snapshot.frame(entity)
            frames[entity] = frame.loc[frame["deleted_at"].isna(), list(key_columns(entity))].reset_index(drop=True)
        return cls(frames)


class Snapshot:
    """One frame per entity (keyed by entity name), either from Clerk or from the mirror.

    ``Snapshot(scope=scope, users=…, organizations=…)``: an entity not given is an empty
    frame of its columns. ``snapshot.users`` is ``snapshot.frame("users")``.
    """

    def __init__(
        self,
        *,
        scope: SyncScope | None = None,
        nul_replaced: dict[str, frozenset[str]] | None = None,
        **frames: pd.DataFrame,
    ) -> None:
        unknown = set(frames) - set(ENTITIES)
        if unknown:
            raise TypeError(f"Snapshot: unknown entities {sorted(unknown)}; expected some of {ENTITIES}")
        self.frames: dict[str, pd.DataFrame] = {
            entity: frames[entity] if entity in frames else empty_frame(entity) for entity in ENTITIES
        }
        self.scope = scope if scope is not None else SyncScope()
        # By entity, the ids of Clerk rows whose NULs the normalizer replaced: the frames no
        # longer show it, and validation reports it.
        self.nul_replaced = dict(nul_replaced or {})

    def __getattr__(self, name: str) -> pd.DataFrame:
        frames = self.__dict__.get("frames")
        if frames is not None and name in frames:
            return frames[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"Snapshot({self.scope.describe()}, rows={self.row_counts()})"

    def frame(self, entity: str) -> pd.DataFrame:
        return self.frames[entity]

    def row_counts(self) -> dict[str, int]:
        return {entity: len(self.frame(entity)) for entity in ENTITIES}
